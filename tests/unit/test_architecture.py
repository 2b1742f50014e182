"""The import direction of ARCHITECTURE.md, checked: protocol cores stay sans-IO and
nothing below the composition root reaches up into app, cli or the server layer."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "mailwing"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


@pytest.mark.parametrize("package", ["proto", "mime"])
def test_sans_io_packages_import_only_the_standard_library(package: str) -> None:
    for path in _modules(package):
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "mailwing":
                assert name.startswith(f"mailwing.{package}") or name.startswith(
                    "mailwing.proto"
                ), f"{path.relative_to(SRC)} imports {name}"
                continue
            assert top in sys.stdlib_module_names, f"{path.relative_to(SRC)} imports {name}"
            assert top not in ("asyncio", "socket", "ssl", "selectors"), (
                f"{path.relative_to(SRC)} does I/O through {name}"
            )


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("storage", ("mailwing.services", "mailwing.server", "mailwing.proto")),
        ("services", ("mailwing.server",)),
        ("proto", ("mailwing.storage", "mailwing.services", "mailwing.server")),
    ],
)
def test_lower_layers_do_not_import_upper_layers(package: str, forbidden: tuple[str, ...]) -> None:
    for path in _modules(package):
        for name in _imports(path):
            assert not name.startswith(forbidden), f"{path.relative_to(SRC)} imports {name}"


def test_nothing_imports_the_composition_root_or_the_cli() -> None:
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ("cli", "app.py", "__main__.py"):
            continue
        for name in _imports(path):
            assert not name.startswith(("mailwing.app", "mailwing.cli")), f"{rel} imports {name}"


def test_only_the_composition_root_imports_the_admin_front_end() -> None:
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ("admin", "app.py"):
            continue
        for name in _imports(path):
            assert not name.startswith("mailwing.admin"), f"{rel} imports {name}"


def test_admin_front_end_uses_services_not_the_server_layer() -> None:
    for path in _modules("admin"):
        for name in _imports(path):
            assert not name.startswith(("mailwing.server", "mailwing.cli", "mailwing.app")), (
                f"{path.relative_to(SRC)} imports {name}")


def test_modules_stay_small() -> None:
    for path in SRC.rglob("*.py"):
        lines = path.read_text().count("\n")
        assert lines <= 600, f"{path.relative_to(SRC)} has {lines} lines; split it"
