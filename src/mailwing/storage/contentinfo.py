"""Describe a message content while it streams in: digest, sizes, line endings, header fields.

Both backends feed every written chunk through one :class:`ContentInfoBuilder`, so the numbers
they store can never disagree. It is pure computation (no I/O), which keeps it cheap to test
with awkward chunk boundaries.

Line endings: RFC 5322 section 2.3 says lines end in CRLF, but messages handed to us (sendmail
style delivery, some clients) often use bare LF. ``crlf_size`` is the size once every bare LF
becomes CRLF, which is what POP3 LIST (RFC 1939 section 11) and IMAP RFC822.SIZE (RFC 3501
section 6.4.5) must announce. A bare CR is left as it is (counted once) but makes the content
not ``crlf_clean``, so senders know they must rewrite it.

Header fields (RFC 5322 section 3.6) are parsed once at delivery from the header block only,
capped at :data:`HEADER_CAP` bytes, and never raise: anything unparsable becomes ``None``.
This is on every delivery's path, so :func:`parse_header_fields` finds the six fields itself
and leaves only unusual values to the stdlib ``email`` package; :func:`email_header_fields`,
the stdlib parser on the whole block, is the reference it must agree with (the tests compare).
The stdlib's parser and field classes are imported only when a value needs them: a plain
header block does not, and every ``mailwing deliver`` process pays for its imports (issue #9).

The digest: :mod:`hashlib`'s SHA-256 is OpenSSL's, fast per byte but a few milliseconds to load.
A process that has not loaded it (``mailwing deliver``) keeps the first :data:`SMALL_CONTENT`
bytes and, if the content ends there, hashes them with the interpreter's built-in SHA-256
module (slower per byte, free to import); a larger content loads :mod:`hashlib` after all.
Both give the same digest (the tests compare).
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from mailwing.model import ContentInfo, HeaderFields

if TYPE_CHECKING:
    from email.message import EmailMessage, Message
    from email.policy import EmailPolicy

__all__ = [
    "HEADER_CAP", "SMALL_CONTENT", "ContentInfoBuilder", "Sha256", "clean_text",
    "email_header_fields", "parse_header_fields",
]

#: At most this many leading bytes are kept to parse header fields from.
HEADER_CAP = 256 * 1024
#: Stored header field values are cut to this many characters (they are for search and lists).
FIELD_CAP = 2048


#: Contents up to this size are hashed without loading :mod:`hashlib` if it is not loaded yet.
SMALL_CONTENT = 256 * 1024


def _builtin_sha256() -> Any:
    """The interpreter's own SHA-256 (``_sha2`` from Python 3.12, ``_sha256`` before), or
    :mod:`hashlib`'s when the build lacks it."""
    name = "_sha2" if sys.version_info >= (3, 12) else "_sha256"
    try:
        return importlib.import_module(name).sha256
    except ImportError:  # pragma: no cover - every CPython build we know of has it
        import hashlib

        return hashlib.sha256


class Sha256:
    """SHA-256 of a stream (``update``, then ``hexdigest`` once), choosing its implementation
    as the module docstring explains."""

    __slots__ = ("_hash", "_pending", "_pending_size")

    def __init__(self) -> None:
        hashlib = sys.modules.get("hashlib")
        self._hash: Any = None if hashlib is None else hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_size = 0

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)
            return
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        if self._pending_size > SMALL_CONTENT:
            import hashlib

            self._hash = hashlib.sha256()
            for chunk in self._pending:
                self._hash.update(chunk)
            self._pending.clear()

    def hexdigest(self) -> str:
        if self._hash is not None:
            return str(self._hash.hexdigest())
        return str(_builtin_sha256()(b"".join(self._pending)).hexdigest())


class ContentInfoBuilder:
    """Accumulate chunks; :meth:`result` gives the :class:`ContentInfo`."""

    def __init__(self) -> None:
        self._sha = Sha256()
        self._size = 0
        self._bare_lf = 0
        self._bare_cr = 0
        self._prev_cr = False  # the previous chunk ended with CR (its fate depends on the next)
        self._head = bytearray()
        self._head_done = False

    def update(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._sha.update(chunk)
        self._size += len(chunk)
        self._count_line_ends(chunk)
        if not self._head_done:
            self._collect_head(chunk)

    def _count_line_ends(self, chunk: bytes) -> None:
        crlf = chunk.count(b"\r\n")
        joined = 1 if self._prev_cr and chunk[:1] == b"\n" else 0
        if self._prev_cr and not joined:
            self._bare_cr += 1
        ends_cr = chunk[-1:] == b"\r"
        self._bare_lf += chunk.count(b"\n") - crlf - joined
        self._bare_cr += chunk.count(b"\r") - crlf - (1 if ends_cr else 0)
        self._prev_cr = ends_cr

    def _collect_head(self, chunk: bytes) -> None:
        start = max(0, len(self._head) - 3)  # the blank line may straddle two chunks
        self._head += chunk[: HEADER_CAP - len(self._head)]
        end = _header_end(self._head, start)
        if end is not None:
            del self._head[end:]
            self._head_done = True
        elif len(self._head) >= HEADER_CAP:
            self._head_done = True

    def result(self) -> ContentInfo:
        bare_cr = self._bare_cr + (1 if self._prev_cr else 0)
        return ContentInfo(
            sha256=self._sha.hexdigest(),
            size=self._size,
            crlf_size=self._size + self._bare_lf,
            crlf_clean=self._bare_lf == 0 and bare_cr == 0,
            fields=parse_header_fields(bytes(self._head)),
        )


def _header_end(buf: bytearray, start: int) -> int | None:
    """Offset just past the header block's last line, or None if the blank line is not seen."""
    if buf[:2] == b"\r\n" or buf[:1] == b"\n":
        return 0  # no header fields at all
    crlf = buf.find(b"\r\n\r\n", start)
    lf = buf.find(b"\n\n", start)
    hits = [pos for pos in (crlf, lf) if pos >= 0]
    if not hits:
        return None
    pos = min(hits)
    return pos + (2 if pos == crlf else 1)


def _policy() -> EmailPolicy[EmailMessage]:
    """The stdlib's default policy, imported on first use (see the module docstring)."""
    from email.policy import default

    return default


def clean_text(value: object) -> str | None:
    """A header value as text a database accepts: valid UTF-8, no NUL, bounded length."""
    if value is None:
        return None
    text = str(value).replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")  # drops surrogate escapes
    text = " ".join(text.split())  # unfold (RFC 5322 section 2.2.3) and trim
    return text[:FIELD_CAP] or None


def _field(msg: Message, name: str) -> str | None:
    try:
        return clean_text(msg.get(name))
    except Exception:  # garbage header: the email package may raise almost anything
        return None


def address_text(value: str | None) -> str | None:
    """An address field as SEARCH FROM/TO/CC match it (RFC 3501 section 6.4.4): the whole
    text, unfolded, encoded-words (RFC 2047) decoded, with display names, comments and
    source routes kept (the stdlib's address header drops comments and routes)."""
    if value is None:
        return None
    text = " ".join(value.split())
    if "=?" in text:
        from email.header import decode_header, make_header

        with contextlib.suppress(Exception):  # broken encoded-word: keep the raw text
            text = str(make_header(decode_header(text)))
    return clean_text(text)


def _address_field(msg: Message, name: str) -> str | None:
    key = name.lower()
    for field, value in msg.raw_items():
        if field.lower() == key:
            return address_text(str(value))
    return None


def parse_date(text: str) -> datetime:
    """What ``email.utils.parsedate_to_datetime`` answers, on the parser it calls.

    Importing :mod:`email.utils` costs more than the rest of header parsing (it brings
    :mod:`socket` and :mod:`random`), paid by every ``mailwing deliver`` (issue #9); the
    reference path (:func:`email_header_fields`) keeps the stdlib function, and the tests
    check that both agree."""
    from email._parseaddr import _parsedate_tz  # type: ignore[import-not-found]  # (no stub)

    parsed: list[int | None] | None = _parsedate_tz(text)
    if parsed is None:
        raise ValueError(f'Invalid date value or format "{text}"')
    year, month, day, hour, minute, second = (int(v or 0) for v in parsed[:6])
    offset = parsed[9]
    if offset is None:
        return datetime(year, month, day, hour, minute, second)
    return datetime(year, month, day, hour, minute, second,
                    tzinfo=timezone(timedelta(seconds=offset)))


def _to_datetime(raw: object, parse: Callable[[str], datetime] = parse_date
                 ) -> datetime | None:
    try:
        if raw is None:
            return None
        parsed = parse(str(raw))
    except Exception:
        return None
    if parsed.tzinfo is None:  # "-0000" means UTC with no local-time information
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _date(msg: Message) -> datetime | None:
    try:
        raw = msg.get("date")
    except Exception:
        return None
    from email.utils import parsedate_to_datetime

    return _to_datetime(raw, parsedate_to_datetime)


def email_header_fields(head: bytes) -> HeaderFields:
    """The reference implementation: the whole block through the stdlib email parser.

    :func:`parse_header_fields` must give the same answer; it uses this for odd input."""
    if not head:
        return HeaderFields()
    from email.parser import BytesHeaderParser

    try:
        msg = BytesHeaderParser(policy=_policy()).parsebytes(head)
    except Exception:
        return HeaderFields()
    return HeaderFields(
        message_id=_field(msg, "message-id"),
        subject=_field(msg, "subject"),
        from_=_address_field(msg, "from"),
        to=_address_field(msg, "to"),
        cc=_address_field(msg, "cc"),
        date=_date(msg),
    )


def parse_header_fields(head: bytes) -> HeaderFields:
    """The fields search and listings need; encoded-words (RFC 2047) are decoded.

    The stdlib parser costs about half a millisecond for a typical block, mostly spent on
    fields nobody asked for, so this finds the six fields itself, following the parser's own
    rules (a field starts with ``name:``, RFC 5322 section 2.2; a line starting with white
    space continues it, section 2.2.3; the block ends at the first line that is neither), and
    hands a value to the stdlib field parser only when it is not plainly printable (encoded
    words, quoting, comments, odd spacing). Bare CRs and ``From `` lines go the slow way."""
    if not head:
        return HeaderFields()
    raw = _raw_fields(head.decode("ascii", "surrogateescape"))
    if raw is None:
        return email_header_fields(head)
    return HeaderFields(
        message_id=_value("message-id", raw.get("message-id"), _MSG_ID),
        subject=_value("subject", raw.get("subject"), _TEXT),
        from_=address_text(raw.get("from")),
        to=address_text(raw.get("to")),
        cc=address_text(raw.get("cc")),
        date=_fast_date(raw.get("date")),
    )


_WANTED = frozenset({"message-id", "subject", "from", "to", "cc", "date"})
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_ADDR = rf"{_DOT_ATOM}@{_DOT_ATOM}"
#: Values the stdlib field parsers give back unchanged (checked by the tests).
_TEXT = re.compile(r"[\x20-\x7e\t]*")
_MSG_ID = re.compile(rf"<{_ADDR}>")


def _raw_fields(text: str) -> dict[str, str] | None:
    """The first value of each wanted field, unfolded; None if the input is odd."""
    text = text.replace("\r\n", "\n")
    if "\r" in text:
        return None
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if not line:
            break
        if line[0] in " \t":
            if current is not None:
                current.append(line)
            continue
        name, colon, value = line.partition(":")
        if not colon or " " in name or not (name.isascii() and name.isprintable()):
            if line.startswith("From "):
                return None  # the parser's mbox "From " line rules: leave them to it
            break  # the parser's header-line test failed: the body starts here
        name = name.lower()
        current = None
        if name in _WANTED and name not in found:
            current = found[name] = [value.lstrip(" \t")]
    return {name: "".join(parts) for name, parts in found.items()}


def _value(name: str, value: str | None, plain: re.Pattern[str]) -> str | None:
    if value is None:
        return None
    if "=?" not in value and plain.fullmatch(value):
        return clean_text(value)
    try:
        return clean_text(_policy().header_factory(name, value))
    except Exception:  # garbage header: the email package may raise almost anything
        return None


def _fast_date(value: str | None) -> datetime | None:
    """What the stdlib gives for Date: its DateHeader re-parses a plain value unchanged."""
    if value is None or _TEXT.fullmatch(value):
        return _to_datetime(value)
    try:
        return _to_datetime(_policy().header_factory("date", value))
    except Exception:  # garbage header: the email package may raise almost anything
        return None
