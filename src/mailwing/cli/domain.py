"""``mailwing domain add|list|del``: the domains this server receives mail for.

The rules are :mod:`mailwing.services.accounts`, shared with the admin API.
"""

from __future__ import annotations

import argparse
from typing import Any

from mailwing.cli.common import EXIT_USAGE, CliError
from mailwing.cli.user import run_accounts
from mailwing.config import Settings
from mailwing.services import accounts
from mailwing.services.accounts import AccountError
from mailwing.storage.interface import Storage

__all__ = ["register"]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    domain = sub.add_parser("domain", parents=[common], help="manage mail domains")
    cmds = domain.add_subparsers(dest="domain_command", required=True, metavar="COMMAND")
    add = cmds.add_parser("add", parents=[common], help="add a domain")
    add.add_argument("name")
    add.set_defaults(func=_add)
    lst = cmds.add_parser("list", parents=[common], help="list domains")
    lst.set_defaults(func=_list)
    delete = cmds.add_parser("del", parents=[common], help="delete a domain without users")
    delete.add_argument("name")
    delete.add_argument("--force", action="store_true",
                        help="delete its users and their mail first")
    delete.set_defaults(func=_delete)


def _name(raw: str) -> str:
    try:
        return accounts.domain_name(raw)
    except AccountError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def _add(args: argparse.Namespace, settings: Settings) -> int:
    name = _name(args.name)

    async def work(store: Storage) -> None:
        await accounts.add_domain(store, name)

    run_accounts(settings, work)
    print(f"domain {name} added")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Storage) -> list[str]:
        return [d.name for d in await accounts.list_domains(store)]

    for name in run_accounts(settings, work):
        print(name)
    return 0


def _delete(args: argparse.Namespace, settings: Settings) -> int:
    name = _name(args.name)

    async def work(store: Storage) -> int:
        return await accounts.delete_domain(store, name, force=args.force)

    removed = run_accounts(settings, work)
    extra = f" with {removed} user(s)" if removed else ""
    print(f"domain {name} deleted{extra}")
    return 0
