"""``mailwing db upgrade|status|gc|copy``: create or migrate the database schema; collect
garbage; copy the installation to another database (:mod:`mailwing.portability.dbcopy`).

Migrations only run when an operator asks for them; ``serve`` refuses an outdated schema
instead of migrating behind the operator's back (several workers or hosts could race).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mailwing.cli.common import EXIT_USAGE, CliError, with_storage
from mailwing.config import ConfigError, Settings, parse_duration
from mailwing.storage import redact_url
from mailwing.storage.interface import Storage

__all__ = ["register"]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    db = sub.add_parser("db", parents=[common], help="database schema")
    cmds = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    up = cmds.add_parser("upgrade", parents=[common], help="create or upgrade the schema")
    up.set_defaults(func=_upgrade)
    status = cmds.add_parser("status", parents=[common],
                             help="show the schema version (exit 1 when outdated)")
    status.set_defaults(func=_status)
    copy = cmds.add_parser(
        "copy", parents=[common], help="copy the whole installation to another database",
        description="Copy every table and message content of the configured database to "
        "--to (for example postgresql://mailwing@db/mailwing), keeping ids, UIDVALIDITY and "
        "UIDs, then verify counts, row digests and content hashes. Safe while the server "
        "runs (a snapshot); finish with --catch-up once the server is stopped, then switch "
        "database.url.")
    copy.add_argument("--to", required=True, metavar="URL", help="the target database")
    copy.add_argument("--to-data-dir", metavar="DIR",
                      help="data folder for a sqlite:/// target (default: the file's folder)")
    mode = copy.add_mutually_exclusive_group()
    mode.add_argument("--force", action="store_true", help="replace a non-empty target")
    mode.add_argument("--catch-up", action="store_true",
                      help="update an earlier copy (only new contents are sent)")
    copy.set_defaults(func=_copy)
    gc = cmds.add_parser("gc", parents=[common],
                         help="remove stored contents nothing refers to (both backends)")
    gc.add_argument("--min-age", default="1h", metavar="DURATION",
                    help="only what is older than this (default 1h; 0 for everything)")
    gc.set_defaults(func=_gc)


def _upgrade(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Storage) -> tuple[int, int]:
        return await store.upgrade()

    before, after = with_storage(settings, work, check=False)
    if before == after:
        print(f"database schema is up to date (version {after})")
    else:
        print(f"database schema upgraded from version {before} to {after}")
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Storage) -> tuple[int, int]:
        return await store.schema_version(), store.LATEST_SCHEMA

    current, latest = with_storage(settings, work, check=False)
    print(f"database: {redact_url(settings.database_url)}")
    if current == latest:
        print(f"schema version {current}: up to date")
        return 0
    print(f"schema version {current}, this program needs {latest}: run 'mailwing db upgrade'")
    return 1



def _copy(args: argparse.Namespace, settings: Settings) -> int:
    from mailwing.portability.dbcopy import CopyError, copy_database, sqlite_path
    from mailwing.runtime import run_async

    target_path = sqlite_path(args.to)
    if args.to_data_dir:
        target_dir = Path(args.to_data_dir)
    elif target_path is not None:
        target_dir = target_path.parent
    else:
        target_dir = settings.server.data_dir
    if not args.to.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise CliError("--to must be a sqlite:/// or postgresql:// URL", EXIT_USAGE)
    try:
        report = run_async(lambda: copy_database(
            settings.database_url, settings.server.data_dir, args.to, target_dir,
            force=args.force, catch_up=args.catch_up,
            notify=lambda line: print(line, file=sys.stderr)))
    except CopyError as exc:
        raise CliError(str(exc)) from exc
    print(f"copied {redact_url(settings.database_url)} to {redact_url(args.to)}")
    for line in report.lines():
        print(line)
    return 0


def _gc(args: argparse.Namespace, settings: Settings) -> int:
    try:
        min_age = parse_duration(args.min_age, "--min-age")
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None

    async def work(store: Storage) -> int:
        return await store.collect_garbage(min_age)

    removed = with_storage(settings, work)
    print(f"removed {removed} unreferenced content(s) older than {args.min_age}")
    return 0
