"""What the SMTP core asks of its driver (events out), and what it is told back.

Why: the core never does I/O or looks anything up. Each event is bytes to send, a body
chunk to store, or a request that only the driver can answer (a password check, a TLS
upgrade, a sender or recipient decision by ``services.policy``, committing the message).
After a request the core produces nothing until the matching result call arrives, which
keeps pipelined commands in order (RFC 2920 section 3) without the core knowing about awaits.

Body flow for one transaction: ``MessageStart`` (open a content writer), any number of
``BodyChunk`` (already dot-unstuffed, for DATA; raw, for BDAT), then either
``MessageComplete`` (a request: commit and answer ``message_accepted`` /
``message_failed``) or ``MessageAbort`` (throw the writer away; the core sends the reply).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from mailwing.proto.smtp.commands import Address, Mail

__all__ = [
    "CLOSE", "NEED_DATA", "AuthFailure", "AuthRequest", "BodyChunk", "Close",
    "CommandReceived", "Event", "MailRequest", "MessageAbort", "MessageComplete",
    "MessageStart", "NeedData", "RcptRequest", "SendReply", "StartTlsRequest",
]


@dataclass(frozen=True, slots=True)
class SendReply:
    data: bytes


@dataclass(frozen=True, slots=True)
class NeedData:
    """Nothing complete is buffered: flush the replies, read, call ``receive_data``."""


@dataclass(frozen=True, slots=True)
class Close:
    """The session is over: flush and close."""


@dataclass(frozen=True, slots=True)
class CommandReceived:
    """A command was parsed (for counting and debug logging; arguments deliberately absent)."""

    name: str


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """Check credentials; answer ``auth_succeeded(address)`` or ``auth_failed(failure)``."""

    username: str
    password: str
    mechanism: str

    def __repr__(self) -> str:
        return f"AuthRequest(username={self.username!r}, mechanism={self.mechanism!r})"


@dataclass(frozen=True, slots=True)
class StartTlsRequest:
    """``220 ready to start TLS`` has been emitted: flush, upgrade, call ``tls_started()``."""


@dataclass(frozen=True, slots=True)
class MailRequest:
    """Decide on the sender; answer ``mail_accepted()`` or ``mail_rejected(reply)``."""

    mail: Mail
    user: str | None  # the authenticated address, if any


@dataclass(frozen=True, slots=True)
class RcptRequest:
    """Decide on a recipient; answer ``rcpt_accepted(target)`` (``target`` is kept for
    ``MessageComplete``) or ``rcpt_rejected(reply)``."""

    recipient: Address
    user: str | None
    mailbox: str | None = None  # LMTP's XMAILBOX parameter (proto.lmtp); None: INBOX


@dataclass(frozen=True, slots=True)
class MessageStart:
    """The body begins: open a content writer (trace header fields first)."""

    bdat: bool


@dataclass(frozen=True, slots=True)
class BodyChunk:
    data: bytes


@dataclass(frozen=True, slots=True)
class MessageAbort:
    """The body was refused (size, bad line endings) or the transaction was reset: discard
    what was written. No result is expected."""


@dataclass(frozen=True, slots=True)
class MessageComplete:
    """The whole body arrived intact: check, commit durably, then call
    ``message_accepted(queue_id)`` or ``message_failed(reply)``."""

    sender: Address
    recipients: tuple[Any, ...]  # the targets given to rcpt_accepted, in order
    size: int  # octets of body received (after dot-unstuffing)


class AuthFailure(enum.Enum):
    BAD_CREDENTIALS = "bad-credentials"
    DISABLED = "disabled"
    THROTTLED = "throttled"
    TEMPFAIL = "tempfail"


NEED_DATA = NeedData()
CLOSE = Close()

Event = (
    SendReply | NeedData | Close | CommandReceived | AuthRequest | StartTlsRequest
    | MailRequest | RcptRequest | MessageStart | BodyChunk | MessageAbort | MessageComplete
)
