"""What the POP3 core asks of its driver (events out) and the maildrop it is given back.

Why: the core never does I/O. Each event below is either bytes to send or a request for
something only the driver can do (check a password, upgrade to TLS, stream a message body,
expunge). After a request event the core waits for the matching result call
(``auth_succeeded``/``auth_failed``, ``tls_started``, ``retrieve_done``/``retrieve_failed``,
``update_done``/``update_failed``) before it will produce another event: that keeps
pipelined commands in order (RFC 2449 section 6.6) without the core knowing about awaits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CLOSE",
    "NEED_DATA",
    "AuthFailure",
    "AuthRequest",
    "Close",
    "CommandReceived",
    "Event",
    "MaildropItem",
    "NeedData",
    "RetrieveRequest",
    "SendReply",
    "StartTlsRequest",
    "UpdateRequest",
]


@dataclass(frozen=True, slots=True)
class MaildropItem:
    """One message of the session's snapshot of the maildrop, numbered by position.

    ``uid`` identifies it to storage, ``uidl`` is the RFC 1939 section 7 unique-id (stable
    across sessions, 1-70 printable characters), ``octets`` the size with CRLF line endings
    (what LIST reports and RETR sends), ``content`` whatever the driver needs to stream it
    (opaque to the core; the session uses a ContentInfo)."""

    uid: int
    uidl: str
    octets: int
    content: Any = None


@dataclass(frozen=True, slots=True)
class SendReply:
    data: bytes


@dataclass(frozen=True, slots=True)
class NeedData:
    """No complete line is buffered: read more and call ``receive_data``."""


@dataclass(frozen=True, slots=True)
class Close:
    """The session is over: flush what was sent and close the connection."""


@dataclass(frozen=True, slots=True)
class CommandReceived:
    """A command was parsed (for logging and counting; arguments deliberately absent)."""

    name: str


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """Check these credentials; answer with ``auth_succeeded(maildrop)`` or
    ``auth_failed(AuthFailure)``."""

    username: str
    password: str
    mechanism: str  # "USER" for USER/PASS, else the SASL mechanism name

    def __repr__(self) -> str:
        return f"AuthRequest(username={self.username!r}, mechanism={self.mechanism!r})"


@dataclass(frozen=True, slots=True)
class StartTlsRequest:
    """The ``+OK`` for STLS has been emitted; upgrade, then call ``tls_started()``."""


@dataclass(frozen=True, slots=True)
class RetrieveRequest:
    """Send ``reply`` then the message (dot-stuffed, terminated), or only its header and
    ``body_lines`` lines of body for TOP; then call ``retrieve_done()``. If the content cannot
    be opened before anything was sent, call ``retrieve_failed(...)`` instead."""

    number: int
    item: MaildropItem
    reply: bytes
    body_lines: int | None = None  # None: RETR, the whole message


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    """QUIT in TRANSACTION: remove these UIDs in one transaction, then call
    ``update_done(removed)`` or ``update_failed()``."""

    uids: tuple[int, ...]


class AuthFailure(enum.Enum):
    BAD_CREDENTIALS = "bad-credentials"
    DISABLED = "disabled"
    THROTTLED = "throttled"
    TEMPFAIL = "tempfail"  # the authenticator could not decide (storage down)
    MAILDROP_TEMPFAIL = "maildrop-tempfail"  # credentials fine, INBOX could not be listed


NEED_DATA = NeedData()
CLOSE = Close()

Event = (
    SendReply | NeedData | Close | CommandReceived | AuthRequest | StartTlsRequest
    | RetrieveRequest | UpdateRequest
)
