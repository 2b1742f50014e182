"""A scripted driver for the sans-IO SMTP core, shared by the SMTP unit tests.

It answers the core's requests the way the real session would, without I/O: recipients in
``unknown`` get ``550 5.1.1``, others are accepted; ``PASSWORD`` is the only good password;
bodies are collected so tests can compare what would have been stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailwing.proto.smtp.core import SmtpCore
from mailwing.proto.smtp.events import (
    AuthFailure,
    AuthRequest,
    BodyChunk,
    Close,
    CommandReceived,
    MailRequest,
    MessageAbort,
    MessageComplete,
    MessageStart,
    NeedData,
    RcptRequest,
    SendReply,
    StartTlsRequest,
)
from mailwing.proto.smtp.replies import R

PASSWORD = "secret"
GREETING = b"220 mail.test ESMTP mailwing\r\n"


@dataclass
class Driver:
    core: SmtpCore
    unknown: set[str] = field(default_factory=set)
    stored: list[tuple[str, tuple[object, ...], bytes]] = field(default_factory=list)
    aborted: int = 0
    closed: bool = False
    auth_requests: list[AuthRequest] = field(default_factory=list)
    _body: bytearray | None = None

    def send(self, data: bytes = b"") -> bytes:
        """Feed ``data`` and run until the core needs more input; return the replies."""
        if data:
            self.core.receive_data(data)
        out = []
        while True:
            event = self.core.next_event()
            match event:
                case SendReply(data=reply):
                    out.append(reply)
                case NeedData():
                    return b"".join(out)
                case Close():
                    self.closed = True
                    return b"".join(out)
                case CommandReceived():
                    pass
                case MailRequest():
                    self.core.mail_accepted()
                case RcptRequest(recipient=rcpt):
                    if rcpt.text in self.unknown:
                        self.core.rcpt_rejected(R.UNKNOWN_USER)
                    else:
                        self.core.rcpt_accepted(rcpt.text)
                case MessageStart():
                    assert self._body is None
                    self._body = bytearray()
                case BodyChunk(data=chunk):
                    assert self._body is not None
                    self._body += chunk
                case MessageAbort():
                    self._body = None
                    self.aborted += 1
                case MessageComplete(sender=sender, recipients=rcpts):
                    assert self._body is not None
                    self.stored.append((sender.text, rcpts, bytes(self._body)))
                    self._body = None
                    self.core.message_accepted(f"Q{len(self.stored)}")
                case AuthRequest():
                    self.auth_requests.append(event)
                    if event.password == PASSWORD:
                        self.core.auth_succeeded(event.username)
                    else:
                        self.core.auth_failed(AuthFailure.BAD_CREDENTIALS)
                case StartTlsRequest():
                    self.core.tls_started()


def driver(**kwargs: object) -> Driver:
    """A fresh core (greeting consumed) wrapped in a driver."""
    d = Driver(SmtpCore("mail.test", **kwargs))  # type: ignore[arg-type]
    assert d.send() == GREETING
    return d


def codes(replies: bytes) -> list[str]:
    """The final line of each reply as "code enhanced" (e.g. "250 2.1.0")."""
    result = []
    for line in replies.decode().split("\r\n"):
        if len(line) > 3 and line[3] == " ":
            parts = line.split(" ")
            enhanced = len(parts) > 1 and parts[1][:1].isdigit() and "." in parts[1]
            result.append(f"{parts[0]} {parts[1]}" if enhanced else parts[0])
    return result


def ready(**kwargs: object) -> Driver:
    d = driver(**kwargs)
    assert d.send(b"EHLO client.test\r\n").startswith(b"250-")
    return d


def in_rcpt(**kwargs: object) -> Driver:
    d = ready(**kwargs)
    assert codes(d.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<u@mail.test>\r\n")) == [
        "250 2.1.0", "250 2.1.5"]
    return d
