"""SMTP command parsing (RFC 5321 section 4.1) into typed commands."""

from __future__ import annotations

import pytest

from mailwing.proto.smtp import commands as c
from mailwing.proto.smtp.replies import R, SmtpError


@pytest.mark.parametrize(("line", "expected"), [
    (b"EHLO client.test", c.Ehlo("client.test")),
    (b"helo [192.0.2.1]", c.Helo("[192.0.2.1]")),
    (b"MAIL FROM:<>", c.Mail(c.Address(""))),
    (b"MAIL FROM: <a@b.test>", c.Mail(c.Address("a@b.test"))),
    (b"mail from:<a@b.test> size=100 body=8bitmime SMTPUTF8 AUTH=a+2Bb@c",
     c.Mail(c.Address("a@b.test"), 100, "8BITMIME", True)),
    (b"MAIL FROM:<@relay.test,@r2.test:a@b.test>", c.Mail(c.Address("a@b.test"))),
    (b'MAIL FROM:<"odd local"@b.test>', c.Mail(c.Address('"odd local"@b.test'))),
    (b"RCPT TO:<Postmaster>", c.Rcpt(c.Address("postmaster"))),
    (b"RCPT TO:<u@[192.0.2.1]>", c.Rcpt(c.Address("u@[192.0.2.1]"))),
    ("RCPT TO:<pelé@exämple.test>".encode(), c.Rcpt(c.Address("pelé@exämple.test"))),
    (b"BDAT 0 LAST", c.Bdat(0, True)),
    (b"BDAT 100", c.Bdat(100, False)),
    (b"AUTH plain =", c.Auth("PLAIN", "=")),
    (b"STARTTLS", c.StartTls()),
    (b"QUIT ", c.Quit()),
])
def test_parse(line: bytes, expected: c.Command) -> None:
    assert c.parse_command(line) == expected


@pytest.mark.parametrize(("line", "reply"), [
    (b"MAIL FROM:a@b.test", R.MAIL_ARGS),
    (b"MAIL FROM:<a@b.test>SIZE=1", R.MAIL_ARGS),
    (b"MAIL FROM:<a@@b.test>", R.BAD_SENDER_SYNTAX),
    (b"MAIL FROM:<" + b"l" * 65 + b"@b.test>", R.BAD_SENDER_SYNTAX),
    (b"MAIL FROM:<a@b.test> SIZE=1 SIZE=2", R.BAD_PARAM_VALUE),
    (b"MAIL FROM:<a@b.test> SMTPUTF8=yes", R.BAD_PARAM_VALUE),
    (b"MAIL FROM:<a@b.test> RET=FULL", R.UNKNOWN_PARAM),
    (b"RCPT TO:<>", R.BAD_RCPT_SYNTAX),
    (b"RCPT TO:<a@b..test>", R.BAD_RCPT_SYNTAX),
    (b"EHLO", R.HELO_ARGS),
    (b"EHLO a b", R.HELO_ARGS),
    (b"BDAT 5 FIRST", R.BDAT_ARGS),
    ("EHLO exämple".encode(), R.BAD_BYTES),
    (b"MAIL FROM:<\xff@b.test>", R.BAD_BYTES),
    (b"NOOP\x01", R.BAD_BYTES),
])
def test_refused(line: bytes, reply: object) -> None:
    with pytest.raises(SmtpError) as info:
        c.parse_command(line)
    assert info.value.reply == reply


def test_auth_repr_hides_the_initial_response() -> None:
    assert "c2VjcmV0" not in repr(c.parse_command(b"AUTH PLAIN c2VjcmV0"))


def test_replies_encode_with_enhanced_codes_on_every_line() -> None:
    assert R.HELP.encode().count(b"214") == 3 and R.HELP.encode().count(b"2.0.0") == 3
    assert R.ehlo("h", "c", ["A", "B"]).encode() == b"250-h greets c\r\n250-A\r\n250 B\r\n"
    assert R.challenge("").encode() == b"334 \r\n"
