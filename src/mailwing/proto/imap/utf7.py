"""Modified UTF-7 for IMAP mailbox names (RFC 3501 section 5.1.3).

Why: IMAP4rev1 mailbox names travel as 7-bit text. Printable US-ASCII (0x20-0x7e) stands
for itself except ``&``, which is written ``&-``; every other run of characters is UTF-16BE,
base64 encoded with ``,`` instead of ``/`` and no padding, between ``&`` and ``-``.

Decoding is strict, as the RFC asks servers to be: a shifted run that encodes printable
ASCII, two adjacent shifted runs, bad base64, non-zero padding bits or an unpaired surrogate
are all errors (:class:`Utf7Error`), so every name has exactly one wire form.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["Utf7Error", "decode", "encode"]


class Utf7Error(ValueError):
    """The text is not valid modified UTF-7."""


def _b64(chunk: str) -> str:
    raw = chunk.encode("utf-16-be", "surrogatepass")
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


def encode(name: str) -> str:
    """Encode a mailbox name (any Unicode) to modified UTF-7."""
    out: list[str] = []
    run: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if run:
                out.append("&" + _b64("".join(run)) + "-")
                run.clear()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    if run:
        out.append("&" + _b64("".join(run)) + "-")
    return "".join(out)


def _decode_run(encoded: str) -> str:
    if not encoded:
        raise Utf7Error("empty shifted sequence")
    if "=" in encoded or "/" in encoded:
        raise Utf7Error("invalid character in a shifted sequence")
    text = encoded.replace(",", "/")
    if len(text) % 4 == 1:
        raise Utf7Error("truncated shifted sequence")
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Utf7Error("invalid base64 in a shifted sequence") from exc
    if len(raw) % 2 or _b64(raw.decode("utf-16-be", "surrogatepass")) != encoded:
        raise Utf7Error("shifted sequence is not in canonical form")
    try:
        decoded = raw.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise Utf7Error("unpaired surrogate in a shifted sequence") from exc
    if any(0x20 <= ord(ch) <= 0x7E for ch in decoded):
        raise Utf7Error("printable ASCII must not be shifted")
    return decoded


def decode(text: str) -> str:
    """Decode modified UTF-7 to Unicode; raises :class:`Utf7Error`."""
    out: list[str] = []
    i = 0
    n = len(text)
    last_shift_end = -2
    while i < n:
        ch = text[i]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise Utf7Error("mailbox names are 7-bit printable text")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise Utf7Error("unterminated shifted sequence")
        if end == i + 1:
            out.append("&")
        else:
            if last_shift_end == i:
                raise Utf7Error("adjacent shifted sequences")
            out.append(_decode_run(text[i + 1:end]))
            last_shift_end = end + 1
        i = end + 1
    return "".join(out)
