"""SASL pieces every protocol shares: strict base64 and the PLAIN mechanism (RFC 4616).

Why here: POP3 AUTH (RFC 5034), SMTP AUTH (RFC 4954) and IMAP AUTHENTICATE (RFC 3501 section
6.2.2, RFC 4959 SASL-IR) all carry the same SASL messages as base64 text; only the framing
around them differs. Keeping the decoding and the PLAIN parsing here, free of any protocol
wording, lets the three cores agree on what a malformed response is.

- :func:`decode_response` turns one client line (or an initial response) into bytes. ``=``
  stands for an empty initial response (RFC 4954 section 4, RFC 5034 section 4); ``*`` is the
  client cancelling the exchange (RFC 4422 section 3.5) and raises :class:`SaslCancelled`.
  Base64 is decoded strictly (RFC 4648 section 3.3: characters outside the alphabet are an
  error, not silently skipped as :func:`base64.b64decode` would do by default).
- :func:`parse_plain` checks the RFC 4616 section 2 message ``[authzid] NUL authcid NUL
  passwd``: UTF-8, exactly two NULs, a non-empty authcid and password, and no field longer
  than 255 octets.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

__all__ = [
    "MECHANISMS",
    "PlainCredentials",
    "SaslCancelled",
    "SaslError",
    "decode_response",
    "encode_challenge",
    "parse_plain",
]

#: Mechanisms the servers offer, in order of preference.
MECHANISMS: tuple[str, ...] = ("PLAIN",)

_MAX_FIELD = 255  # RFC 4616 section 2: each of authzid, authcid and passwd is 1*255 octets


class SaslError(ValueError):
    """The client's SASL response is malformed (bad base64, bad PLAIN message)."""


class SaslCancelled(SaslError):
    """The client sent ``*`` to abandon the exchange (RFC 4422 section 3.5)."""


@dataclass(frozen=True, slots=True)
class PlainCredentials:
    """A decoded PLAIN message. ``authzid`` is empty when the client did not ask to act as
    someone else (the usual case)."""

    authzid: str
    authcid: str
    password: str

    def __repr__(self) -> str:  # never let a password reach a log line by accident
        return f"PlainCredentials(authzid={self.authzid!r}, authcid={self.authcid!r}, ...)"


def decode_response(text: bytes | str, *, initial: bool = False) -> bytes:
    """Decode one base64 SASL response line.

    ``initial`` says the text came as an initial response on the command line, where ``=``
    means "empty". Raises :class:`SaslCancelled` for ``*`` and :class:`SaslError` otherwise.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    raw = raw.strip(b" \t")
    if raw == b"*":
        raise SaslCancelled("authentication cancelled by the client")
    if initial and raw == b"=":
        return b""
    if not raw:
        # an empty continuation line is an empty response (RFC 4422 section 5)
        return b""
    if len(raw) % 4:
        raise SaslError("base64 data has a length that is not a multiple of four")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SaslError("invalid base64 data") from exc


def encode_challenge(data: bytes) -> str:
    """Base64 for a server challenge (empty data gives an empty string)."""
    return base64.b64encode(data).decode("ascii")


def parse_plain(message: bytes) -> PlainCredentials:
    """Split and check an RFC 4616 PLAIN message."""
    parts = message.split(b"\x00")
    if len(parts) != 3:
        raise SaslError("a PLAIN message has exactly three NUL-separated fields")
    authzid, authcid, passwd = parts
    if not authcid or not passwd:
        raise SaslError("PLAIN needs a user name and a password")
    if len(authzid) > _MAX_FIELD or len(authcid) > _MAX_FIELD or len(passwd) > _MAX_FIELD:
        raise SaslError("a PLAIN field is longer than 255 octets")
    try:
        return PlainCredentials(
            authzid.decode("utf-8"), authcid.decode("utf-8"), passwd.decode("utf-8")
        )
    except UnicodeDecodeError as exc:
        raise SaslError("PLAIN fields must be UTF-8") from exc
