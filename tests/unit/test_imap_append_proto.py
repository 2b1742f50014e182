"""Sans-IO parts of the append/transport extensions: APPEND grammar (MULTIAPPEND, CATENATE,
literal8, UTF8), COMPRESS and QUOTA commands, BINARY fetch items, IMAP URLs (RFC 5092),
part decoding for BINARY (RFC 3516), capabilities."""

from __future__ import annotations

import pytest

from mailwing import mime
from mailwing.mime.binary import UnknownCte, decode_part
from mailwing.proto.imap import commands as c
from mailwing.proto.imap.capabilities import capabilities
from mailwing.proto.imap.fetchitems import FetchItem, Section, parse_section
from mailwing.proto.imap.grammar import ParseError
from mailwing.proto.imap.states import State, allowed
from mailwing.proto.imap.url import ImapUrl, UrlError, parse_imap_url
from tests.unit.test_imap_proto_commands import cmd, err


def test_multiappend_and_data_forms() -> None:
    got = cmd(b'a APPEND INBOX (\\Seen) {2+}\r\nab (\\Draft) "01-Jan-2020 00:00:00 +0000" '
              b"~{3+}\r\nc\x00d {0+}\r\n")
    assert isinstance(got, c.Append)
    first, second, third = got.messages
    assert (first.flags, first.message, first.binary) == (("\\Seen",), b"ab", False)
    assert (second.flags, second.message, second.binary) == (("\\Draft",), b"c\x00d", True)
    assert second.internal_date is not None and third.message == b""
    utf8 = cmd(b"a APPEND INBOX UTF8 (~{4+}\r\n\xc3\xa9\r\n)")
    assert isinstance(utf8, c.Append) and utf8.utf8 and utf8.message == b"\xc3\xa9\r\n"
    assert err(b"a APPEND INBOX UTF8 ({1+}\r\nx)").text == "APPEND message must be a literal"
    assert err(b"a APPEND INBOX {1+}\r\nx y").text == "APPEND message must be a literal"
    assert err(b"a APPEND INBOX {1+}\r\nx ").text == "APPEND message must be a literal"
    assert "more=2" in repr(got)


def test_catenate_parts() -> None:
    got = cmd(b'a APPEND Drafts (\\Draft) CATENATE (TEXT {3+}\r\nabc URL "/INBOX/;UID=1" '
              b"URL /x/;UID=2 TEXT ~{1+}\r\n\x00)")
    assert isinstance(got, c.Append) and got.flags == ("\\Draft",)
    assert got.parts == (c.CatPart(text=b"abc"), c.CatPart(url="/INBOX/;UID=1"),
                         c.CatPart(url="/x/;UID=2"), c.CatPart(text=b"\x00"))
    assert "url='/INBOX/;UID=1'" in repr(got.parts) and "3 octets" in repr(got.parts)
    multi = cmd(b'a APPEND x {1+}\r\nx CATENATE (URL ";UID=1")')
    assert isinstance(multi, c.Append) and multi.more[0].parts == (c.CatPart(url=";UID=1"),)
    assert err(b"a APPEND x CATENATE ()").text == "Syntax error: invalid CATENATE part"
    assert err(b"a APPEND x CATENATE (BODY {1+}\r\nx)").text.startswith("Syntax error")
    assert err(b"a APPEND x CATENATE (URL \"\xff\")").text.endswith("not valid UTF-8")


def test_compress_and_quota_commands() -> None:
    assert cmd("a COMPRESS deflate") == c.Compress("a", "DEFLATE")
    assert cmd('a GETQUOTA ""') == c.GetQuota("a", "")
    assert cmd("a GETQUOTAROOT inbox") == c.GetQuotaRoot("a", "INBOX")
    assert cmd('a SETQUOTA "" (storage 512 MESSAGE 10)') == c.SetQuota(
        "a", "", (("STORAGE", 512), ("MESSAGE", 10)))
    assert cmd('a SETQUOTA "" ()') == c.SetQuota("a", "", ())
    for bad in ("a COMPRESS", "a GETQUOTA", 'a SETQUOTA "" (STORAGE x)', "a SETQUOTA x"):
        assert err(bad).text.startswith("Syntax error"), bad
    assert allowed(State.AUTHENTICATED, c.Compress) and allowed(State.SELECTED, c.GetQuota)
    assert not allowed(State.NOT_AUTHENTICATED, c.Compress)


def test_binary_fetch_items() -> None:
    got = cmd("a FETCH 1 (BINARY[1.2]<0.10> BINARY.PEEK[] BINARY.SIZE[3])")
    assert isinstance(got, c.Fetch)
    full, peek, size = got.items
    assert full == FetchItem("BINARY", Section((1, 2)), (0, 10))
    assert (full.response_name, full.sets_seen, str(full)) == (
        "BINARY[1.2]<0>", True, "BINARY[1.2]<0.10>")
    assert (peek.response_name, peek.sets_seen, peek.binary) == ("BINARY[]", False, True)
    assert (size.response_name, size.sets_seen) == ("BINARY.SIZE[3]", False)
    for bad in ("BINARY[TEXT]", "BINARY[1.MIME]", "BINARY.SIZE[1]<0.1>", "BINARY[01]"):
        assert err(f"a FETCH 1 {bad}").text.startswith("Syntax error"), bad


def test_parse_section() -> None:
    assert parse_section("1.2.HEADER.FIELDS (A B)") == Section((1, 2), "HEADER.FIELDS",
                                                                ("A", "B"))
    for bad in ("FOO", "1.X", "é", "HEADER.FIELDS", "1]"):
        with pytest.raises(ParseError):
            parse_section(bad)


def test_imap_urls() -> None:
    assert parse_imap_url("/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.2") == ImapUrl(
        20, "INBOX", 385759045, None, Section((1, 2)))
    assert parse_imap_url(
        "imap://a%40b.test;AUTH=*@h:143/Sent%20Items/%C3%A9/;UID=3/;PARTIAL=5.10") == ImapUrl(
        3, "Sent Items/\u00e9", None, "a@b.test", None, (5, 10))
    assert parse_imap_url("//h/inbox/;UID=1/;PARTIAL=7").partial == (7, None)
    assert parse_imap_url(";uid=9/;section=HEADER.FIELDS%20(TO)") == ImapUrl(
        9, section=Section((), "HEADER.FIELDS", ("TO",)))
    assert parse_imap_url("/INBOX/;UID=1/").uid == 1
    for bad in ("", "x" * 3000, "/INBOX", "/INBOX/;UID=0", "/INBOX/;UID=1?SUBJECT", "/;UID=1",
                "imap://h", "imap://u;X=1@h/INBOX/;UID=1", "/INBOX/;UID=1/;URLAUTH=x",
                "/INBOX/;UID=1/;SECTION=9X", "/%FF/;UID=1", "/IN BOX/;UID=1",
                "/INBOX;UIDVALIDITY=0/;UID=1", "http://h/"):
        with pytest.raises(UrlError):
            parse_imap_url(bad)


MSG = (b"Subject: t\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
       b"--b\r\nContent-Transfer-Encoding: base64\r\n\r\nAAE C\r\nAw=\r\n"
       b"--b\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\na=3Db=\r\nc\r\n"
       b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nx\r\n"
       b"--b\r\nContent-Transfer-Encoding: x-uue\r\n\r\nzz\r\n"
       b"--b\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xc3\xa9\r\n--b--\r\n")


def test_decode_part() -> None:
    tree = mime.parse(MSG)
    assert decode_part(MSG, tree, ()) == MSG
    assert decode_part(MSG, tree, (1,)) == b"\x00\x01\x02\x03"
    assert decode_part(MSG, tree, (2,)) == b"a=bc"
    assert decode_part(MSG, tree, (3,)) == b"Subject: in\r\n\r\nx"
    assert decode_part(MSG, tree, (5,)) == b"\xc3\xa9"
    assert decode_part(MSG, tree, (9,)) is None
    with pytest.raises(UnknownCte):
        decode_part(MSG, tree, (4,))


def test_capabilities() -> None:
    before = capabilities(False, True, False, append_limit=1000)
    for cap in ("MULTIAPPEND", "CATENATE", "BINARY", "COMPRESS=DEFLATE", "QUOTA",
                "QUOTA=RES-STORAGE", "APPENDLIMIT=1000"):
        assert cap in before
    after = capabilities(True, True, True, compressed=True)
    assert "COMPRESS=DEFLATE" not in after and not any(x.startswith("APPENDLIMIT") for x in after)
