"""Messages that have broken POP3 implementations before, and how to compare what came back.

Each is written with CRLF line endings, as SMTP would hand it over, so that a client reading
the raw wire form (curl) must get exactly these bytes after the server's trace headers.
Clients that store mail locally (getmail, fetchmail) write native LF endings and add or replace
trace headers by design; :func:`comparable` removes exactly those two differences and nothing
else, so every other byte is still compared.
"""

from __future__ import annotations

import base64
import hashlib
import re

__all__ = ["BIG", "DOTS", "PLAIN", "UTF8", "comparable", "numbered", "split_trace"]


def _msg(subject: str, headers: str, body: bytes) -> bytes:
    head = (f"From: Bob <bob@example.org>\r\nTo: Alice <alice@example.com>\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '-')}@example.org>\r\n"
            f"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n{headers}\r\n")
    return head.encode("ascii") + body


PLAIN = _msg("plain", "", b"Hello Alice,\r\n\r\njust a short note.\r\n")

#: Lines the server must dot-stuff: ". x", "..", a lone "." (which would end the answer early),
#: "..." and a final line starting with a dot.
DOTS = _msg("dots", "", b". a line starting with dot space\r\n..\r\n.\r\n"
            b"the line above is a lone dot\r\n...\r\n.last line\r\n")

#: 8-bit UTF-8 body, sent as is (Content-Transfer-Encoding: 8bit).
UTF8 = _msg("utf8", "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n",
            "Grüße aus Köln, naïve café, Ελληνικά, 日本語, emoji 📬\r\n".encode())


def _big(size: int) -> bytes:
    raw = hashlib.shake_256(b"mailwing interop").digest(size * 3 // 4)
    body = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    # A few dot lines in the middle of a big body too: stuffing must survive chunk borders.
    body = body[: len(body) // 2] + b".\r\n..\r\n" + body[len(body) // 2:]
    return _msg("big", "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
                "Content-Transfer-Encoding: base64\r\n", body)


#: About 10 MB.
BIG = _big(10 * 1024 * 1024)


def numbered(n: int) -> bytes:
    """A distinct small message (for counting what a client fetched)."""
    return _msg(f"number {n}", "", f"message number {n}\r\n".encode())


_HEADER = re.compile(rb"^[!-9;-~]+:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*")

#: Header fields a delivering or fetching agent adds or rewrites at the top of a message.
TRACE_FIELDS = {b"return-path", b"delivered-to", b"received", b"x-original-to"}


def split_trace(data: bytes) -> tuple[list[bytes], bytes]:
    """Split leading trace header fields (see :data:`TRACE_FIELDS`) from the rest."""
    trace: list[bytes] = []
    rest = data
    while (m := _HEADER.match(rest)) and m.group(0).split(b":", 1)[0].lower() in TRACE_FIELDS:
        trace.append(m.group(0))
        rest = rest[m.end():]
    return trace, rest


def comparable(data: bytes) -> bytes:
    """``data`` without leading trace fields and with LF line endings."""
    return split_trace(data)[1].replace(b"\r\n", b"\n")
