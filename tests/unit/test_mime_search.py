"""SEARCH helpers (RFC 3501 section 6.4.4): decoded headers, decoded bodies, casefold
matching, and the Date: header's own calendar date."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from mailwing.mime import (
    body_text,
    decode_value,
    header_values,
    matches_address_field,
    matches_header,
    matches_text,
    parse,
    sent_date,
    to_crlf,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "mime"


def load(name: str) -> bytes:
    return to_crlf((DATA / name).read_bytes())


def test_encoded_word_subject_is_found_by_its_decoded_text() -> None:
    msg = parse(load("mixed.eml"))
    assert header_values(msg, "SUBJECT") == ["Grüße aus Köln"]
    assert matches_header(msg, "subject", "GRÜSSE AUS")  # casefold: ß == ss
    assert matches_header(msg, "Subject", "köln")
    assert not matches_header(msg, "subject", "R3LDvMOf")


def test_mixed_charset_encoded_words() -> None:
    raw = load("nodate.eml")
    assert header_values(raw, "subject") == ["Café ist geöffnet"]
    assert matches_header(raw, "subject", "CAFÉ IST GEÖFFNET")


def test_address_fields_match_decoded_names_and_addresses() -> None:
    msg = parse(load("mixed.eml"))
    assert matches_address_field(msg, "from", "andré pirard")
    assert matches_address_field(msg, "FROM", "vm1.ulg")
    assert matches_address_field(msg, "to", "JÖRG")
    assert not matches_address_field(msg, "cc", "")  # no Cc field at all
    nodate = parse(load("nodate.eml"))
    assert matches_address_field(nodate, "to", "françois")
    assert not matches_address_field(nodate, "from", "a@example.org")


def test_empty_needle_matches_any_message_with_the_field() -> None:
    msg = parse(load("simple.eml"))
    assert matches_header(msg, "Message-Id", "")
    assert not matches_header(msg, "X-Absent", "")


def test_quoted_printable_body_word_is_found() -> None:
    raw = load("mixed.eml")
    msg = parse(raw)
    text = body_text(raw, msg)
    assert "Café crème, sehr großartig." in text
    assert "AAECAwQFBgc" not in text  # attachments are not text
    assert matches_text(raw, msg, "CRÈME")
    assert matches_text(raw, msg, "grossartig")
    assert not matches_text(raw, msg, "preamble")


def test_base64_text_body_is_found() -> None:
    raw = load("b64text.eml")
    msg = parse(raw)
    assert body_text(raw, msg) == "Die Lösung ist zweiundvierzig.\r\n"
    assert matches_text(raw, msg, "LÖSUNG")


def test_eight_bit_body_case_insensitive() -> None:
    raw = load("utf8.eml")
    msg = parse(raw)
    for needle in ("ärger", "STRASSE", "ÜBER", "größe"):
        assert matches_text(raw, msg, needle), needle
    assert not matches_text(raw, msg, "strand")


def test_text_searches_headers_and_nested_messages() -> None:
    raw = load("nested.eml")
    msg = parse(raw)
    assert matches_text(raw, msg, "Outer Sender")  # a header of the message
    assert "inner subject" in body_text(raw, msg)  # the forwarded message's header is body
    assert "<b>inner html</b>" in body_text(raw, msg)
    assert "Outer Sender" not in body_text(raw, msg)


def test_bad_base64_and_unknown_charset_do_not_raise() -> None:
    raw = (
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8*!gd29y\r\nbGQ\r\n"
    )
    assert "hello" in body_text(raw, parse(raw))


def test_broken_encoded_words_are_kept_raw() -> None:
    assert decode_value("=?x-unknown?Q?abc?= tail") == "=?x-unknown?Q?abc?= tail"
    assert decode_value("caf\udce9") == "caf\ufffd"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("simple.eml", datetime.date(1994, 2, 7)),
        # 23:59:59 -0500 is already the next day in UTC: the date as written counts
        ("utf8.eml", datetime.date(2025, 7, 5)),
        ("mixed.eml", datetime.date(2025, 7, 2)),
        ("nodate.eml", None),
    ],
)
def test_sent_date(name: str, expected: datetime.date | None) -> None:
    raw = load(name)
    assert sent_date(parse(raw)) == expected
    assert sent_date(raw) == expected


def test_unparseable_date_is_none() -> None:
    assert sent_date(b"Date: yesterday-ish\r\n\r\n") is None
    assert sent_date(b"Date: Mon, 99 Foo 99999 25:61:00 +9999\r\n\r\n") is None
