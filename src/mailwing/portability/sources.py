"""What an import reads, whatever the source (Maildir, mbox, remote IMAP).

A source first *scans* (cheap: directory listings, an index of an mbox file, IMAP FETCH of
flags and sizes), giving every folder with references to its messages, so that the importer
knows the total for its progress bar and can skip duplicates before reading a body. Bodies
are then *loaded* one at a time. Anything wrong with one item (an unreadable file, a folder
name that cannot be represented) becomes a :class:`Problem` for the summary, never an
exception that would stop the whole import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from mailwing.services.imap_mailboxes import InvalidName, canonical

__all__ = [
    "BadMessage",
    "FolderScan",
    "MessageRef",
    "Problem",
    "Source",
    "check_message",
    "clean_keywords",
    "guess_special_use",
    "mailbox_name",
]

#: A header field name (RFC 5322 section 2.2: printable ASCII except colon) and its colon.
_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_FLAG_ATOM = re.compile(r"\\?[!#$&'+-.0-9:<-Z^-z|~]+")

#: Folder names (top level, case-insensitive) that other servers and clients use for the
#: RFC 6154 special-use mailboxes; such a folder is imported into the user's own one.
_SPECIAL_NAMES: dict[str, str] = {
    **dict.fromkeys(("sent", "sent items", "sent messages", "sent mail"), "\\Sent"),
    **dict.fromkeys(("drafts", "draft"), "\\Drafts"),
    **dict.fromkeys(("trash", "deleted items", "deleted messages", "bin"), "\\Trash"),
    **dict.fromkeys(("junk", "spam", "junk e-mail", "junk email", "bulk mail"), "\\Junk"),
    **dict.fromkeys(("archive", "archives"), "\\Archive"),
}
SPECIAL_USES = frozenset(_SPECIAL_NAMES.values())


class BadMessage(Exception):
    """One message cannot be imported; ``str(exc)`` says why (for the summary)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """An item that was skipped, and why."""

    item: str  # a path, "file:message N", "imap folder/uid" ...
    reason: str


@dataclass(frozen=True, slots=True)
class MessageRef:
    """One message of a scanned folder, not read yet."""

    label: str  # where it comes from, for reports
    key: Any  # the source's own handle (a path, file offsets, a UID)
    flags: frozenset[str] = frozenset()
    internal_date: datetime | None = None
    #: Known before loading (IMAP): a message whose (Message-ID, CRLF size) is already in the
    #: target mailbox is skipped without downloading it.
    message_id: str | None = None
    crlf_size: int | None = None


@dataclass(slots=True)
class FolderScan:
    """A folder as found in the source, with mailwing's name for it."""

    name: str  # "/"-delimited Unicode, canonical (INBOX upper case)
    special_use: str | None
    messages: list[MessageRef] = field(default_factory=list)
    label: str = ""


class Source(Protocol):
    """A place mail is imported from."""

    async def scan(self) -> tuple[list[FolderScan], list[Problem]]:
        """Every folder (parents before children) with its messages in source order."""

    async def load(self, ref: MessageRef) -> bytes:
        """The message's exact bytes; :class:`BadMessage` if it cannot be read."""

    async def close(self) -> None: ...


def check_message(data: bytes) -> None:
    """Raise :class:`BadMessage` unless ``data`` starts like an RFC 5322 message."""
    if not data.strip():
        raise BadMessage("empty message")
    if not _HEADER_LINE.match(data):
        raise BadMessage("no header (the first line is not a header field)")


def mailbox_name(levels: list[str]) -> str:
    """mailwing's name for a folder path; :class:`InvalidName` when it cannot be one."""
    if not levels or any("/" in level for level in levels):
        raise InvalidName("a folder level contains the hierarchy delimiter '/'")
    return canonical("/".join(levels))


def guess_special_use(name: str) -> str | None:
    """The special use a top-level folder's name suggests (``Sent Items`` -> ``\\Sent``)."""
    if "/" in name:
        return None
    return _SPECIAL_NAMES.get(name.casefold())


def clean_keywords(flags: set[str]) -> frozenset[str]:
    """Only flags IMAP can carry as atoms (RFC 3501 section 9); the rest are dropped."""
    return frozenset(f for f in flags if _FLAG_ATOM.fullmatch(f) and f.lower() != "\\recent")
