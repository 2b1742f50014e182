"""``mailwing domain add|list|del``: the domains this server receives mail for."""

from __future__ import annotations

import argparse
from typing import Any

from mailwing.cli.common import CliError, with_storage
from mailwing.config import Settings
from mailwing.storage.errors import AlreadyExists, InUse, NotFound
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
    delete.set_defaults(func=_delete)


def _name(raw: str) -> str:
    name = raw.strip().lower().rstrip(".")
    if not name or "@" in name or any(c.isspace() for c in name):
        raise CliError(f"{raw!r} is not a domain name", 2)
    return name


def _add(args: argparse.Namespace, settings: Settings) -> int:
    name = _name(args.name)

    async def work(store: Storage) -> None:
        try:
            await store.add_domain(name)
        except AlreadyExists as exc:
            raise CliError(f"domain {name} already exists") from exc

    with_storage(settings, work)
    print(f"domain {name} added")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Storage) -> list[str]:
        return [d.name for d in await store.list_domains()]

    for name in with_storage(settings, work):
        print(name)
    return 0


def _delete(args: argparse.Namespace, settings: Settings) -> int:
    name = _name(args.name)

    async def work(store: Storage) -> None:
        try:
            await store.delete_domain(name)
        except NotFound as exc:
            raise CliError(f"domain {name} does not exist") from exc
        except InUse as exc:
            raise CliError(f"domain {name} still has users; delete them first") from exc

    with_storage(settings, work)
    print(f"domain {name} deleted")
    return 0
