"""Frozen records shared by every layer (storage, services, protocol sessions).

They carry no behaviour beyond small derived values, so that a storage backend can build them
from rows and a protocol session can read them without importing either side.

They are :class:`typing.NamedTuple` classes rather than frozen dataclasses: immutable, typed and
hashable all the same, but a dataclass costs a compile of generated code per method when its
module is imported, and ``mailwing deliver`` (run once per message by an MTA, issue #9) imports
this module on every run. ``record._replace(field=value)`` gives a changed copy.
No ``from __future__ import annotations`` here: a NamedTuple compiles each annotation
that is a string (as a ForwardRef) when its class is made; real ones cost nothing.
"""

from datetime import datetime
from typing import NamedTuple

__all__ = [
    "DEFAULT_MAILBOXES",
    "ContentInfo",
    "Domain",
    "HeaderFields",
    "MailEntry",
    "Mailbox",
    "User",
    "UserUsage",
]

#: Mailboxes every new user gets, with their RFC 6154 special-use attribute (None for INBOX).
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


class Domain(NamedTuple):
    id: int
    name: str  # lower-case, IDNA form as typed by the administrator


class User(NamedTuple):
    id: int
    address: str  # lower-case local@domain
    domain_id: int
    password_hash: str  # an Argon2id PHC string ("$argon2id$...")
    enabled: bool
    quota_bytes: int  # 0 means unlimited
    created_at: datetime


class UserUsage(NamedTuple):
    """One line of `mailwing user list`."""

    address: str
    enabled: bool
    message_count: int
    bytes_used: int
    quota_bytes: int


class Mailbox(NamedTuple):
    id: int
    user_id: int
    name: str  # hierarchy delimiter "/", stored as Unicode (IMAP's modified UTF-7 is a wire form)
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None  # "\\Sent", "\\Trash", ... or None
    subscribed: bool


class HeaderFields(NamedTuple):
    """Fields parsed once at delivery so that search does not re-read message bodies."""

    message_id: str | None = None
    subject: str | None = None
    from_: str | None = None
    to: str | None = None
    cc: str | None = None
    date: datetime | None = None


class ContentInfo(NamedTuple):
    """A stored message content: the exact bytes received, kept once however many copies exist.

    ``size`` is the raw octet count; ``crlf_size`` the octet count once every line ending is
    CRLF (what POP3 LIST and IMAP RFC822.SIZE report); ``crlf_clean`` says the raw bytes already
    use CRLF everywhere, so they can be sent without rewriting line endings.
    """

    sha256: str  # hex digest of the raw bytes; the content's identity
    size: int
    crlf_size: int
    crlf_clean: bool
    fields: HeaderFields = HeaderFields()


class MailEntry(NamedTuple):
    """One copy of a message in one mailbox."""

    id: int
    mailbox_id: int
    uid: int
    modseq: int
    internal_date: datetime
    flags: frozenset[str]
    content: ContentInfo
