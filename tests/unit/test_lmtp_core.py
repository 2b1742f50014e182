"""Transcripts against the sans-IO LMTP core (RFC 2033): LHLO, one reply per recipient,
XMAILBOX, and SMTP's bounds (line length, message size) kept."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mailwing.proto.lmtp import LR, LmtpCore
from mailwing.proto.lmtp.core import xtext_decode
from mailwing.proto.smtp.core import SmtpUsageError
from mailwing.proto.smtp.events import (
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
)
from mailwing.proto.smtp.replies import R, Reply
from tests.unit.test_smtp_driver import codes

GREETING = b"220 mail.test LMTP mailwing\r\n"


@dataclass
class LmtpDriver:
    """Answers the core as ``server.lmtp_session`` would: recipients in ``unknown`` are
    refused at RCPT, ``outcome`` gives a recipient's reply after the body (default 250)."""

    core: LmtpCore
    unknown: set[str] = field(default_factory=set)
    outcome: dict[str, Reply] = field(default_factory=dict)
    mailboxes: list[str | None] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    aborted: int = 0
    closed: bool = False
    _body: bytearray = field(default_factory=bytearray)

    def send(self, data: bytes = b"") -> bytes:
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
                case RcptRequest(recipient=rcpt, mailbox=mailbox):
                    if rcpt.text in self.unknown:
                        self.core.rcpt_rejected(R.UNKNOWN_USER)
                    else:
                        self.mailboxes.append(mailbox)
                        self.core.rcpt_accepted(rcpt.text)
                case MessageStart():
                    self._body = bytearray()
                case BodyChunk(data=chunk):
                    self._body += chunk
                case MessageAbort():
                    self.aborted += 1
                case MessageComplete(recipients=rcpts):
                    self.bodies.append(bytes(self._body))
                    self.core.message_results(
                        [self.outcome.get(str(r), LR.delivered(str(r), 1)) for r in rcpts])
                case _:
                    raise AssertionError(f"unexpected event {event!r}")


def driver(**kwargs: int) -> LmtpDriver:
    d = LmtpDriver(LmtpCore("mail.test", **kwargs))
    assert d.send() == GREETING
    return d


def ready(**kwargs: int) -> LmtpDriver:
    d = driver(**kwargs)
    assert codes(d.send(b"LHLO mta.test\r\n"))[-1] == "250"
    return d


def test_lhlo_keywords_and_no_helo_ehlo_starttls_or_auth() -> None:
    d = driver()
    assert codes(d.send(b"MAIL FROM:<a@b.test>\r\n")) == ["503 5.5.1"]  # LHLO first
    assert codes(d.send(b"HELO mta.test\r\n")) == ["500 5.5.1"]
    assert codes(d.send(b"EHLO mta.test\r\n")) == ["500 5.5.1"]
    lines = d.send(b"LHLO mta.test\r\n").decode().split("\r\n")
    assert lines[0] == "250-mail.test greets mta.test"
    for kw in ("PIPELINING", "SIZE 52428800", "ENHANCEDSTATUSCODES", "CHUNKING", "XMAILBOX"):
        assert f"250-{kw}" in lines or f"250 {kw}" in lines, kw
    assert not any("STARTTLS" in line or "AUTH" in line for line in lines)
    assert codes(d.send(b"STARTTLS\r\n")) == ["502 5.5.1"]
    assert codes(d.send(b"AUTH PLAIN AGFAYg==\r\n")) == ["502 5.5.1"]
    assert codes(d.send(b"LHLO\r\n")) == ["501 5.5.4"]


def test_one_reply_per_accepted_recipient_in_rcpt_order_after_the_dot() -> None:
    d = ready()
    d.unknown = {"ghost@b.test"}
    d.outcome = {"full@b.test": R.QUOTA_AT_END, "later@b.test": R.STORAGE_TEMPFAIL}
    pipelined = (b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<ann@b.test>\r\n"
                 b"RCPT TO:<ghost@b.test>\r\nRCPT TO:<full@b.test>\r\n"
                 b"RCPT TO:<later@b.test>\r\nDATA\r\n")
    assert codes(d.send(pipelined)) == ["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5",
                                        "250 2.1.5", "354"]
    reply = d.send(b"Subject: t\r\n\r\n..dot\r\n.\r\n")
    assert codes(reply) == ["250 2.0.0", "552 5.2.2", "451 4.3.0"]
    assert reply.startswith(b"250 2.0.0 <ann@b.test> delivered")
    assert d.bodies == [b"Subject: t\r\n\r\n.dot\r\n"]
    # the transaction is over: a new one starts from MAIL
    assert codes(d.send(b"RCPT TO:<ann@b.test>\r\n")) == ["503 5.5.1"]


def test_bdat_last_gets_one_reply_per_recipient_and_chunks_one_each() -> None:
    d = ready()
    d.send(b"MAIL FROM:<> BODY=BINARYMIME\r\nRCPT TO:<a@b.test>\r\nRCPT TO:<c@b.test>\r\n")
    assert codes(d.send(b"BDAT 4\r\nab\x00\n")) == ["250 2.0.0"]  # raw octets, no checks
    assert codes(d.send(b"BDAT 3 LAST\r\nxyz")) == ["250 2.0.0", "250 2.0.0"]
    assert d.bodies == [b"ab\x00\nxyz"]


def test_refused_body_is_refused_once_per_recipient() -> None:
    d = ready(max_message_size=1024)
    d.send(b"MAIL FROM:<s@r.test>\r\nRCPT TO:<a@b.test>\r\nRCPT TO:<c@b.test>\r\nDATA\r\n")
    assert codes(d.send(b"x" * 600 + b"\r\n" + b"y" * 600 + b"\r\n.\r\n")) == [
        "552 5.3.4", "552 5.3.4"]
    d.send(b"MAIL FROM:<s@r.test>\r\nRCPT TO:<a@b.test>\r\nRCPT TO:<c@b.test>\r\nDATA\r\n")
    assert codes(d.send(b"bare\nline\r\n.\r\n")) == ["550 5.6.0", "550 5.6.0"]
    d.send(b"MAIL FROM:<s@r.test>\r\nRCPT TO:<a@b.test>\r\nRCPT TO:<c@b.test>\r\n")
    assert codes(d.send(b"BDAT 2000 LAST\r\n" + b"z" * 2000)) == ["552 5.3.4", "552 5.3.4"]
    assert d.bodies == [] and d.aborted == 3


def test_declared_size_over_the_limit_and_command_line_bound() -> None:
    d = ready(max_message_size=2048)
    assert codes(d.send(b"MAIL FROM:<a@b.test> SIZE=4096\r\n")) == ["552 5.3.4"]
    assert codes(d.send(b"NOOP " + b"x" * 1200 + b"\r\n")) == ["500 5.5.2"]
    assert codes(d.send(b"NOOP\r\n")) == ["250 2.0.0"]  # still in step


def test_recipient_cap_and_data_without_recipient() -> None:
    d = ready(max_recipients=2)
    d.send(b"MAIL FROM:<a@b.test>\r\n")
    assert codes(d.send(b"DATA\r\n")) == ["503 5.5.1"]
    assert codes(d.send(b"RCPT TO:<a@b.test>\r\nRCPT TO:<b@b.test>\r\nRCPT TO:<c@b.test>\r\n")
                 ) == ["250 2.1.5", "250 2.1.5", "452 4.5.3"]


@pytest.mark.parametrize(("param", "mailbox"), [
    ("XMAILBOX=Archive", "Archive"),
    ("xmailbox=Lists+2FPython", "Lists/Python"),
    ("XMAILBOX=Caf+C3+A9+20Bar", "Café Bar"),
])
def test_xmailbox_parameter_names_the_mailbox(param: str, mailbox: str) -> None:
    d = ready()
    d.send(b"MAIL FROM:<a@b.test>\r\n")
    assert codes(d.send(f"RCPT TO:<a@b.test> {param}\r\n".encode())) == ["250 2.1.5"]
    assert d.mailboxes == [mailbox]


@pytest.mark.parametrize(("line", "code"), [
    (b"RCPT TO:<a@b.test> FOO=1\r\n", "555 5.5.4"),
    (b"RCPT TO:<a@b.test> XMAILBOX\r\n", "501 5.5.4"),
    (b"RCPT TO:<a@b.test> XMAILBOX=a XMAILBOX=b\r\n", "501 5.5.4"),
    (b"RCPT TO:<a@b.test> XMAILBOX=bad+zz\r\n", "501 5.5.4"),
    (b"RCPT TO:<a@b.test> XMAILBOX=+FF\r\n", "501 5.5.4"),  # not UTF-8
    (b"RCPT TO:<not an address>\r\n", "501 5.1.3"),
])
def test_bad_recipient_lines(line: bytes, code: str) -> None:
    d = ready()
    d.send(b"MAIL FROM:<a@b.test>\r\n")
    assert codes(d.send(line)) == [code]
    assert d.mailboxes == []


def test_too_many_errors_close_the_session() -> None:
    d = ready(max_errors=3)
    assert codes(d.send(b"FOO\r\nBAR\r\nBAZ\r\n")) == ["500 5.5.2", "500 5.5.2", "421 4.7.0"]
    assert d.closed


def test_results_must_match_the_recipients() -> None:
    core = LmtpCore("mail.test")
    core.receive_data(b"LHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<a@b.test>\r\n"
                      b"BDAT 1 LAST\r\nx")
    while not isinstance(event := core.next_event(), MessageComplete):
        if isinstance(event, MailRequest):
            core.mail_accepted()
        elif isinstance(event, RcptRequest):
            core.rcpt_accepted(event.recipient)
    with pytest.raises(SmtpUsageError):
        core.message_results([])
    core.message_results([LR.delivered("a@b.test", 1)])
    with pytest.raises(SmtpUsageError):
        core.message_results([LR.delivered("a@b.test", 1)])


def test_xtext_round_trip_with_the_client_encoder() -> None:
    from mailwing.cli.lmtp_client import xtext

    for name in ("INBOX", "a+b=c", "Ünïcödé/Sub", "with space", "x" * 300):
        assert xtext_decode(xtext(name)) == name
