"""The MIME part tree: offsets, sizes, line counts, parameters and defaults (RFC 2045,
RFC 2046 section 5.1.1, RFC 2231), and robustness on malformed input.

Samples under tests/data/mime are stored with LF line ends for readability and turned into
CRLF on load, the form the IMAP session hands to ``mailwing.mime`` (its input contract).
Expected sizes were counted by hand from the sample text (CRLF = 2 octets per line end).
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mailwing.mime import (
    MAX_PARTS,
    body_text,
    bodystructure,
    envelope,
    header_values,
    matches_text,
    parse,
    section,
    sent_date,
    to_crlf,
)
from mailwing.proto.imap.wire import encode_sexp

DATA = Path(__file__).resolve().parents[1] / "data" / "mime"


def load(name: str) -> bytes:
    return to_crlf((DATA / name).read_bytes())


def test_simple_text_message() -> None:
    raw = load("simple.eml")
    msg = parse(raw)
    assert (msg.maintype, msg.subtype) == ("text", "plain")
    assert msg.params == (("charset", "US-ASCII"),)
    assert msg.encoding == "7BIT"
    assert msg.header_start == 0
    assert raw[msg.header_end - 4 : msg.header_end] == b"\r\n\r\n"
    assert raw[msg.header_end :] == b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
    assert (msg.size, msg.lines) == (55, 1)
    assert msg.body_end == len(raw)
    assert msg.children == [] and msg.message is None


def test_multipart_alternative_offsets() -> None:
    raw = load("alternative.eml")
    msg = parse(raw)
    assert msg.content_type == "multipart/alternative"
    assert msg.param("boundary") == "b1"
    plain, html = msg.children
    assert raw[plain.header_start : plain.header_end] == (
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    assert raw[plain.header_end : plain.body_end] == b"Plain body"
    assert (plain.size, plain.lines) == (10, 0)  # line ends, as Dovecot counts
    assert raw[html.header_end : html.body_end] == b"<p>HTML body</p>"
    assert (html.content_type, html.size, html.lines) == ("text/html", 16, 0)
    assert html.param("charset") == "utf-8"


def test_mixed_with_base64_attachment_and_rfc2231_filename() -> None:
    raw = load("mixed.eml")
    msg = parse(raw)
    text, attachment = msg.children
    assert text.encoding == "QUOTED-PRINTABLE"
    assert raw[text.header_end : text.body_end] == b"Caf=E9 cr=E8me, sehr gro=DF=\r\nartig."
    assert (text.size, text.lines) == (36, 1)
    assert attachment.content_type == "application/octet-stream"
    assert attachment.encoding == "BASE64"
    assert raw[attachment.header_end : attachment.body_end] == b"AAECAwQFBgc="
    assert attachment.size == 12
    assert attachment.disposition == "attachment"
    assert attachment.filename() == "\u20ac report.bin"
    assert attachment.disposition_wire_params == (("filename*", "utf-8''%E2%82%AC%20report.bin"),)
    assert attachment.id == "<att1@example.com>"
    assert attachment.description == "the report"
    assert attachment.language == ("en", "de")


def test_nested_message_rfc822_is_parsed_recursively() -> None:
    raw = load("nested.eml")
    msg = parse(raw)
    first, forwarded = msg.children
    assert raw[first.header_end : first.body_end] == b"See attached."
    assert first.params == (("charset", "us-ascii"),)  # RFC 2046 4.1.2 default for text/*
    assert forwarded.content_type == "message/rfc822"
    assert (forwarded.size, forwarded.lines) == (322, 14)
    inner = forwarded.message
    assert inner is not None
    assert inner.header_start == forwarded.header_end
    assert inner.header_end - inner.header_start == 172
    assert inner.get("subject") == "inner subject"
    assert [c.content_type for c in inner.children] == ["text/plain", "text/html"]
    assert raw[inner.children[1].header_end : inner.children[1].body_end] == (b"<b>inner html</b>")
    assert [p.content_type for p in msg.walk()] == [
        "multipart/mixed",
        "text/plain",
        "message/rfc822",
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]


def test_folded_header_is_unfolded_but_keeps_offsets() -> None:
    raw = load("nested.eml")
    msg = parse(raw)
    subject = next(f for f in msg.fields if f.key == "subject")
    assert subject.value == "Fwd: nested message test"
    assert raw[subject.start : subject.end] == b"Subject: Fwd: nested\r\n message test\r\n"


def test_missing_content_type_defaults_to_text_plain_us_ascii() -> None:
    msg = parse(load("nodate.eml"))
    assert msg.content_type == "text/plain"
    assert msg.params == (("charset", "us-ascii"),)
    assert (msg.size, msg.lines) == (28, 1)


def test_digest_parts_default_to_message_rfc822() -> None:
    raw = (
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n"
        b"--d\r\n\r\nSubject: one\r\n\r\nfirst\r\n"
        b"--d\r\nContent-Type: text/plain\r\n\r\nnote\r\n--d--\r\n"
    )
    msg = parse(raw)
    one, note = msg.children
    assert one.content_type == "message/rfc822"
    assert one.message is not None and one.message.get("Subject") == "one"
    assert note.content_type == "text/plain"


def test_transport_padding_and_longer_boundary_lines() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=ab\r\n\r\n"
        b"--ab \t\r\n\r\none\r\n--abc\r\nstill one\r\n--ab--  \r\nepilogue\r\n--ab\r\n"
    )
    (only,) = parse(raw).children
    assert raw[only.header_end : only.body_end] == b"one\r\n--abc\r\nstill one"


def test_unterminated_multipart_runs_to_the_end() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nabc\r\n--x\r\n\r\ndef\r\n"
    first, second = parse(raw).children
    assert raw[first.header_end : first.body_end] == b"abc"
    assert raw[second.header_end : second.body_end] == b"def\r\n"


def test_multipart_without_delimiters_becomes_text_plain() -> None:
    for header in (b"multipart/mixed; boundary=zz", b"multipart/mixed"):
        raw = b"Content-Type: " + header + b"\r\n\r\nno parts here\r\n"
        msg = parse(raw)
        assert msg.content_type == "text/plain"
        assert msg.children == []
        assert bodystructure(msg)[:2] == ["TEXT", "PLAIN"]


def test_lf_only_input_parses_and_normalises_to_the_crlf_sizes() -> None:
    lf = (DATA / "alternative.eml").read_bytes()
    assert b"\r\n" not in lf
    crlf = to_crlf(lf)
    assert crlf.count(b"\r\n") == lf.count(b"\n")
    assert b"\n" not in crlf.replace(b"\r\n", b"")
    # LF input still yields the structure (sizes are then those of the LF form) ...
    assert [c.content_type for c in parse(lf).children] == ["text/plain", "text/html"]
    # ... and the contract form gives the RFC 3501 sizes.
    assert parse(crlf).size == parse(lf).size + lf[parse(lf).header_end :].count(b"\n")
    # the rule of storage's crlf_size: a bare LF gains a CR, a bare CR is left alone
    assert to_crlf(b"a\rb\r\nc\n") == b"a\rb\r\nc\r\n"


def test_deep_nesting_is_bounded() -> None:
    raw = b""
    for level in range(200):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level)
    raw += b"\r\nleaf\r\n"
    msg = parse(raw)
    depth = 0
    while msg.children:
        msg, depth = msg.children[0], depth + 1
    assert depth <= 20
    rfc822 = b"Content-Type: message/rfc822\r\n\r\n" * 300 + b"\r\nend\r\n"
    assert len(parse(rfc822).walk()) <= 21


def test_part_count_is_bounded() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=p\r\n\r\n" + b"--p\r\n\r\nx\r\n" * 20_000
    assert len(parse(raw).walk()) <= MAX_PARTS


def test_huge_header_count_does_not_break_parsing() -> None:
    raw = b"X: y\r\n" * 50_000 + b"Subject: late\r\n\r\nbody"
    msg = parse(raw)
    assert raw[msg.header_end :] == b"body"


def test_invalid_content_type_falls_back_to_the_rfc2045_default() -> None:
    for value in (b"text/\x00;charset=\x80", b"text/plain garbage", b"/html", b"text"):
        raw = b"Content-Type: " + value + b"\r\nContent-Transfer-Encoding: 8\xb3it\r\n\r\nx"
        msg = parse(raw)
        assert (msg.content_type, msg.params) == ("text/plain", (("charset", "us-ascii"),))
        assert body_text(raw, msg) == "x"
        structure = bodystructure(msg)
        assert structure[5] == b"8\xb3IT"  # not valid UTF-8: the original octets, as bytes
        encode_sexp(structure)


_LINES = st.sampled_from(
    [
        b"Content-Type: multipart/mixed; boundary=q\r\n",
        b"Content-Type: message/rfc822\r\n",
        b'Content-Type: multipart/digest; boundary="q"\r\n',
        b"Content-Type: text/plain; charset*=x''%ZZ; name*0*=a; name*1=b\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b'Content-Disposition: attachment; filename="a\r\n',
        b"Content-Language: en,\r\n",
        b'To: g: a@b, "x" <c@d>;, (x) @\r\n',
        b" folded\r\n",
        b"--q\r\n",
        b"--q--\r\n",
        b"\r\n",
        b"\n",
        b"noise\xff\r\n",
        b"Content-Type: text/plain; charset=\"\xc3\x28\"; x*=utf-8'en'%FF\r\n",
        b"Subject: =?utf-8?q?=FF?= =?bogus?B?!!?=\r\n",
        b"Date: Mon, 32 Jan 0000 99:99 -9999\r\n",
        b'From: "unterminated <a@b>, (comment (nested) <c@d>\r\n',
        b"QUJD*=\r\n",
        b"\r",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400), st.lists(_LINES, max_size=40).map(b"".join)))
def test_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    msg = parse(raw)
    encode_sexp(bodystructure(msg))  # the IMAP encoder accepts every value produced
    encode_sexp(bodystructure(msg, extended=False))
    encode_sexp(envelope(msg))
    envelope(raw)
    header_values(msg, "subject")
    body_text(raw, msg)
    matches_text(raw, msg, "x")
    sent_date(msg)
    for part in msg.walk():
        assert 0 <= part.header_start <= part.header_end <= part.body_end <= len(raw)
    for path in [(), (1,), (1, 1), (2,), (1, 2, 1)]:
        for text in (None, "HEADER", "TEXT", "MIME", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            result = section(raw, msg, path, text, ("to",))
            assert result is None or isinstance(result, bytes)
