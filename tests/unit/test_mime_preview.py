"""PREVIEW text selection (RFC 8970) without sockets: part choice, decoding, bounds."""

from __future__ import annotations

from mailwing import mime
from mailwing.mime.preview import MAX_CHARS, MAX_OCTETS, preview


def pv(raw: bytes) -> str:
    return preview(raw, mime.parse(raw))


def test_plain_html_alternative_and_attachments() -> None:
    alt = (b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/html\r\n\r\n<b>html</b>\r\n--b\r\n"
           b"Content-Type: text/plain\r\n\r\nplain text\r\n--b--\r\n")
    assert pv(alt) == "plain text"
    att = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nfile\r\n--b\r\n"
           b"Content-Type: text/html\r\n\r\n<p>a &amp; b</p><script>x()</script>\r\n--b--\r\n")
    assert pv(att) == "a & b"
    assert pv(b"Content-Type: application/pdf\r\n\r\n%PDF\r\n") == ""


def test_decoding_and_bounds() -> None:
    b64 = (b"Content-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + b"5Gg=" + b"\r\n")
    assert pv(b64) == "äh"
    long = b"Subject: x\r\n\r\n" + "é".encode() * 500 + b"\r\n"
    text = pv(long)
    assert len(text) <= MAX_CHARS and len(text.encode()) <= MAX_OCTETS and set(text) == {"é"}
    quoted = b"Subject: x\r\n\r\n> old\r\n>> older\r\nnew\r\n"
    assert pv(quoted) == "new"
