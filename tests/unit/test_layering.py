"""The import rules of ARCHITECTURE.md, as a test: it reads every module's imports with ``ast``
(function-level imports included) and fails naming the file, the line and the rule broken.

The rules (a package's imports of itself are always allowed):

* ``proto`` and ``mime`` are pure: the standard library and each other only (``mime`` uses
  ``proto.common``'s line-ending helpers), and none of the stdlib's I/O modules (asyncio,
  socket, ssl, selectors): sans-IO means bytes in, events out;
* ``storage`` imports no ``proto``, ``server`` or ``services``;
* ``services`` imports no ``server``, and neither does the HTTP front ``admin``;
* ``app`` (the composition root) is imported only by the fronts that start a server: ``cli``
  and ``embed`` (the embeddable server);
* the fronts (``cli``, ``admin``, ``portability``, ``embed``, ``testing``) are imported by
  nothing but what stands above them: ``app`` wires ``admin``'s listener, ``cli`` runs
  ``portability``, ``testing`` (the pytest plugin) uses ``embed``. Logic that two fronts
  share lives in ``services``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "mailwing"

#: package -> mailwing packages it must not import
FORBIDDEN: dict[str, set[str]] = {
    "storage": {"proto", "server", "services"},
    "services": {"server"},
    "admin": {"server"},  # the HTTP front uses services, like the sessions do
}
PURE = {"proto", "mime"}
IO_MODULES = {"asyncio", "socket", "ssl", "selectors"}
MAX_LINES = 600  # "small modules": past this, split it
#: package -> the only packages (besides itself) allowed to import it
IMPORTED_ONLY_BY: dict[str, set[str]] = {
    "app": {"cli", "embed"},
    "cli": set(),
    "admin": {"app"},
    "portability": {"cli"},
    "embed": {"testing"},
    "testing": set(),
}
#: modules outside every package that may import anything: ``python -m mailwing``, and the
#: package root, whose lazy ``MailServer`` attribute is the embeddable server's public name
ENTRY_POINTS = {"__main__", "__init__"}


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts else ""


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted module) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    rel = path.relative_to(SRC.parent)
    here = list(rel.with_suffix("").parts)
    if here[-1] == "__init__":
        here.pop()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + (1 if path.name == "__init__.py" else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "mailwing":  # `from mailwing import cli` imports the package cli
                for alias in node.names:
                    yield node.lineno, f"mailwing.{alias.name}"
            else:
                yield node.lineno, module


def _violations() -> Iterator[str]:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in sorted(SRC.rglob("*.py")):
        pkg = _package(path)
        if pkg in ENTRY_POINTS:
            continue
        where = path.relative_to(SRC.parent.parent)
        for line, module in _imports(path):
            top, _, rest = module.partition(".")
            if top != "mailwing":
                if pkg in PURE and top not in stdlib:
                    yield f"{where}:{line}: {pkg} may import only the stdlib, not {module}"
                elif pkg in PURE and top in IO_MODULES:
                    yield f"{where}:{line}: {pkg} is sans-IO but imports {module}"
                continue
            target = rest.split(".")[0]
            if not target or target == pkg:
                continue
            if pkg in PURE and target not in PURE:
                yield f"{where}:{line}: {pkg} may import only the stdlib, not {module}"
            if target in FORBIDDEN.get(pkg, ()):
                yield f"{where}:{line}: {pkg} must not import {target} ({module})"
            allowed = IMPORTED_ONLY_BY.get(target)
            if allowed is not None and pkg not in allowed:
                yield f"{where}:{line}: {target} may be imported only by {sorted(allowed)}"


def test_import_rules_hold() -> None:
    broken = list(_violations())
    assert not broken, "layering rules broken:\n" + "\n".join(broken)


def test_modules_stay_small() -> None:
    big = [f"{p.relative_to(SRC)}: {n} lines" for p in sorted(SRC.rglob("*.py"))
           if (n := p.read_text(encoding="utf-8").count("\n")) > MAX_LINES]
    assert not big, f"split these modules (over {MAX_LINES} lines): {big}"


@pytest.mark.parametrize(("pkg", "source", "rule"), [
    ("proto", "import asyncio\n", "sans-IO"),
    ("proto", "from mailwing.storage import interface\n", "stdlib"),
    ("proto", "from ..storage import interface\n", "stdlib"),
    ("mime", "import dkim\n", "stdlib"),
    ("storage", "from mailwing.services import auth\n", "must not import services"),
    ("services", "from mailwing.server.connection import Connection\n", "must not import server"),
    ("server", "from mailwing import app\n", "app may be imported only"),
    ("services", "from mailwing.cli.common import fail\n", "cli may be imported only"),
])
def test_rules_catch_a_bad_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  pkg: str, source: str, rule: str) -> None:
    """The checker itself finds each kind of violation (so the test above cannot pass by
    checking nothing)."""
    root = tmp_path / "src" / "mailwing"
    (root / pkg).mkdir(parents=True)
    (root / pkg / "bad.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "SRC", root)
    found = list(_violations())
    assert any(rule in v for v in found), found
