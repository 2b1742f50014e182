"""``mailwing queue list|show|retry|delete``: look at and act on the outbound queue.

Only the text form lives here; what each command does is :mod:`mailwing.services.queue_admin`,
the same functions the admin API calls. The queue is in the database, so these commands work
while ``mailwing serve`` runs, on any node.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from mailwing.cli.common import CliError, with_storage
from mailwing.config import Settings
from mailwing.services import queue_admin
from mailwing.services.queue_admin import QueueError
from mailwing.storage.interface import QueuedMessage, Storage

__all__ = ["register"]

T = TypeVar("T")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    queue = sub.add_parser("queue", parents=[common], help="inspect the outbound queue")
    cmds = queue.add_subparsers(dest="queue_command", required=True, metavar="COMMAND")
    cmds.add_parser("list", parents=[common], help="list queued messages").set_defaults(
        func=_list)
    for name, func, text in (("show", _show, "show one message and its recipients"),
                             ("retry", _retry, "make a message due now"),
                             ("delete", _delete, "remove a message without a bounce")):
        cmd = cmds.add_parser(name, parents=[common], help=text)
        cmd.add_argument("id")
        cmd.set_defaults(func=func)


def _run(settings: Settings, work: Callable[[Storage], Awaitable[T]]) -> T:
    try:
        return with_storage(settings, work)
    except QueueError as exc:
        raise CliError(str(exc)) from exc


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _line(m: QueuedMessage) -> str:
    waiting = sum(1 for r in m.recipients if r.status in ("pending", "deferred"))
    state = f"leased by {m.lease_owner}" if m.lease_owner else f"next {_when(m.next_attempt)}"
    return (f"{m.queue_id}  {m.content.size:>9}  <{m.sender}>  {waiting}/{len(m.recipients)}"
            f" waiting  attempts {m.attempts}  {state}")


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Storage) -> list[QueuedMessage]:
        return await queue_admin.list_messages(store)

    found = with_storage(settings, work)
    for m in found:
        print(_line(m))
    print(f"{len(found)} message(s) queued")
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Storage) -> QueuedMessage:
        return await queue_admin.get(store, args.id)

    m = _run(settings, work)
    print(f"id: {m.queue_id}\nsender: <{m.sender}>\nsize: {m.content.size}\n"
          f"content: {m.content.sha256}\nsubject: {m.content.fields.subject or ''}\n"
          f"arrived: {_when(m.created_at)}\nnext attempt: {_when(m.next_attempt)}\n"
          f"attempts: {m.attempts}\nlease: {m.lease_owner or '-'} until {_when(m.lease_until)}")
    for r in m.recipients:
        extra = f"  [{r.remote_mta}]" if r.remote_mta else ""
        print(f"recipient: <{r.address}> {r.status}{extra}  {r.last_reply}".rstrip())
    return 0


def _retry(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Storage) -> None:
        await queue_admin.retry(store, args.id)

    _run(settings, work)
    print(f"message {args.id} is due now")
    return 0


def _delete(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Storage) -> None:
        await queue_admin.delete(store, args.id)

    _run(settings, work)
    print(f"message {args.id} deleted")
    return 0
