"""Line-ending normalisation of a message streamed in chunks (RFC 5322 section 2.3).

Why a shared helper: IMAP FETCH of ``BODY[]``/``RFC822`` (RFC 3501 section 6.4.5) must send
exactly ``crlf_size`` octets (every bare LF written as CRLF), streamed from storage without
holding the message in memory. POP3's :class:`~mailwing.proto.pop3.encode.DotStuffer` does the
same rewrite but fused with dot-stuffing, which IMAP must not do; this is the rewrite alone.

The rule matches storage's ``crlf_size`` count: a bare LF gains a CR; a CR not followed by LF
is left alone. The only state across chunks is a held-back trailing CR (its LF may open the
next chunk).
"""

from __future__ import annotations

__all__ = ["CrlfNormaliser", "to_crlf"]


def to_crlf(data: bytes) -> bytes:
    """Normalise a whole message held in memory."""
    if b"\n" not in data:
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class CrlfNormaliser:
    """Feed raw chunks, get CRLF-normalised chunks; :meth:`finish` flushes a held CR."""

    __slots__ = ("_carry_cr",)

    def __init__(self) -> None:
        self._carry_cr = False

    def feed(self, chunk: bytes) -> bytes:
        if self._carry_cr:
            chunk = b"\r" + chunk
            self._carry_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._carry_cr = True
        return to_crlf(chunk)

    def finish(self) -> bytes:
        if self._carry_cr:
            self._carry_cr = False
            return b"\r"
        return b""
