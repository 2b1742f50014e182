"""``mailwing backup`` / ``mailwing restore``: an online, consistent backup of an installation
into one folder, and a verified restore into an empty database.

A backup folder always has the same shape, whatever the backend it came from::

    manifest.json     what is inside: schema version, per-table row counts and digests
    mailwing.db       a SQLite database with every row, and the small contents (table
                      inline_contents, the SQLite backend's layout since schema 9)
    blobs/ab/<sha>    every other content, named by its SHA-256 (the SQLite backend's layout)
    files/dkim, files/tls   the data folder's keys and certificates, when present

* From SQLite, the database is taken with SQLite's online backup API (a consistent copy made
  while the server keeps writing), small contents included; then each content file is
  copied, and the SHA-256 of every content (in the copy or a file) is checked.
* From PostgreSQL, the rows and contents are copied through :mod:`.dbcopy` (a REPEATABLE
  READ snapshot) into the SQLite file. That is a logical dump that needs no ``pg_dump``
  whose version matches the server's, and it restores into either backend.

A restore first checks the folder against its manifest (a damaged backup is refused before
anything is written), then copies it into the configured database with :mod:`.dbcopy`,
which refuses a non-empty target unless forced and verifies counts, row digests and content
hashes at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailwing.portability.dbcopy import (
    CopyError,
    CopyReport,
    copy_database,
    sqlite_path,
    table_digests,
)
from mailwing.portability.endpoints import SqliteEndpoint
from mailwing.storage import redact_url
from mailwing.storage.blobs import BlobStore

__all__ = ["BackupError", "backup", "restore", "verify_backup"]

FORMAT = 1
_EXTRA_DIRS = ("dkim", "tls")


class BackupError(Exception):
    """The backup or restore cannot be made; the message says why."""


def _copy_blobs(source: BlobStore, dest: Path, digests: list[str], inline: set[str]) -> int:
    """Copy the files of ``digests``, except the ``inline`` ones (already in the database
    copy), checking each one's SHA-256."""
    size = 0
    target = BlobStore(dest)
    for sha in digests:
        if sha in inline:
            continue
        try:
            with open(source.path(sha), "rb") as f:
                data = f.read()
        except FileNotFoundError as exc:
            raise BackupError(f"content {sha} vanished during the backup (expunged "
                              "meanwhile?): run the backup again") from exc
        if hashlib.sha256(data).hexdigest() != sha:
            raise BackupError(f"content {sha} is corrupt in the data folder")
        target.store(data, sha)
        size += len(data)
    return size


def _sqlite_snapshot(src: Path, dest: Path) -> tuple[list[str], set[str]]:
    """SQLite's online backup of ``src`` into ``dest``: the contents it refers to, and those
    whose bytes it holds itself (schema 9: small contents live in the database), each
    checked against its SHA-256 here, one row at a time."""
    source = sqlite3.connect(src, timeout=30)
    try:
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
            digests = [r[0] for r in target.execute("SELECT sha256 FROM contents")]
            inline: set[str] = set()
            if target.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                              " AND name = 'inline_contents'").fetchone():
                for sha, data in target.execute(
                        "SELECT i.sha256, i.data FROM inline_contents i"
                        " JOIN contents c ON c.sha256 = i.sha256"):
                    if hashlib.sha256(data).hexdigest() != sha:
                        raise BackupError(f"content {sha} is corrupt in the database")
                    inline.add(sha)
            return digests, inline
        finally:
            target.close()
    finally:
        source.close()


async def _manifest(folder: Path, source: str) -> dict[str, Any]:
    ep = SqliteEndpoint(folder / "mailwing.db")
    try:
        tables = await ep.tables()
        digests = await table_digests(ep, tables)
        version = (await ep._do("SELECT max(version) FROM schema_version"))[0][0]
    finally:
        await ep.close()
    return {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": source, "schema_version": version,
            "tables": {t: {"rows": n, "digest": d} for t, (n, d) in digests.items()}}


async def backup(database_url: str, data_dir: Path, dest: Path,
                 notify: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Back the installation up into ``dest`` (absent or empty); returns the manifest."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} is not empty: back up into a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    path = sqlite_path(database_url)
    if path is not None:
        if not path.exists():
            raise BackupError(f"no database at {path}")
        notify("copying the database (SQLite online backup)")
        digests, inline = await asyncio.to_thread(_sqlite_snapshot, path,
                                                  dest / "mailwing.db")
        notify(f"copying {len(digests)} contents")
        await asyncio.to_thread(_copy_blobs, BlobStore(data_dir / "blobs"), dest / "blobs",
                                digests, inline)
    else:
        notify("copying the database (logical dump through a snapshot)")
        try:
            await copy_database(database_url, data_dir, f"sqlite:///{dest / 'mailwing.db'}",
                                dest, notify=notify)
        except CopyError as exc:
            raise BackupError(str(exc)) from exc
    for name in _EXTRA_DIRS:
        if (data_dir / name).is_dir():
            shutil.copytree(data_dir / name, dest / "files" / name)
    manifest = await _manifest(dest, redact_url(database_url))
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


async def verify_backup(folder: Path) -> dict[str, Any]:
    """The manifest, once the folder's rows are checked against it (BackupError if not)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{folder} is not a mailwing backup (no readable manifest.json)") \
            from exc
    if manifest.get("format") != FORMAT or not (folder / "mailwing.db").is_file():
        raise BackupError(f"{folder}: unknown backup format")
    try:
        found = await _manifest(folder, manifest.get("source", ""))
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{folder}/mailwing.db is damaged: {exc}") from exc
    if found["tables"] != manifest["tables"]:
        bad = sorted(t for t in set(found["tables"]) | set(manifest["tables"])
                     if found["tables"].get(t) != manifest["tables"].get(t))
        raise BackupError(f"the backup does not match its manifest (table {bad[0]})")
    return dict(manifest)


async def restore(folder: Path, database_url: str, data_dir: Path, *, force: bool = False,
                  notify: Callable[[str], None] = lambda line: None) -> CopyReport:
    """Restore ``folder`` into the (empty, unless ``force``) database and data folder."""
    await verify_backup(folder)
    notify("backup matches its manifest; restoring")
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = await copy_database(f"sqlite:///{folder / 'mailwing.db'}", folder,
                                     database_url, data_dir, force=force, notify=notify)
    except CopyError as exc:
        raise BackupError(str(exc)) from exc
    for name in _EXTRA_DIRS:
        saved = folder / "files" / name
        if saved.is_dir() and not (data_dir / name).exists():
            shutil.copytree(saved, data_dir / name)  # modes kept (keys stay 0600)
    return report
