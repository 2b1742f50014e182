"""The vocabulary of transaction scripts: what a script may ask its backend to do.

Every storage operation is written once, in :mod:`mailwing.storage.scripts`, as a generator
that *yields* these steps and receives their results, in the spirit of a sans-IO protocol core:
the script decides, the backend only executes. The SQLite backend drives scripts synchronously
in its database thread (so several can share one transaction and one fsync); the PostgreSQL
backend drives them with ``await`` on an asyncpg connection. Neither duplicates the logic.

SQL is written in PostgreSQL's ``$1`` placeholder style, in the common subset both databases
speak (``RETURNING``, ``ON CONFLICT``). Two constructs differ and are rewritten by each backend:
"column is in this list of values", written ``col @IN($n)``, and "this flag set holds the flag
``$n``", written ``@HASFLAG(col, $n)`` (SQLite keeps flags as space-separated text, PostgreSQL
as ``text[]``). Parameter values that need adapting (datetimes, flag sets, lists) are adapted
by the backend too.

Steps are :class:`typing.NamedTuple` classes, not dataclasses: as immutable and typed, cheaper
to build per statement, and free of the per-class code generation a dataclass pays at import
(``mailwing deliver`` imports this module on every run, issue #9).
No ``from __future__ import annotations`` here: a NamedTuple compiles each annotation
that is a string (as a ForwardRef) when its class is made; real ones cost nothing.
"""

import re
from collections.abc import Callable, Generator
from contextlib import closing
from typing import Any, NamedTuple, TypeVar, cast

__all__ = [
    "HAS_FLAG",
    "IN_LIST",
    "Batch",
    "Changed",
    "DropBlobs",
    "HasBlob",
    "Query",
    "Script",
    "Serialize",
    "Step",
    "TableExists",
    "Volatile",
    "advance",
    "drive",
    "q",
]

T = TypeVar("T")

#: Matches ``@IN($n)``; group 1 is the parameter number.
IN_LIST = re.compile(r"@IN\(\$(\d+)\)")
#: Matches ``@HASFLAG(col, $n)``; group 1 is the column, group 2 the parameter number.
HAS_FLAG = re.compile(r"@HASFLAG\(([\w.]+), \$(\d+)\)")


class Query(NamedTuple):
    """Run one statement; the result is its rows as a list of sequences (maybe empty)."""

    sql: str
    args: tuple[Any, ...] = ()


def q(sql: str, *args: Any) -> Query:
    """Shorthand used by scripts: ``rows = yield q("SELECT ...", a, b)``."""
    return Query(sql, args)


class Batch(NamedTuple):
    """Run several ``;``-separated statements without parameters (a migration file)."""

    sql: str


class TableExists(NamedTuple):
    """Result: whether a table of that name exists."""

    name: str


class Serialize(NamedTuple):
    """Hold a lock named ``key`` until the transaction ends (one migrator at a time).

    SQLite needs nothing (its write transactions are already exclusive); PostgreSQL takes a
    transaction-scoped advisory lock."""

    key: str


class HasBlob(NamedTuple):
    """Result: whether the bytes of content ``sha256`` are stored, and keep them from being
    removed by a concurrent transaction until this one ends."""

    sha256: str


class DropBlobs(NamedTuple):
    """The contents rows of these digests were deleted: remove their bytes (in the same
    transaction when they live in the database, after the commit when they are files)."""

    sha256s: tuple[str, ...]


class Changed(NamedTuple):
    """The HIGHESTMODSEQ of these mailboxes rose (or they were deleted): once the transaction
    commits, wake whoever waits for them (``Storage.wait_for_change``). PostgreSQL sends a
    NOTIFY inside the transaction (delivered at commit); SQLite signals after its commit."""

    mailbox_ids: tuple[int, ...]


class Volatile:
    """This transaction's commit need not wait for the disk: what it writes may be lost in a
    power cut or OS crash (never in a crash of the process) without losing mail. Scripts
    yield it for the transactions of ``storage.fsync_flag_changes = false`` (the default, as
    Dovecot's ``fsync_mode = optimized``): flag changes, expunges and IMAP \\Recent claims
    (lost, the messages are simply \\Recent again). Never for anything that creates or
    moves a message, a mailbox, a user or a queue entry.

    Yield it as the script's *first* step: SQLite chooses how a transaction commits before it
    begins (``PRAGMA synchronous`` cannot change inside one), so its executor looks for this
    step before ``BEGIN``; one yielded later is ignored there (the commit stays durable).
    PostgreSQL commits such a transaction with ``synchronous_commit`` off; SQLite commits a
    group-commit batch with ``synchronous = NORMAL`` when every write in it is volatile. In
    both, a later durable commit flushes the log, which is sequential, and with it every
    earlier relaxed commit: a relaxed commit can only be lost together with everything
    committed after it, so no acknowledged message is ever lost behind it.

    A plain class: a NamedTuple without fields would be an empty, hence false, tuple."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return other.__class__ is self.__class__

    def __hash__(self) -> int:
        return hash(Volatile)

    def __repr__(self) -> str:
        return "Volatile()"


Step = Query | Batch | TableExists | Serialize | HasBlob | DropBlobs | Changed | Volatile
Script = Generator[Step, Any, T]


def advance(script: Script[T], value: Any) -> tuple[bool, Any]:
    """Send ``value`` into ``script``: (False, its next step) or (True, its result)."""
    try:
        return False, script.send(value)
    except StopIteration as stop:
        return True, stop.value


def drive(script: Script[T], execute: Callable[[Step], Any]) -> T:
    """Run ``script`` to its end, handing each step to ``execute(step)`` (synchronous)."""
    with closing(script):
        done, item = advance(script, None)
        while not done:
            done, item = advance(script, execute(item))
        return cast(T, item)
