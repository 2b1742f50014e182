"""SMTP smuggling regression (CVE-2023-51764 family): only <CRLF>.<CRLF> ends DATA.

A sender that hides ``<LF>.<LF>MAIL FROM:...`` (or the CR / mixed variants) inside a message
must not get a second transaction out of it: the core keeps reading the body, the hidden text
never becomes a command, and the message is refused (bare CR/LF) without being stored -- or,
for BDAT, stored whole as the binary body it is.
"""

from __future__ import annotations

import pytest

from tests.unit.test_smtp_driver import codes, in_rcpt

SMUGGLED = b"MAIL FROM:<admin@mail.test>\r\nRCPT TO:<u@mail.test>\r\nDATA\r\nFrom: admin\r\n"

VARIANTS = {
    "lf-dot-lf": b"\n.\n",
    "cr-dot-cr": b"\r.\r",
    "lf-dot-crlf": b"\n.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-cr": b"\r\n.\r",
}


@pytest.mark.parametrize("end", VARIANTS.values(), ids=list(VARIANTS))
@pytest.mark.parametrize("split", [None, 1, 7, 30])
def test_fake_terminators_never_end_data(end: bytes, split: int | None) -> None:
    d = in_rcpt()
    d.send(b"DATA\r\n")
    stream = b"Subject: first\r\n\r\nhello" + end + SMUGGLED + b"\r\n.\r\n"
    if split is None:
        replies = d.send(stream)
    else:
        replies = b"".join(d.send(stream[i:i + split]) for i in range(0, len(stream), split))
    assert codes(replies) == ["550 5.6.0"]  # one reply: the one message, refused
    assert d.stored == [] and d.aborted == 1
    # the smuggled MAIL never ran: the session is between transactions
    assert codes(d.send(b"RCPT TO:<u@mail.test>\r\n")) == ["503 5.5.1"]


def test_dot_lines_with_crlf_are_content_not_terminators() -> None:
    d = in_rcpt()
    d.send(b"DATA\r\n")
    assert codes(d.send(b"a\r\n. \r\n.x\r\n..\r\n.\r\n")) == ["250 2.0.0"]
    assert d.stored[0][2] == b"a\r\n \r\nx\r\n.\r\n"


@pytest.mark.parametrize("end", VARIANTS.values(), ids=list(VARIANTS))
def test_bdat_bodies_carry_fake_terminators_as_plain_bytes(end: bytes) -> None:
    d = in_rcpt()
    body = b"hello" + end + SMUGGLED
    assert codes(d.send(b"BDAT %d LAST\r\n" % len(body) + body)) == ["250 2.0.0"]
    assert d.stored == [("a@remote.test", ("u@mail.test",), body)]
