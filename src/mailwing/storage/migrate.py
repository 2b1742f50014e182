"""Versioned schema migrations: numbered SQL files shipped inside each backend's package.

Files are named ``NNNN_description.sql`` in ``<backend>/migrations/`` and read from the
package's folder, or with :mod:`importlib.resources` when the package is not a plain folder
(a zip), so they work from a wheel or a zip as well as from a checkout. (The plain-folder path
exists because importing :mod:`importlib.resources` costs a few milliseconds, paid by every
``mailwing deliver``, issue #9.)
``LATEST_SCHEMA`` is simply the highest number found. Opening a storage never migrates; the
operator runs ``mailwing db upgrade`` (which calls ``Storage.upgrade()``), and servers refuse
to start on an outdated schema (``check_schema()``). The runner itself is the shared
:func:`mailwing.storage.scripts.upgrade` script: one transaction for all pending files, each
recorded in ``schema_version``, so a failed upgrade leaves the database as it was.
"""

# No postponed annotations: the NamedTuple below would compile each one (see mailwing.model).
import functools
import importlib
import os
import re
from collections.abc import Callable
from typing import NamedTuple

from mailwing.storage.errors import SchemaOutdated

__all__ = ["Migration", "load_migrations", "outdated_error"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> tuple[Migration, ...]:
    """The migrations of ``package`` (e.g. ``mailwing.storage.sqlite``), ascending.

    Raises RuntimeError if the numbering has a gap or a duplicate: that is a packaging bug."""
    found = []
    for name, read in _files(package):
        match = _NAME.match(name)
        if match:
            found.append(Migration(int(match[1]), match[2], read()))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations of {package} are not numbered 1..n: {found!r}")
    return tuple(found)


def _files(package: str) -> list[tuple[str, Callable[[], str]]]:
    """(name, reader) of each file in the package's ``migrations`` folder."""
    init = getattr(importlib.import_module(package), "__file__", None)
    folder = os.path.join(os.path.dirname(init), "migrations") if init else ""
    if folder and os.path.isdir(folder):
        return [(e.name, functools.partial(_read, e.path)) for e in os.scandir(folder)]
    from importlib import resources

    return [(e.name, functools.partial(e.read_text, encoding="utf-8"))
            for e in resources.files(package).joinpath("migrations").iterdir()]


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def outdated_error(current: int, latest: int) -> SchemaOutdated:
    if current > latest:
        return SchemaOutdated(
            f"database schema is at version {current}, newer than this mailwing ({latest}):"
            " upgrade mailwing"
        )
    return SchemaOutdated(
        f"database schema is at version {current}, this mailwing needs {latest}:"
        " run `mailwing db upgrade`"
    )
