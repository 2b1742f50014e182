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
from mailwing.proto.imap.sortparse import SortKey

__all__ = [
    "Append", "AppendMessage", "Authenticate", "Capability", "CatPart", "Check", "Close",
    "Command", "Compress", "Copy", "Create", "Delete", "Enable", "Examine", "Expunge", "Fetch",
    "GetQuota", "GetQuotaRoot", "Id", "Idle", "List", "Login", "Logout", "Lsub", "Move",
    "Namespace", "Noop", "QresyncParams", "Rename", "Search", "Select", "SetQuota", "Sort",
    "StartTls", "Status", "Store", "Subscribe", "Thread", "Unselect",
    "Unsubscribe",
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

    @property
    def seq_match_paired(self) -> bool:
        """Whether seq-match-data pairs as many message numbers as UIDs (section 3.2.5:
        otherwise the SELECT is BAD; checked by the session, after the old mailbox closed)."""
        if self.seq_match is None:
            return True
        return _count(self.seq_match[0]) == _count(self.seq_match[1])


def _count(numbers: SequenceSet) -> int:
    """How many numbers a set without ``*`` holds (overlapping ranges counted once)."""
    total, last = 0, 0
    for lo, hi in sorted((min(a, b), max(a, b)) for a, b in numbers.ranges):
        lo = max(lo, last + 1)
        if hi >= lo:
            total += hi - lo + 1
            last = hi
    return total


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
    status_items: tuple[str, ...] = ()  # RFC 5819 RETURN (STATUS (...))

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
    items: tuple[str, ...]  # MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE ...


@dataclass(frozen=True, slots=True)
class CatPart:
    """One part of an RFC 4469 CATENATE list: ``TEXT`` data, or an IMAP ``URL`` whose data
    (a message or a section of one) is copied in."""

    text: bytes | None = None
    url: str | None = None

    def __repr__(self) -> str:
        if self.url is not None:
            return f"CatPart(url={self.url!r})"
        return f"CatPart(text=<{len(self.text or b'')} octets>)"


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND: ``message`` (a literal), or ``parts`` (CATENATE).
    ``binary``: sent as a ``literal8`` (RFC 3516 section 4.4), ``utf8``: inside the RFC 6855
    ``UTF8 (...)`` data item."""

    flags: tuple[str, ...] = ()
    internal_date: datetime | None = None
    message: bytes = b""
    parts: tuple[CatPart, ...] | None = None
    binary: bool = False
    utf8: bool = False

    def __repr__(self) -> str:
        body = (f"parts={self.parts!r}" if self.parts is not None
                else f"message=<{len(self.message)} octets>")
        return (f"AppendMessage(flags={self.flags!r}, internal_date={self.internal_date!r}, "
                f"{body}, binary={self.binary}, utf8={self.utf8})")


@dataclass(frozen=True, slots=True)
class Append(Command):
    """The first message's fields are inline (the plain RFC 3501 form); ``more`` holds the
    further messages of an RFC 3502 MULTIAPPEND, and ``parts``/``binary``/``utf8`` the first
    message's CATENATE parts and data form (see :class:`AppendMessage`)."""

    name: ClassVar[str] = "APPEND"
    mailbox: str
    flags: tuple[str, ...]
    internal_date: datetime | None
    message: bytes
    more: tuple[AppendMessage, ...] = ()
    parts: tuple[CatPart, ...] | None = None
    binary: bool = False
    utf8: bool = False

    @property
    def messages(self) -> tuple[AppendMessage, ...]:
        first = AppendMessage(self.flags, self.internal_date, self.message, self.parts,
                              self.binary, self.utf8)
        return (first, *self.more)

    def __repr__(self) -> str:
        return (f"Append(tag={self.tag!r}, mailbox={self.mailbox!r}, flags={self.flags!r}, "
                f"internal_date={self.internal_date!r}, message=<{len(self.message)} octets>, "
                f"more={len(self.more)}, parts={self.parts!r})")


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
    return_options: tuple[str, ...] | None = None  # RFC 4731 / 5182 RETURN (...)


@dataclass(frozen=True, slots=True)
class Sort(Command):
    """RFC 5256 SORT; ``return_options`` set for the RFC 5267 ESORT form."""

    name: ClassVar[str] = "SORT"
    keys: tuple[SortKey, ...]
    criteria: SearchKey
    charset: str = "UTF-8"
    uid: bool = False
    return_options: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Thread(Command):
    """RFC 5256 THREAD with ORDEREDSUBJECT or REFERENCES."""

    name: ClassVar[str] = "THREAD"
    algorithm: str
    criteria: SearchKey
    charset: str = "UTF-8"
    uid: bool = False


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
class Compress(Command):
    """RFC 4978 ``COMPRESS mechanism`` (upper-cased)."""

    name: ClassVar[str] = "COMPRESS"
    mechanism: str = "DEFLATE"


@dataclass(frozen=True, slots=True)
class GetQuota(Command):
    """RFC 9208 section 4.2 ``GETQUOTA root``."""

    name: ClassVar[str] = "GETQUOTA"
    root: str = ""


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(Command):
    """RFC 9208 section 4.3 ``GETQUOTAROOT mailbox``."""

    name: ClassVar[str] = "GETQUOTAROOT"
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class SetQuota(Command):
    """RFC 9208 section 4.4 ``SETQUOTA root (resource limit ...)``; names upper-cased."""

    name: ClassVar[str] = "SETQUOTA"
    root: str = ""
    limits: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Id(Command):
    name: ClassVar[str] = "ID"
    params: dict[str, str | None] | None = None  # RFC 2971; keys as sent

    def __hash__(self) -> int:
        return hash((self.tag, tuple((self.params or {}).items())))
