"""``mailwing backup DEST`` / ``mailwing restore SRC``: an online backup of the configured
installation into a folder, and a verified restore into an empty database and data folder
(see :mod:`mailwing.portability.backup`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailwing.cli.common import CliError
from mailwing.runtime import run_async

if TYPE_CHECKING:
    from mailwing.config import Settings

__all__ = ["register"]


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    b = sub.add_parser("backup", parents=[common], help="online backup into a folder",
                       description="Back up the database, every message content and the "
                       "data folder's DKIM keys and certificate into DEST (a new or empty "
                       "folder), consistently, while the server runs.")
    b.add_argument("dest", metavar="DEST")
    b.set_defaults(func=_backup)
    r = sub.add_parser("restore", parents=[common], help="restore a backup folder",
                       description="Check SRC against its manifest, then restore it into the "
                       "configured database and data folder, which must be empty, and verify "
                       "the result.")
    r.add_argument("src", metavar="SRC")
    r.add_argument("--force", action="store_true",
                   help="replace whatever the target database holds")
    r.set_defaults(func=_restore)


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    from mailwing.portability.backup import BackupError, backup

    try:
        manifest = run_async(lambda: backup(settings.database_url, settings.server.data_dir,
                                            Path(args.dest), _say))
    except BackupError as exc:
        raise CliError(str(exc)) from exc
    rows = {t: v["rows"] for t, v in manifest["tables"].items()}
    print(f"backup written to {args.dest}: {rows.get('users', 0)} users, "
          f"{rows.get('mail', 0)} messages, {rows.get('contents', 0)} contents "
          f"(schema version {manifest['schema_version']})")
    return 0


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    from mailwing.portability.backup import BackupError, restore

    try:
        report = run_async(lambda: restore(Path(args.src), settings.database_url,
                                           settings.server.data_dir, force=args.force,
                                           notify=_say))
    except BackupError as exc:
        raise CliError(str(exc)) from exc
    for line in report.lines():
        print(line)
    return 0
