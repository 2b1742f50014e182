"""BODY[section]<partial> octets (RFC 3501 section 6.4.5) for the nested sample, written out
by hand from the sample text (CRLF form)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwing.mime import find_part, parse, partial, section, to_crlf

DATA = Path(__file__).resolve().parents[1] / "data" / "mime"

HEADER = (
    b"From: Outer Sender <outer@example.org>\r\n"
    b"To: undisclosed-recipients:;\r\n"
    b'Cc: Team: ann@example.org, "Bob B." <bob@example.org>;, carl@example.org\r\n'
    b"Subject: Fwd: nested\r\n"
    b" message test\r\n"
    b"Date: Thu, 3 Jul 2025 01:15:00 +0000\r\n"
    b"Message-ID: <outer@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
)
INNER_HEADER = (
    b"From: Inner <inner@example.net>\r\n"
    b"Subject: inner subject\r\n"
    b"Date: Fri, 27 Jun 2025 09:00:00 +0100\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
)
INNER_TEXT = (
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"inner plain\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=us-ascii\r\n"
    b"\r\n"
    b"<b>inner html</b>\r\n"
    b"--inner--"
)
PART2_MIME = b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
TEXT = (
    b"--outer\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"See attached.\r\n"
    b"--outer\r\n" + PART2_MIME + INNER_HEADER + INNER_TEXT + b"\r\n--outer--\r\n"
)


@pytest.fixture(scope="module")
def raw() -> bytes:
    data = to_crlf((DATA / "nested.eml").read_bytes())
    assert data == HEADER + TEXT  # the sample is what the constants above spell out
    return data


@pytest.mark.parametrize(
    ("part", "text", "fields", "expected"),
    [
        ((), None, (), HEADER + TEXT),
        ((), "HEADER", (), HEADER),
        ((), "TEXT", (), TEXT),
        ((1,), None, (), b"See attached."),
        ((1,), "MIME", (), b"Content-Type: text/plain\r\n\r\n"),
        ((2,), None, (), INNER_HEADER + INNER_TEXT),
        ((2,), "MIME", (), PART2_MIME),
        ((2,), "HEADER", (), INNER_HEADER),
        ((2,), "TEXT", (), INNER_TEXT),
        ((2, 1), None, (), b"inner plain"),
        ((2, 2), None, (), b"<b>inner html</b>"),
        ((2, 1), "MIME", (), b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"),
        (
            (),
            "HEADER.FIELDS",
            ("SUBJECT", "FROM"),
            b"From: Outer Sender <outer@example.org>\r\n"
            b"Subject: Fwd: nested\r\n message test\r\n\r\n",
        ),
        (
            (),
            "header.fields.not",
            ("to", "CC", "Subject", "message-id", "mime-version", "content-type"),
            b"From: Outer Sender <outer@example.org>\r\n"
            b"Date: Thu, 3 Jul 2025 01:15:00 +0000\r\n\r\n",
        ),
        ((2,), "HEADER.FIELDS", ("subject",), b"Subject: inner subject\r\n\r\n"),
        ((), "HEADER.FIELDS", ("x-absent",), b"\r\n"),
    ],
)
def test_sections(
    raw: bytes, part: tuple[int, ...], text: str | None, fields: tuple[str, ...], expected: bytes
) -> None:
    assert section(raw, parse(raw), part, text, fields) == expected


@pytest.mark.parametrize(
    ("part", "text"),
    [
        ((3,), None),
        ((0,), None),
        ((1, 1), None),
        ((2, 3), None),
        ((2, 1, 1), None),
        ((1,), "HEADER"),  # HEADER/TEXT need a message/rfc822 part
        ((1,), "TEXT"),
        ((), "MIME"),  # MIME needs part numbers
        ((), "BOGUS"),
    ],
)
def test_nonexistent_sections_are_none(raw: bytes, part: tuple[int, ...], text: str | None) -> None:
    assert section(raw, parse(raw), part, text) is None


def test_part_one_of_a_single_part_message_is_its_body() -> None:
    raw = to_crlf((DATA / "simple.eml").read_bytes())
    msg = parse(raw)
    body = b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
    assert section(raw, msg, (1,), None) == body
    assert section(raw, msg, (), "TEXT") == body
    assert section(raw, msg, (1,), "MIME") == raw[: msg.header_end]
    assert section(raw, msg, (2,), None) is None
    assert find_part(msg, (1,)) is msg


def test_part_numbers_into_a_single_part_encapsulated_message() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n"
        b"Content-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nbody text\r\n--m--\r\n"
    )
    msg = parse(raw)
    assert section(raw, msg, (1, 1), None) == b"body text"
    assert section(raw, msg, (1,), "TEXT") == b"body text"
    assert section(raw, msg, (1, 2), None) is None


def test_partial(raw: bytes) -> None:
    whole = section(raw, parse(raw), (), None)
    assert whole is not None
    assert partial(whole, 0, 10) == b"From: Oute"
    assert partial(whole, 6, 5) == b"Outer"
    assert partial(whole, len(whole) - 3, 100) == b"--\r\n"[-3:]
    assert partial(whole, len(whole), 10) == b""
    assert partial(whole, 10**9, 10) == b""
    assert partial(whole, 0, 0) == b""
