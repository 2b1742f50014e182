"""The MIME part tree with byte offsets (RFC 2045, RFC 2046 section 5.1.1 and 5.2.1).

Why hand-written: IMAP BODY[1.2] must return the exact original octets of a part (RFC 3501
section 6.4.5), and the stdlib ``email`` package re-serialises messages and gives no offsets.
So :func:`parse` walks the raw bytes itself: a header block (``headers.scan_headers``), then
for ``multipart/*`` the delimiter lines ``--boundary`` at line start with optional transport
padding, the close delimiter ``--boundary--``, preamble and epilogue ignored; for
``message/rfc822`` the body is parsed again as a message. Parameters (RFC 2231) and defaults
(RFC 2045 section 5.2: ``text/plain; charset=us-ascii``; RFC 2046 section 5.1.5:
``message/rfc822`` inside ``multipart/digest``) come from ``headers.parse_params``.

Contract: **input must be CRLF-normalised bytes** (what the IMAP session presents: a message
not ``crlf_clean`` goes through ``proto.common.crlf.to_crlf``, re-exported here, whose rule
matches storage's ``crlf_size``: a bare LF gains a CR, a bare CR stays). Offsets index into the
bytes given, and ``size``/``lines`` are computed on them, so for CRLF input they are the RFC
3501 sizes. LF-only input still parses (bare LF ends a line everywhere), but its sizes are
those of the LF form.

Robustness: never raises on malformed input. A multipart without a boundary parameter or
without any delimiter line is reported as ``text/plain``; an unterminated multipart ends at
the end of its enclosing body; a ``message/rfc822`` with a base64/quoted-printable encoding
(forbidden by RFC 2046 section 5.2.1) or beyond :data:`MAX_DEPTH` is reported as
``application/octet-stream``. At most :data:`MAX_PARTS` parts are built per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailwing.mime.headers import HeaderField, Params, parse_params, scan_headers
from mailwing.proto.common.crlf import to_crlf

__all__ = ["MAX_DEPTH", "MAX_PARTS", "MessagePart", "parse", "to_crlf"]

MAX_DEPTH = 20
MAX_PARTS = 5_000

_DEFAULT_PARAMS: Params = (("charset", "us-ascii"),)
_IDENTITY_ENCODINGS = frozenset({"7BIT", "8BIT", "BINARY"})


@dataclass(slots=True)
class MessagePart:
    """One MIME entity. ``raw[header_start:header_end]`` is its header including the blank
    line; ``raw[header_end:body_end]`` its body. ``maintype``/``subtype``/``params`` names
    are lower-case; ``params`` are RFC 2231-decoded, ``wire_params`` keep the ASCII form."""

    header_start: int
    header_end: int
    body_end: int
    fields: tuple[HeaderField, ...] = ()
    maintype: str = "text"
    subtype: str = "plain"
    params: Params = _DEFAULT_PARAMS
    wire_params: Params = _DEFAULT_PARAMS
    id: str | None = None
    description: str | None = None
    encoding: str = "7BIT"
    disposition: str | None = None
    disposition_params: Params = ()
    disposition_wire_params: Params = ()
    language: tuple[str, ...] = ()
    location: str | None = None
    md5: str | None = None
    children: list[MessagePart] = field(default_factory=list)
    message: MessagePart | None = None
    size: int = 0
    lines: int = 0

    @property
    def content_type(self) -> str:
        return f"{self.maintype}/{self.subtype}"

    @property
    def is_multipart(self) -> bool:
        return bool(self.children)

    def get(self, name: str) -> str | None:
        """The first field called ``name`` (unfolded, not decoded), or None."""
        key = name.casefold()
        return next((f.value for f in self.fields if f.key == key), None)

    def get_all(self, name: str) -> list[str]:
        key = name.casefold()
        return [f.value for f in self.fields if f.key == key]

    def param(self, name: str) -> str | None:
        """A decoded Content-Type parameter (RFC 2231 applied)."""
        return dict(self.params).get(name.lower())

    def filename(self) -> str | None:
        """Content-Disposition ``filename``, else Content-Type ``name`` (decoded)."""
        return dict(self.disposition_params).get("filename") or self.param("name")

    def walk(self) -> list[MessagePart]:
        """This part and every part below it (children and encapsulated messages), in order."""
        out: list[MessagePart] = []
        stack = [self]
        while stack:
            part = stack.pop()
            out.append(part)
            below = [part.message] if part.message is not None else part.children
            stack.extend(reversed(below))
        return out


def parse(raw: bytes) -> MessagePart:
    """Build the part tree of a whole message (see the module docstring for the contract)."""
    return _Parser(raw).part(0, len(raw), in_digest=False, depth=0)


class _Parser:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.budget = MAX_PARTS

    def part(self, start: int, end: int, *, in_digest: bool, depth: int) -> MessagePart:
        self.budget -= 1
        fields, header_end = scan_headers(self.raw, start, end)
        part = MessagePart(start, header_end, end, tuple(fields))
        _apply_headers(part, in_digest)
        part.size = end - header_end
        part.lines = _count_lines(self.raw, header_end, end)
        if part.maintype == "multipart":
            self._multipart(part, depth)
        elif part.content_type == "message/rfc822":
            if depth >= MAX_DEPTH or self.budget <= 0 or part.encoding not in _IDENTITY_ENCODINGS:
                part.maintype, part.subtype = "application", "octet-stream"
            else:
                part.message = self.part(header_end, end, in_digest=False, depth=depth + 1)
        return part

    def _multipart(self, part: MessagePart, depth: int) -> None:
        boundary = part.param("boundary")
        ranges = _split(self.raw, part.header_end, part.body_end, boundary) if boundary else []
        if depth >= MAX_DEPTH or not ranges:
            part.maintype, part.subtype = "text", "plain"
            part.params = part.wire_params = _DEFAULT_PARAMS
            return
        digest = part.subtype == "digest"
        for start, end in ranges:
            if self.budget <= 0:
                break
            part.children.append(self.part(start, end, in_digest=digest, depth=depth + 1))


def _count_lines(raw: bytes, start: int, end: int) -> int:
    """Text lines of a body (RFC 3501 ``body-fld-lines``): its line ends. A last line without
    one (a part ends where the CRLF before its boundary starts) is not counted, as Dovecot
    counts (checked by tests/differential)."""
    if end <= start:
        return 0
    return raw.count(b"\n", start, end)


def _split(raw: bytes, start: int, end: int, boundary: str) -> list[tuple[int, int]]:
    """Body ranges of a multipart's parts (RFC 2046 section 5.1.1).

    A delimiter is ``--boundary`` at line start, an optional ``--`` (close delimiter), then
    only transport padding (space/tab) up to the line end; the line break before it belongs to
    the delimiter, not to the preceding part.
    """
    delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
    ranges: list[tuple[int, int]] = []
    part_start: int | None = None
    pos = start
    while True:
        hit = raw.find(delimiter, pos, end)
        if hit < 0:
            break
        pos = hit + 1
        if hit != start and raw[hit - 1] != 0x0A:
            continue
        after = hit + len(delimiter)
        closing = raw.startswith(b"--", after, end)
        k = after + 2 if closing else after
        while k < end and raw[k] in (0x20, 0x09):
            k += 1
        if k < end and raw[k] not in (0x0D, 0x0A):
            continue  # "--boundaryX": a longer boundary or text, not a delimiter
        line_end = k + 2 if raw.startswith(b"\r\n", k, end) else min(k + 1, end)
        if part_start is not None:
            part_end = hit - 2 if raw[hit - 2 : hit] == b"\r\n" else hit - 1
            ranges.append((part_start, max(part_start, part_end)))
        if closing:
            return ranges
        part_start = pos = line_end
    if part_start is not None:  # unterminated: the last part runs to the end
        ranges.append((part_start, end))
    return ranges


_TOKEN = frozenset(
    "!#$%&'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`abcdefghijklmnopqrstuvwxyz{|}~"
)


def _is_token(text: str) -> bool:
    """RFC 2045 section 5.1 token: printable ASCII without SPACE and tspecials."""
    return bool(text) and all(ch in _TOKEN for ch in text)


def _apply_headers(part: MessagePart, in_digest: bool) -> None:
    """Fill the MIME fields of ``part`` from its header (first occurrence of each wins)."""
    seen: dict[str, str] = {}
    for f in part.fields:
        seen.setdefault(f.key, f.value)
    content_type = seen.get("content-type")
    if content_type is None and in_digest:
        part.maintype, part.subtype, part.params, part.wire_params = "message", "rfc822", (), ()
    elif content_type is not None:
        main, params, wire = parse_params("Content-Type", content_type)
        maintype, slash, subtype = (t.strip() for t in main.partition("/"))
        if slash and _is_token(maintype) and _is_token(subtype):
            part.maintype, part.subtype = maintype, subtype
            part.params, part.wire_params = params, wire
            if maintype.lower() == "text" and not any(n == "charset" for n, _ in params):
                # RFC 2046 section 4.1.2: text without charset is US-ASCII
                part.params = (*params, *_DEFAULT_PARAMS)
                part.wire_params = (*wire, *_DEFAULT_PARAMS)
    encoding = seen.get("content-transfer-encoding", "").split("(", 1)[0].strip()
    if encoding:
        part.encoding = encoding.upper()
    disposition = seen.get("content-disposition")
    if disposition is not None:
        main, params, wire = parse_params("Content-Disposition", disposition)
        if main:
            part.disposition = main
            part.disposition_params, part.disposition_wire_params = params, wire
    language = seen.get("content-language")
    if language is not None:
        part.language = tuple(t.strip() for t in language.split(",") if t.strip())
    part.id = seen.get("content-id")
    part.description = seen.get("content-description")
    part.location = seen.get("content-location")
    part.md5 = seen.get("content-md5")
