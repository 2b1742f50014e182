"""``mailwing db upgrade|status|gc``: create or migrate the database schema; collect garbage.

Migrations only run when an operator asks for them; ``serve`` refuses an outdated schema
instead of migrating behind the operator's back (several workers or hosts could race).
"""

from __future__ import annotations

import argparse
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
