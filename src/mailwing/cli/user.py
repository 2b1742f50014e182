"""``mailwing user add|passwd|del|list|enable|disable|quota``: accounts.

Only argument parsing and the text form live here; the rules (address checks, Argon2id
hashing, what "delete" removes) are :mod:`mailwing.services.accounts`, shared with the admin
API. ``user add`` creates the address's domain when it is new and says so, since a typo in a
domain name is easy to miss.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mailwing.cli.common import (
    EXIT_USAGE,
    CliError,
    add_password_options,
    read_password,
    with_storage,
)
from mailwing.config import Settings
from mailwing.services import accounts, quota
from mailwing.services.accounts import AccountError
from mailwing.storage.errors import NotFound
from mailwing.storage.interface import Storage

__all__ = ["register", "run_accounts"]

T = TypeVar("T")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    user = sub.add_parser("user", parents=[common], help="manage mail accounts")
    cmds = user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")

    add = cmds.add_parser("add", parents=[common], help="create an account")
    add.add_argument("address")
    add.add_argument("--quota", type=int, default=0, metavar="BYTES",
                     help="storage limit in bytes (0: unlimited)")
    add_password_options(add)
    add.set_defaults(func=_add)

    passwd = cmds.add_parser("passwd", parents=[common], help="change a password")
    passwd.add_argument("address")
    add_password_options(passwd)
    passwd.set_defaults(func=_passwd)

    delete = cmds.add_parser("del", parents=[common], help="delete an account and its mail")
    delete.add_argument("address")
    delete.set_defaults(func=_delete)

    lst = cmds.add_parser("list", parents=[common], help="list accounts and their usage")
    lst.set_defaults(func=_list)

    q = cmds.add_parser("quota", parents=[common], help="set an account's storage limit")
    q.add_argument("address")
    q.add_argument("size", help="e.g. 500M, 2G, 1048576 (bytes) or none")
    q.set_defaults(func=_quota)

    for name, enabled in (("enable", True), ("disable", False)):
        p = cmds.add_parser(name, parents=[common], help=f"{name} logins for an account")
        p.add_argument("address")
        p.set_defaults(func=_set_enabled, enabled=enabled)


def run_accounts(settings: Settings, work: Callable[[Storage], Awaitable[T]]) -> T:
    """Run an accounts-service call; its refusals become one-line CLI errors."""
    try:
        return with_storage(settings, work)
    except AccountError as exc:
        raise CliError(str(exc), EXIT_USAGE if exc.kind == "invalid" else 1) from exc


def _address(raw: str) -> str:
    try:
        return accounts.normalize_address(raw)
    except AccountError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def _add(args: argparse.Namespace, settings: Settings) -> int:
    address = _address(args.address)
    if args.quota < 0:
        raise CliError("--quota must not be negative", EXIT_USAGE)
    password = read_password(args)

    async def work(store: Storage) -> bool:
        _, domain_added = await accounts.add_user(store, address, password, quota=args.quota)
        return domain_added

    if run_accounts(settings, work):
        print(f"domain {address.rpartition('@')[2]} added")
    print(f"user {address} added")
    return 0


def _passwd(args: argparse.Namespace, settings: Settings) -> int:
    address = _address(args.address)
    password = read_password(args)

    async def work(store: Storage) -> None:
        await accounts.set_password(store, address, password)

    run_accounts(settings, work)
    print(f"password of {address} changed")
    return 0


def _delete(args: argparse.Namespace, settings: Settings) -> int:
    address = _address(args.address)

    async def work(store: Storage) -> None:
        await accounts.delete_user(store, address)

    run_accounts(settings, work)
    print(f"user {address} deleted with its mail")
    return 0


def _set_enabled(args: argparse.Namespace, settings: Settings) -> int:
    address = _address(args.address)

    async def work(store: Storage) -> None:
        await accounts.set_enabled(store, address, args.enabled)

    run_accounts(settings, work)
    print(f"user {address} {'enabled' if args.enabled else 'disabled'}")
    return 0


def _quota(args: argparse.Namespace, settings: Settings) -> int:
    address = _address(args.address)
    try:
        limit = quota.parse_size(args.size)
    except ValueError as exc:
        raise CliError(str(exc), 64) from exc

    async def work(store: Storage) -> None:
        try:
            await quota.set_quota(store, address, limit)
        except NotFound as exc:
            raise CliError(f"user {address} does not exist", 67) from exc

    with_storage(settings, work)
    print(f"quota of {address} set to {quota.format_size(limit)}")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Storage) -> accounts.UserPage:
        return await accounts.list_users(store)

    rows = [("ADDRESS", "ENABLED", "MESSAGES", "BYTES USED", "QUOTA")]
    for u in run_accounts(settings, work).users:
        rows.append((u.address, "yes" if u.enabled else "no", str(u.message_count),
                     str(u.bytes_used), quota.format_size(u.quota_bytes)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:],
                                                                       strict=True)]
        print("  ".join(cells).rstrip())
    return 0
