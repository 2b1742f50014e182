"""``mailwing deliver --to ADDRESS``: a local delivery agent (message on standard input).

An MTA (Postfix ``mailbox_command``, Exim pipe transport, procmail-style scripts) decides from
the exit status whether to bounce or retry, so this command answers with sysexits.h codes as
an LDA does: 0 delivered, 65 empty or unreadable message, 67 no such user, 73 no such mailbox,
75 temporary failure (database down or schema not yet upgraded: retry later), 77 over quota,
78 configuration error.

It runs once per message, so start-up is most of its cost (issue #9: <= 60 ms). When the
server runs, its LMTP socket (``lmtp.socket``, on by default) takes the message: the client
(:mod:`mailwing.cli.lmtp_client`) needs neither the storage nor an event loop, and the
server delivers through the same ``deliver_local`` steps (``--from`` as MAIL FROM,
``--mailbox`` as the ``XMAILBOX`` recipient parameter), its replies mapped to the same exit
codes. Without a server (no socket file, or nobody accepts on it) the message is delivered
directly, as follows. On SQLite the delivery runs without an event loop, through the direct storage
(:mod:`mailwing.storage.sqlite.direct`): the same ``deliver_local`` service and transaction
scripts, minus ``asyncio``'s import and the database thread. PostgreSQL (asyncpg) keeps the
event loop.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mailwing.cli.common import CliError, with_storage
from mailwing.config import Settings
from mailwing.runtime import open_direct_store
from mailwing.storage.errors import SchemaOutdated, StorageError, TemporaryStorageError

if TYPE_CHECKING:
    from mailwing.storage.interface import Storage

__all__ = ["EX_CONFIG", "register"]

EX_DATAERR = 65
EX_NOUSER = 67
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78

_CHUNK = 256 * 1024


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("deliver", parents=[common],
                       help="deliver a message from standard input to a local user")
    p.add_argument("--to", required=True, metavar="ADDRESS", help="the recipient")
    p.add_argument("--mailbox", metavar="NAME", help="target mailbox (default INBOX)")
    p.add_argument("--from", dest="sender", metavar="SENDER",
                   help="envelope sender for Return-Path (default: none, <>)")
    p.set_defaults(func=_deliver)


async def _stdin_chunks(consumed: bytes = b"") -> AsyncIterator[bytes]:
    """Standard input in chunks, after ``consumed`` (what the LMTP client read already)."""
    if consumed:
        yield consumed
    try:
        while chunk := sys.stdin.buffer.read(_CHUNK):
            yield chunk
    except OSError as exc:
        raise CliError(f"cannot read the message: {exc.strerror or exc}", EX_DATAERR) from exc


async def _then_close(store: Storage, work: Callable[[Storage], Awaitable[str]]) -> str:
    try:
        return await work(store)
    finally:
        await store.close()


def _is_socket(path: os.PathLike[str]) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _deliver(args: argparse.Namespace, settings: Settings) -> int:
    address = args.to.strip().lower()
    consumed = b""
    path = settings.lmtp_socket_path
    if path is not None and _is_socket(path):
        from mailwing.cli.lmtp_client import LmtpUnavailable, deliver_over_lmtp

        try:
            code, message = deliver_over_lmtp(path, address, sys.stdin.buffer,
                                              sender=args.sender, mailbox=args.mailbox,
                                              hostname=settings.server.hostname)
        except LmtpUnavailable as exc:
            consumed = exc.consumed  # deliver directly, starting with what was read
        else:
            if code:
                raise CliError(message, code)
            print(message, file=sys.stderr)
            return 0

    async def work(store: Storage) -> str:
        try:
            await store.check_schema()
        except SchemaOutdated as exc:
            raise CliError(str(exc), EX_TEMPFAIL) from exc
        entry = await deliver_local(store, address, _stdin_chunks(consumed),
                                    mailbox=args.mailbox, return_path=args.sender,
                                    hostname=settings.server.hostname)
        return f"delivered to {address} (uid {entry.uid}, {entry.content.size} bytes)"

    from mailwing.services.delivery import (
        EmptyMessage,
        QuotaExceeded,
        UnknownMailbox,
        UnknownRecipient,
        deliver_local,
    )

    try:
        store = open_direct_store(settings)
        if store is None:
            message = with_storage(settings, work, check=False, uvloop=False)  # one message:
            # uvloop's import would cost more than it saves
        else:
            from mailwing.storage.sqlite.direct import run_direct

            message = run_direct(_then_close(store, work))
    except UnknownRecipient as exc:
        raise CliError(str(exc), EX_NOUSER) from exc
    except UnknownMailbox as exc:
        raise CliError(str(exc), EX_CANTCREAT) from exc
    except EmptyMessage as exc:
        raise CliError(str(exc), EX_DATAERR) from exc
    except QuotaExceeded as exc:
        raise CliError(str(exc), EX_NOPERM) from exc
    except TemporaryStorageError as exc:
        raise CliError(f"storage temporarily unavailable: {exc}", EX_TEMPFAIL) from exc
    except StorageError as exc:
        raise CliError(f"storage error: {exc}", EX_TEMPFAIL) from exc
    print(message, file=sys.stderr)
    return 0
