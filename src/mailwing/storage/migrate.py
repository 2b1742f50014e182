"""Versioned schema migrations: numbered SQL files shipped inside each backend's package.

Files are named ``NNNN_description.sql`` in ``<backend>/migrations/`` and read with
:mod:`importlib.resources`, so they work from a wheel or a zip as well as from a checkout.
``LATEST_SCHEMA`` is simply the highest number found. Opening a storage never migrates; the
operator runs ``mailwing db upgrade`` (which calls ``Storage.upgrade()``), and servers refuse
to start on an outdated schema (``check_schema()``). The runner itself is the shared
:func:`mailwing.storage.scripts.upgrade` script: one transaction for all pending files, each
recorded in ``schema_version``, so a failed upgrade leaves the database as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from mailwing.storage.errors import SchemaOutdated

__all__ = ["Migration", "load_migrations", "outdated_error"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> tuple[Migration, ...]:
    """The migrations of ``package`` (e.g. ``mailwing.storage.sqlite``), ascending.

    Raises RuntimeError if the numbering has a gap or a duplicate: that is a packaging bug."""
    found = []
    for entry in resources.files(package).joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations of {package} are not numbered 1..n: {found!r}")
    return tuple(found)


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
