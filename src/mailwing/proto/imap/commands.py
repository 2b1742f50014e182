"""Typed IMAP commands (RFC 3501 section 6 and the extensions listed in ``__init__``).

Why: the session dispatches on the class of a frozen value, never on strings, and the
state table (``states.py``) is keyed by these classes. One class per command; the UID forms
(RFC 3501 section 6.4.8, RFC 4315 UID EXPUNGE, RFC 6851 UID MOVE) are the same class with
``uid=True``. EXAMINE is ``Select(readonly=True)``. Mailbox names are already decoded from
modified UTF-7, and ``INBOX`` in any case is ``"INBOX"``. Parsing lives in ``parser.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from mailwing.proto.imap.fetchitems import FetchItem
from mailwing.proto.imap.search import SearchKey
from mailwing.proto.imap.seqset import SequenceSet

__all__ = [
    "Append", "Authenticate", "Capability", "Check", "Close", "Command", "Copy", "Create",
    "Delete", "Enable", "Examine", "Expunge", "Fetch", "Id", "Idle", "List", "Login",
    "Logout", "Lsub", "Move", "Namespace", "Noop", "QresyncParams", "Rename", "Search",
    "Select", "StartTls", "Status", "Store", "Subscribe", "Unselect", "Unsubscribe",
]


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    name: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class Capability(Command):
    name: ClassVar[str] = "CAPABILITY"


@dataclass(frozen=True, slots=True)
class Noop(Command):
    name: ClassVar[str] = "NOOP"


@dataclass(frozen=True, slots=True)
class Logout(Command):
    name: ClassVar[str] = "LOGOUT"


@dataclass(frozen=True, slots=True)
class StartTls(Command):
    name: ClassVar[str] = "STARTTLS"


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    name: ClassVar[str] = "AUTHENTICATE"
    mechanism: str  # upper-cased
    initial_response: bytes | None = None  # RFC 4959 SASL-IR, decoded; "=" gives b""

    def __repr__(self) -> str:
        return f"Authenticate(tag={self.tag!r}, mechanism={self.mechanism!r}, ...)"


@dataclass(frozen=True, slots=True)
class Login(Command):
    name: ClassVar[str] = "LOGIN"
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Login(tag={self.tag!r}, username={self.username!r}, ...)"


@dataclass(frozen=True, slots=True)
class QresyncParams:
    """RFC 7162 section 3.2.5: ``QRESYNC (uidvalidity modseq [known-uids [seq-match]])``.
    ``seq_match`` pairs the client's message numbers with the UIDs it knows for them."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select(Command):
    name: ClassVar[str] = "SELECT"
    mailbox: str
    readonly: bool = False  # EXAMINE
    condstore: bool = False  # RFC 7162 "(CONDSTORE)" select parameter
    qresync: QresyncParams | None = None  # RFC 7162 "(QRESYNC (...))" select parameter


Examine = Select


@dataclass(frozen=True, slots=True)
class Create(Command):
    name: ClassVar[str] = "CREATE"
    mailbox: str
    special_use: tuple[str, ...] = ()  # RFC 6154 section 3: CREATE name (USE (\Sent))


@dataclass(frozen=True, slots=True)
class Delete(Command):
    name: ClassVar[str] = "DELETE"
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename(Command):
    name: ClassVar[str] = "RENAME"
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Subscribe(Command):
    name: ClassVar[str] = "SUBSCRIBE"
    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe(Command):
    name: ClassVar[str] = "UNSUBSCRIBE"
    mailbox: str


@dataclass(frozen=True, slots=True)
class List(Command):
    """``patterns`` has one entry unless the RFC 5258 ``(pat1 pat2)`` form was used.
    ``select_options`` e.g. ``("SPECIAL-USE",)``, ``return_options`` e.g.
    ``("SPECIAL-USE",)``; both upper-cased."""

    name: ClassVar[str] = "LIST"
    reference: str
    patterns: tuple[str, ...]
    select_options: tuple[str, ...] = ()
    return_options: tuple[str, ...] = ()

    @property
    def extended(self) -> bool:
        return bool(self.select_options or self.return_options or len(self.patterns) != 1)


@dataclass(frozen=True, slots=True)
class Lsub(Command):
    name: ClassVar[str] = "LSUB"
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Status(Command):
    name: ClassVar[str] = "STATUS"
    mailbox: str
    items: tuple[str, ...]  # MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ


@dataclass(frozen=True, slots=True)
class Append(Command):
    name: ClassVar[str] = "APPEND"
    mailbox: str
    flags: tuple[str, ...]
    internal_date: datetime | None
    message: bytes

    def __repr__(self) -> str:
        return (f"Append(tag={self.tag!r}, mailbox={self.mailbox!r}, flags={self.flags!r}, "
                f"internal_date={self.internal_date!r}, message=<{len(self.message)} octets>)")


@dataclass(frozen=True, slots=True)
class Check(Command):
    name: ClassVar[str] = "CHECK"


@dataclass(frozen=True, slots=True)
class Close(Command):
    name: ClassVar[str] = "CLOSE"


@dataclass(frozen=True, slots=True)
class Unselect(Command):
    name: ClassVar[str] = "UNSELECT"


@dataclass(frozen=True, slots=True)
class Expunge(Command):
    name: ClassVar[str] = "EXPUNGE"
    uid_set: SequenceSet | None = None  # UID EXPUNGE (RFC 4315 section 2.1)

    @property
    def uid(self) -> bool:
        return self.uid_set is not None


@dataclass(frozen=True, slots=True)
class Search(Command):
    name: ClassVar[str] = "SEARCH"
    criteria: SearchKey
    charset: str | None = None
    uid: bool = False
    return_options: tuple[str, ...] | None = None  # RFC 4731 RETURN (...), parsed only


@dataclass(frozen=True, slots=True)
class Fetch(Command):
    name: ClassVar[str] = "FETCH"
    sequence_set: SequenceSet
    items: tuple[FetchItem, ...]
    uid: bool = False
    changed_since: int | None = None  # RFC 7162 CHANGEDSINCE modifier
    vanished: bool = False  # RFC 7162 section 3.2.6 VANISHED modifier (UID FETCH only)


@dataclass(frozen=True, slots=True)
class Store(Command):
    name: ClassVar[str] = "STORE"
    sequence_set: SequenceSet
    mode: str = ""  # "+", "-" or "" (replace)
    silent: bool = False
    flags: tuple[str, ...] = ()
    uid: bool = False
    unchanged_since: int | None = None  # RFC 7162 UNCHANGEDSINCE modifier


@dataclass(frozen=True, slots=True)
class Copy(Command):
    name: ClassVar[str] = "COPY"
    sequence_set: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Move(Command):
    name: ClassVar[str] = "MOVE"
    sequence_set: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Idle(Command):
    name: ClassVar[str] = "IDLE"


@dataclass(frozen=True, slots=True)
class Namespace(Command):
    name: ClassVar[str] = "NAMESPACE"


@dataclass(frozen=True, slots=True)
class Enable(Command):
    name: ClassVar[str] = "ENABLE"
    capabilities: tuple[str, ...] = ()  # upper-cased


@dataclass(frozen=True, slots=True)
class Id(Command):
    name: ClassVar[str] = "ID"
    params: dict[str, str | None] | None = None  # RFC 2971; keys as sent

    def __hash__(self) -> int:
        return hash((self.tag, tuple((self.params or {}).items())))
