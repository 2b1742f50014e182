"""``mailwing admin token create|list|revoke``: bearer tokens for the admin HTTP listener.

``create NAME`` prints the token once (only its SHA-256 digest is stored, see
:mod:`mailwing.services.admin_tokens`); use it as ``Authorization: Bearer TOKEN`` on
``/api/v1/`` or to log in to the web console. ``revoke`` takes effect at the next request.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from mailwing.cli.common import EXIT_USAGE, CliError, with_storage
from mailwing.config import Settings
from mailwing.services.admin_tokens import TokenError, TokenService
from mailwing.storage.interface import AdminToken, Storage

__all__ = ["register"]

T = TypeVar("T")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    admin = sub.add_parser("admin", parents=[common], help="admin HTTP API tokens")
    groups = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    token = groups.add_parser("token", parents=[common], help="manage admin API tokens")
    cmds = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    create = cmds.add_parser("create", parents=[common],
                             help="make a token and print it (once)")
    create.add_argument("name")
    create.set_defaults(func=_create)
    cmds.add_parser("list", parents=[common], help="list tokens (never the secrets)"
                    ).set_defaults(func=_list)
    revoke = cmds.add_parser("revoke", parents=[common], help="delete a token")
    revoke.add_argument("name")
    revoke.set_defaults(func=_revoke)


def _run(settings: Settings, work: Callable[[TokenService], Awaitable[T]]) -> T:
    async def main(store: Storage) -> T:
        return await work(TokenService(store))

    try:
        return with_storage(settings, main)
    except TokenError as exc:
        code = EXIT_USAGE if "is not a token name" in str(exc) else 1
        raise CliError(str(exc), code) from exc


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _create(args: argparse.Namespace, settings: Settings) -> int:
    async def work(tokens: TokenService) -> str:
        secret, _ = await tokens.create(args.name)
        return secret

    print(_run(settings, work))
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(tokens: TokenService) -> list[AdminToken]:
        return await tokens.list()

    found = _run(settings, work)
    for t in found:
        print(f"{t.name}\tcreated {_when(t.created_at)}\tlast used {_when(t.last_used_at)}")
    print(f"{len(found)} token(s)")
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def work(tokens: TokenService) -> None:
        await tokens.revoke(args.name)

    _run(settings, work)
    print(f"token {args.name} revoked")
    return 0
