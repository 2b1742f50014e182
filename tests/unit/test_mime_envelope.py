"""ENVELOPE and BODY/BODYSTRUCTURE data (RFC 3501 section 7.4.2), expectations written from
the RFC grammar for the hand-made samples in tests/data/mime."""

from __future__ import annotations

from pathlib import Path

from mailwing.mime import address_list, bodystructure, envelope, parse, to_crlf
from mailwing.proto.imap.wire import encode_sexp

DATA = Path(__file__).resolve().parents[1] / "data" / "mime"


def load(name: str) -> bytes:
    return to_crlf((DATA / name).read_bytes())


def test_envelope_of_a_simple_message() -> None:
    fred = [["Fred Foobar", None, "foobar", "Blurdybloop.example"]]
    assert envelope(parse(load("simple.eml"))) == [
        "Mon, 7 Feb 1994 21:52:25 -0800",
        "afternoon meeting",
        fred,
        fred,  # Sender and Reply-To default to From
        fred,
        [[None, None, "mooch", "owatagu.example"]],
        None,
        None,
        None,
        "<B27397-0100000@Blurdybloop.example>",
    ]


def test_envelope_accepts_raw_bytes_too() -> None:
    raw = load("simple.eml")
    assert envelope(raw) == envelope(parse(raw))


def test_encoded_words_are_passed_through_undecoded() -> None:
    env = envelope(parse(load("mixed.eml")))
    assert env[1] == "=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?="
    assert env[2] == [["=?ISO-8859-1?Q?Andr=E9?= Pirard", None, "PIRARD", "vm1.ulg.ac.be"]]
    assert env[5] == [["=?UTF-8?B?SsO2cmc=?=", None, "joerg", "example.com"]]


def test_group_syntax_and_folded_subject() -> None:
    env = envelope(parse(load("nested.eml")))
    assert env[1] == "Fwd: nested message test"
    assert env[5] == [
        [None, None, "undisclosed-recipients", None],
        [None, None, None, None],
    ]
    assert env[6] == [
        [None, None, "Team", None],
        [None, None, "ann", "example.org"],
        ["Bob B.", None, "bob", "example.org"],
        [None, None, None, None],
        [None, None, "carl", "example.org"],
    ]


def test_missing_date_and_from() -> None:
    env = envelope(parse(load("nodate.eml")))
    assert env[0] is None
    assert env[2] is None and env[3] is None and env[4] is None
    assert env[5] == [
        [None, None, "friends", None],
        [None, None, "a", "example.org"],
        ["=?ISO-8859-1?Q?Fran=E7ois?=", None, "f", "example.org"],
        [None, None, None, None],
    ]
    assert env[9] == "<nodate@example.org>"


def test_eight_bit_headers_are_utf8_strings() -> None:
    env = envelope(parse(load("utf8.eml")))
    assert env[1] == "Grüße"
    assert env[2] == [["Zoë", None, "zoe", "example.org"]]


def test_invalid_utf8_header_octets_are_kept_as_bytes() -> None:
    env = envelope(b"Subject: caf\xe9\r\nFrom: Ren\xe9 <r@x>\r\n\r\n")
    assert env[1] == b"caf\xe9"
    assert env[2] == [[b"Ren\xe9", None, "r", "x"]]
    # the IMAP encoder writes them as literals of the original octets
    assert b"{4}\r\ncaf\xe9" in encode_sexp(env)
    raw = b'Content-Type: text/plain; name="\xe9.txt"\r\nContent-ID: <\xff>\r\n\r\nx'
    structure = bodystructure(parse(raw))
    assert structure[2] == ["NAME", b"\xe9.txt", "CHARSET", "us-ascii"]
    assert structure[3] == b"<\xff>"
    encode_sexp(structure)


def test_address_list_edge_cases() -> None:
    assert address_list("") is None
    assert address_list("   ") is None
    assert address_list('"a:b;c" <x@y>') == [["a:b;c", None, "x", "y"]]
    assert address_list("<@route.example:u@h>") == [[None, "@route.example", "u", "h"]]
    assert address_list("localonly") == [[None, None, "localonly", ""]]
    assert address_list("open: a@b") == [
        [None, None, "open", None],
        [None, None, "a", "b"],
        [None, None, None, None],
    ]


def test_empty_sender_defaults_to_from() -> None:
    env = envelope(b"From: a@b\r\nSender:\r\nReply-To: c@d\r\n\r\n")
    assert env[3] == [[None, None, "a", "b"]]
    assert env[4] == [[None, None, "c", "d"]]


def test_bodystructure_of_a_simple_text_message() -> None:
    msg = parse(load("simple.eml"))
    basic = ["TEXT", "PLAIN", ["CHARSET", "US-ASCII"], None, None, "7BIT", 55, 1]
    assert bodystructure(msg, extended=False) == basic
    assert bodystructure(msg) == [*basic, None, None, None, None]


def test_bodystructure_of_multipart_alternative() -> None:
    msg = parse(load("alternative.eml"))
    assert bodystructure(msg, extended=False) == [
        ["TEXT", "PLAIN", ["CHARSET", "utf-8"], None, None, "7BIT", 10, 0],
        ["TEXT", "HTML", ["CHARSET", "utf-8"], None, None, "7BIT", 16, 0],
        "ALTERNATIVE",
    ]
    full = bodystructure(msg)
    assert full[2:] == ["ALTERNATIVE", ["BOUNDARY", "b1"], None, None, None]


def test_bodystructure_of_mixed_with_attachment() -> None:
    structure = bodystructure(parse(load("mixed.eml")))
    assert structure[0] == [
        "TEXT", "PLAIN", ["CHARSET", "iso-8859-1"], None, None, "QUOTED-PRINTABLE", 36, 1,
        None, None, None, None,
    ]  # fmt: skip
    assert structure[1] == [
        "APPLICATION", "OCTET-STREAM", ["NAME", "report.bin"], "<att1@example.com>",
        "the report", "BASE64", 12,
        None, ["ATTACHMENT", ["FILENAME*", "utf-8''%E2%82%AC%20report.bin"]], ["en", "de"],
        None,
    ]  # fmt: skip
    assert structure[2:] == ["MIXED", ["BOUNDARY", "=_outer"], None, None, None]


def test_bodystructure_of_nested_message() -> None:
    structure = bodystructure(parse(load("nested.eml")))
    forwarded = structure[1]
    assert forwarded[:7] == ["MESSAGE", "RFC822", None, None, None, "7BIT", 322]
    inner_envelope = forwarded[7]
    assert inner_envelope[1] == "inner subject"
    assert inner_envelope[2] == [["Inner", None, "inner", "example.net"]]
    assert forwarded[8] == [
        ["TEXT", "PLAIN", ["CHARSET", "us-ascii"], None, None, "7BIT", 11, 0,
         None, None, None, None],
        ["TEXT", "HTML", ["CHARSET", "us-ascii"], None, None, "7BIT", 17, 0,
         None, None, None, None],
        "ALTERNATIVE", ["BOUNDARY", "inner"], None, None, None,
    ]  # fmt: skip
    assert forwarded[9:] == [14, None, ["INLINE", None], None, None]
    # text/plain without charset: RFC 2046 4.1.2's default, as Dovecot gives it
    assert structure[0] == ["TEXT", "PLAIN", ["CHARSET", "us-ascii"], None, None, "7BIT", 13, 0,
                            None, None, None, None]  # fmt: skip
    body = bodystructure(parse(load("nested.eml")), extended=False)
    assert body[1][8] == [
        ["TEXT", "PLAIN", ["CHARSET", "us-ascii"], None, None, "7BIT", 11, 0],
        ["TEXT", "HTML", ["CHARSET", "us-ascii"], None, None, "7BIT", 17, 0],
        "ALTERNATIVE",
    ]
    assert len(body[1]) == 10


def test_single_language_is_a_string() -> None:
    msg = parse(b"Content-Language: fr\r\nContent-Location: http://x/y\r\n\r\nx")
    assert bodystructure(msg)[-2:] == ["fr", "http://x/y"]


def test_encoded_message_rfc822_is_reported_as_a_basic_part() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n"
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"U3ViamVjdDogeA0KDQp5\r\n--z--\r\n"
    )
    part = bodystructure(parse(raw), extended=False)[0]
    assert part == ["APPLICATION", "OCTET-STREAM", None, None, None, "BASE64", 20]
