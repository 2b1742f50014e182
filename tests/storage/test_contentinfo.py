"""Content description: digest, CRLF accounting across chunk boundaries, header fields.

These are pure (no database); the last test checks both backends report the same info."""

from __future__ import annotations

import hashlib
import random
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailwing.storage import Storage
from mailwing.storage.contentinfo import (
    HEADER_CAP,
    SMALL_CONTENT,
    ContentInfoBuilder,
    Sha256,
    email_header_fields,
    parse_date,
    parse_header_fields,
)


def describe(*chunks: bytes):  # type: ignore[no-untyped-def]
    builder = ContentInfoBuilder()
    for chunk in chunks:
        builder.update(chunk)
    return builder.result()


@pytest.mark.parametrize("loaded", [True, False], ids=["hashlib loaded", "hashlib not loaded"])
@pytest.mark.parametrize("size", [0, 1, 4096, SMALL_CONTENT, SMALL_CONTENT + 1,
                                  3 * SMALL_CONTENT + 7])
def test_sha256_matches_hashlib(size: int, loaded: bool, monkeypatch: pytest.MonkeyPatch
                                ) -> None:
    """The built-in module (small contents in a process without hashlib, as ``mailwing
    deliver``) and OpenSSL (everything else) give the same digest, whatever the chunking."""
    data = random.Random(size).randbytes(size)
    if not loaded:
        monkeypatch.delitem(sys.modules, "hashlib")
    for step in (size or 1, 1000, 65536):
        digest = Sha256()
        for start in range(0, size, step):
            digest.update(bytearray(data[start:start + step]))  # the caller may reuse it
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert describe(data).sha256 == hashlib.sha256(data).hexdigest()


def splits(data: bytes) -> list[list[bytes]]:
    """``data`` whole, byte by byte, and cut at every position."""
    cuts = [[data], [data[i : i + 1] for i in range(len(data))]]
    cuts += [[data[:i], data[i:]] for i in range(len(data) + 1)]
    return cuts


@pytest.mark.parametrize(
    ("data", "crlf_size", "clean"),
    [
        (b"a\r\nb\r\n", 6, True),
        (b"a\nb\n", 6, False),
        (b"a\r\nb\nc\r\n", 9, False),
        (b"a\rb\r\n", 5, False),  # a bare CR is not rewritten but is not clean
        (b"a\r", 2, False),
        (b"\r\r\n\n", 5, False),
        (b"", 0, True),
        (b"no newline", 10, True),
    ],
)
def test_crlf_accounting_at_every_chunk_boundary(data: bytes, crlf_size: int, clean: bool) -> None:
    for chunks in splits(data):
        info = describe(*chunks)
        assert (info.size, info.crlf_size, info.crlf_clean) == (len(data), crlf_size, clean)
        assert info.sha256 == hashlib.sha256(data).hexdigest()


def test_header_fields_are_parsed_and_decoded() -> None:
    raw = (
        b"Message-ID: <abc@example.org>\r\n"
        b"Subject: =?utf-8?B?R3LDvMOfZQ==?= =?iso-8859-1?q?_und_mehr?=\r\n"
        b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\n"
        b"To: a@example.org,\r\n b@example.org\r\n"
        b"Cc: c@example.org\r\n"
        b"Date: Tue, 2 Jan 2024 03:04:05 -0500\r\n"
        b"\r\n"
        b"Subject: not a header, this is the body\r\n"
    )
    for chunks in ([raw], [raw[:37], raw[37:90], raw[90:]]):
        f = describe(*chunks).fields
        assert f.message_id == "<abc@example.org>"
        assert f.subject == "Grüße und mehr"
        assert f.from_ == "Jürgen <j@example.org>"
        assert f.to == "a@example.org, b@example.org"
        assert f.cc == "c@example.org"
        assert f.date == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))


def test_body_is_not_mistaken_for_headers() -> None:
    assert describe(b"\r\nSubject: body\r\n").fields.subject is None
    assert describe(b"Subject: a\n\nSubject: b\n").fields.subject == "a"


@pytest.mark.parametrize(
    "head",
    [
        b"Date: yesterday-ish\r\nSubject: \xff\xfe\x00bad\r\n\r\n",
        b"\x00\x01\x02garbage without colon\r\n\r\n",
        b"Subject: =?utf-8?q?unterminated\r\nMessage-ID: \r\n\r\n",
        b"Date: Mon, 99 Foo 2024 99:99:99 +9999\r\n\r\n",
    ],
)
def test_garbage_headers_never_raise(head: bytes) -> None:
    fields = parse_header_fields(head)
    for value in (fields.subject, fields.message_id, fields.from_):
        assert value is None or ("\x00" not in value and value.encode("utf-8"))


def test_date_without_zone_is_utc() -> None:
    f = parse_header_fields(b"Date: Tue, 2 Jan 2024 03:04:05 -0000\r\n\r\n")
    assert f.date == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_header_block_is_capped() -> None:
    huge = b"X-Filler: " + b"a" * (HEADER_CAP * 2) + b"\r\nSubject: late\r\n\r\nbody"
    info = describe(*(huge[i : i + 65536] for i in range(0, len(huge), 65536)))
    assert info.fields.subject is None
    assert info.size == len(huge)


async def test_backends_report_the_same_info(storage: Storage) -> None:
    data = b"Subject: =?utf-8?q?caf=C3=A9?=\nDate: Wed, 3 Jan 2024 10:00:00 +0000\n\nline\r\nx\n"
    info = await storage.store_content(data)
    assert info == describe(data)
    assert info.fields.subject == "café"


ODD_HEADERS = [
    b"Subject: plain\r\nFrom: Sender <s@example.org>\r\nTo: a@example.org, b@example.org\r\n",
    b"SUBJECT: first\r\nsubject: second\r\n\r\n",  # names ignore case, the first wins
    b"From: <s@example.org>\r\nTo: a@example.org,b@example.org\r\nCc: \"Q\" <q@x.org>\r\n",
    b"From: s@example.org (Comment)\r\nTo: Jo.Bl <j@x.org>\r\nCc: g: a@b, c@d;\r\n",
    b"From: Sender  Two <s@example.org>\r\nTo: a@example.org,\r\n\tb@example.org \r\n",
    b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\nTo: undisclosed-recipients:;\n",
    b"Message-ID: <a b@c>\r\nSubject: a\x0bb \x00 c\r\n",
    b"Message-Id: abc@example.org\r\n",
    b"Message-ID: <a@b> <c@d>\r\nDate: Tue, 2 Jan 24 03:04:05 EST\r\n",
    b"Subject: caf\xc3\xa9 \xff raw 8-bit\r\nFrom: J\xc3\xbcrgen <j@x.org>\r\n",
    b"Subject: bare\rCR\r\nFrom: a@b\r\n",
    b"From someone@example.org Tue Jan  2 03:04:05 2024\nSubject: mbox line\n",
    b" continued first\r\nSubject: after\r\n",
    b":no name\r\n continued\r\nSubject: kept\r\n",
    b"X-Long: a\r\nno colon here\r\nSubject: in the body\r\n",
    b"Subject : space before colon\r\nFrom: a@b\r\n",
    b"Subject:no space\r\nDate:\r\nTo:\r\n",
    b"Date: Tue, 2 Jan 10000 03:04:05 +0000\r\nSubject: =?\r\n",
    b"Subject: =?utf-8?q?unterminated\r\n",
    b"Subject: ends without newline",
]


@pytest.mark.parametrize("head", ODD_HEADERS)
def test_fields_match_the_email_parser(head: bytes) -> None:
    """The quick field finder gives what the stdlib parser gives, odd input included."""
    assert parse_header_fields(head) == email_header_fields(head)
    assert parse_header_fields(head + b"\r\nSubject: body\r\n") == email_header_fields(
        head + b"\r\nSubject: body\r\n")


def test_fields_match_the_email_parser_on_random_blocks() -> None:
    rnd = random.Random(2024)
    names = ["Subject", "from", "To", "CC", "Date", "Message-ID", "X-Other", "", "To ", "Fr om"]
    values = [
        "a@example.org", "Sender <s@example.org>", "<s@example.org>", "\"Q\" <q@x.org>", ",",
        "=?utf-8?q?J=C3=BCrgen?=", "(note)", ";", ":", "<", "@", " ", "\t", "\r\n ", "\x00",
        "\xff", "words", "Tue, 2 Jan 2024 03:04:05 -0500", "-0000", "<abc@example.org>", "[1.2]",
    ]
    for _ in range(1500):
        lines = [
            rnd.choice(names) + ":" + rnd.choice(["", " ", "\t"])
            + "".join(rnd.choice(values) for _ in range(rnd.randint(0, 4)))
            for _ in range(rnd.randint(0, 6))
        ]
        eol = rnd.choice(["\r\n", "\n"])
        head = (eol.join(lines) + eol).encode("latin-1")
        assert parse_header_fields(head) == email_header_fields(head), head


DATES = [
    "Tue, 2 Jan 2024 03:04:05 -0500", "2 Jan 2024 03:04:05 +0000", "Tue, 2 Jan 24 03:04 EST",
    "Tue, 2 Jan 2024 03:04:05 -0000", "Tue, 2 Jan 2024 03:04:05", "Tue, 2 Jan 2024 03:04:05 XYZ",
    "Tue, 31 Feb 2024 03:04:05 +0000", "Tue, 2 Jan 10000 03:04:05 +0000", "Jan 2 2024", "",
    "garbage", "Tue, 2 Jan 2024 25:61:61 +0000", "Tue, 02 Jan 2024 03:04:05 +1430",
    "Tue,  2 Jan 2024 03:04:05 GMT", "2024-01-02T03:04:05Z",
]


@pytest.mark.parametrize("text", DATES)
def test_parse_date_is_the_stdlib_answer(text: str) -> None:
    """``parse_date`` spares ``mailwing deliver`` the import of email.utils; it must answer,
    or fail, exactly as ``email.utils.parsedate_to_datetime`` does."""
    from email.utils import parsedate_to_datetime

    try:
        expected: datetime | type[Exception] = parsedate_to_datetime(text)
    except Exception as exc:
        expected = type(exc)
    try:
        got: datetime | type[Exception] = parse_date(text)
    except Exception as exc:
        got = type(exc)
    assert got == expected
