"""Server responses (RFC 3501 section 7) as bytes, and the response codes of section 7.1,
RFC 4315 (APPENDUID, COPYUID), RFC 5530 and RFC 7162 (HIGHESTMODSEQ, MODIFIED, CLOSED,
and the VANISHED response of section 3.2.10).

Why: the session only picks a builder and a text from ``texts``; the exact wire form
(``tag SP OK SP [CODE] SP text CRLF``, untagged data, ``+`` continuations) is written here.
Builders return complete lines including CRLF.

FETCH responses are written in two ways: :func:`fetch` for small results, and
:func:`fetch_segments`, which leaves a :class:`LiteralBody` placeholder where a large body
goes, so the session writes ``* n FETCH (... BODY[] {size}\\r\\n``, streams ``size``
octets from its own source, then the rest (no 25 MB ``bytes`` object needed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailwing.proto.imap import utf7, wire
from mailwing.proto.imap.seqset import SequenceSet

__all__ = [
    "Code", "LiteralBody", "bad", "bye", "capability", "continuation", "enabled",
    "exists", "expunge", "fetch", "fetch_segments", "flags", "id_response", "list_response",
    "namespace", "no", "ok", "recent", "search", "status", "tagged", "untagged", "vanished",
]

CRLF = b"\r\n"


class Code:
    """Response codes (the text between ``[`` and ``]``)."""

    ALERT = "ALERT"
    READ_ONLY = "READ-ONLY"
    READ_WRITE = "READ-WRITE"
    TRYCREATE = "TRYCREATE"
    ALREADYEXISTS = "ALREADYEXISTS"
    NONEXISTENT = "NONEXISTENT"
    CANNOT = "CANNOT"
    TOOBIG = "TOOBIG"
    UNAVAILABLE = "UNAVAILABLE"
    AUTHENTICATIONFAILED = "AUTHENTICATIONFAILED"
    AUTHORIZATIONFAILED = "AUTHORIZATIONFAILED"
    PRIVACYREQUIRED = "PRIVACYREQUIRED"
    CLIENTBUG = "CLIENTBUG"
    EXPUNGEISSUED = "EXPUNGEISSUED"
    INUSE = "INUSE"
    LIMIT = "LIMIT"
    OVERQUOTA = "OVERQUOTA"
    SERVERBUG = "SERVERBUG"
    CONTACTADMIN = "CONTACTADMIN"
    NOPERM = "NOPERM"
    HASCHILDREN = "HASCHILDREN"
    UIDNOTSTICKY = "UIDNOTSTICKY"
    NOMODSEQ = "NOMODSEQ"
    CLOSED = "CLOSED"

    @staticmethod
    def uidvalidity(n: int) -> str:
        return f"UIDVALIDITY {n}"

    @staticmethod
    def uidnext(n: int) -> str:
        return f"UIDNEXT {n}"

    @staticmethod
    def unseen(n: int) -> str:
        return f"UNSEEN {n}"

    @staticmethod
    def highestmodseq(n: int) -> str:
        return f"HIGHESTMODSEQ {n}"

    @staticmethod
    def modified(numbers: Iterable[int]) -> str:
        """RFC 7162 section 3.1.3: the messages a conditional STORE left alone."""
        return "MODIFIED " + SequenceSet.format(sorted(numbers))

    @staticmethod
    def permanentflags(flags: Iterable[str]) -> str:
        return "PERMANENTFLAGS (" + " ".join(flags) + ")"

    @staticmethod
    def capability(caps: Iterable[str]) -> str:
        return "CAPABILITY " + " ".join(caps)

    @staticmethod
    def appenduid(uidvalidity: int, uids: int | Sequence[int]) -> str:
        text = str(uids) if isinstance(uids, int) else SequenceSet.format(uids)
        return f"APPENDUID {uidvalidity} {text}"

    @staticmethod
    def copyuid(uidvalidity: int, source: Sequence[int], dest: Sequence[int]) -> str:
        return (f"COPYUID {uidvalidity} {SequenceSet.format(source)} "
                f"{SequenceSet.format(dest)}")

    @staticmethod
    def mailboxid(objectid: str) -> str:
        return f"MAILBOXID ({objectid})"

    @staticmethod
    def badcharset(charsets: Iterable[str]) -> str:
        return "BADCHARSET (" + " ".join(charsets) + ")"


def _status_line(prefix: str, status: str, text: str, code: str | None) -> bytes:
    line = f"{prefix} {status} " + (f"[{code}] " if code else "") + text
    return line.encode("utf-8") + CRLF


def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    return _status_line(tag, status, text, code)


def ok(tag: str, text: str, code: str | None = None) -> bytes:
    """``tag OK [code] text``; pass ``"*"`` as tag for an untagged OK."""
    return _status_line(tag, "OK", text, code)


def no(tag: str, text: str, code: str | None = None) -> bytes:
    return _status_line(tag, "NO", text, code)


def bad(tag: str, text: str, code: str | None = None) -> bytes:
    return _status_line(tag, "BAD", text, code)


def bye(text: str, code: str | None = None) -> bytes:
    return _status_line("*", "BYE", text, code)


def continuation(text: str = "") -> bytes:
    return b"+ " + text.encode("utf-8") + CRLF


def untagged(data: str | bytes) -> bytes:
    """``* data``: for anything without a dedicated builder."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return b"* " + raw + CRLF


def exists(n: int) -> bytes:
    return b"* %d EXISTS\r\n" % n


def recent(n: int) -> bytes:
    return b"* %d RECENT\r\n" % n


def expunge(n: int) -> bytes:
    return b"* %d EXPUNGE\r\n" % n


def vanished(uids: Iterable[int], *, earlier: bool = False) -> bytes:
    """RFC 7162 section 3.2.10: ``* VANISHED [(EARLIER)] uid-set`` (UIDs folded into
    ranges); the caller sends nothing when there is no UID."""
    text = SequenceSet.format(sorted(set(uids)))
    return (b"* VANISHED " + (b"(EARLIER) " if earlier else b"") + text.encode("ascii")
            + CRLF)


def flags(names: Iterable[str]) -> bytes:
    return b"* FLAGS " + wire.flag_list(names) + CRLF


def capability(caps: Iterable[str]) -> bytes:
    return ("* CAPABILITY " + " ".join(caps)).encode("ascii") + CRLF


def enabled(caps: Iterable[str]) -> bytes:
    return ("* ENABLED " + " ".join(caps)).strip().encode("ascii") + CRLF


def list_response(attributes: Iterable[str], delimiter: str | None, name: str,
                  command: str = "LIST") -> bytes:
    """``* LIST (\\HasNoChildren \\Sent) "/" name`` (or LSUB)."""
    delim = wire.quoted(delimiter) if delimiter is not None else b"NIL"
    return (f"* {command} ".encode("ascii") + wire.flag_list(attributes) + b" " + delim
            + b" " + wire.encode_mailbox(name) + CRLF)


def status(mailbox: str, items: Mapping[str, int | str]) -> bytes:
    body = " ".join(f"{k} {v}" for k, v in items.items()).encode("ascii")
    return b"* STATUS " + wire.encode_mailbox(mailbox) + b" (" + body + b")" + CRLF


def search(numbers: Iterable[int], highest_modseq: int | None = None) -> bytes:
    text = "".join(f" {n}" for n in numbers)
    if highest_modseq is not None:
        text += f" (MODSEQ {highest_modseq})"
    return b"* SEARCH" + text.encode("ascii") + CRLF


def namespace(personal: Sequence[tuple[str, str | None]] | None = (("", "/"),),
              other: Sequence[tuple[str, str | None]] | None = None,
              shared: Sequence[tuple[str, str | None]] | None = None) -> bytes:
    """RFC 2342: ``* NAMESPACE (("" "/")) NIL NIL`` by default."""
    def one(spaces: Sequence[tuple[str, str | None]] | None) -> bytes:
        if not spaces:
            return b"NIL"
        return wire.encode_sexp([[utf7.encode(p), d] for p, d in spaces])
    return b"* NAMESPACE " + one(personal) + b" " + one(other) + b" " + one(shared) + CRLF


def id_response(params: Mapping[str, str | None] | None) -> bytes:
    """RFC 2971: ``* ID ("name" "mailwing")`` or ``* ID NIL``."""
    if not params:
        return b"* ID NIL\r\n"
    flat: list[Any] = []
    for key, value in params.items():
        flat += [key, value]
    return b"* ID " + wire.encode_sexp(flat) + CRLF


@dataclass(frozen=True, slots=True)
class LiteralBody:
    """A placeholder for ``size`` octets the session streams itself; ``source`` is opaque
    to the protocol core (whatever the session needs to open the content)."""

    size: int
    source: Any = None


def fetch_segments(seq: int, items: Iterable[tuple[str, bytes | LiteralBody]]
                   ) -> list[bytes | LiteralBody]:
    """``* seq FETCH (name value ...)`` as byte chunks and :class:`LiteralBody` markers.

    Values are already encoded (``wire.encode_sexp``...); for a :class:`LiteralBody` the
    ``{size}\\r\\n`` prefix is emitted here and the session writes the octets."""
    out: list[bytes | LiteralBody] = []
    cur: list[bytes] = [b"* %d FETCH (" % seq]  # joined once per segment, not grown
    for i, (name, value) in enumerate(items):
        if i:
            cur.append(b" ")
        cur.append(name.encode("ascii"))
        if isinstance(value, LiteralBody):
            cur.append(b" {%d}\r\n" % value.size)
            out.append(b"".join(cur))
            out.append(value)
            cur = []
        else:
            cur.append(b" ")
            cur.append(value)
    cur.append(b")\r\n")
    out.append(b"".join(cur))
    return out


def fetch(seq: int, items: Iterable[tuple[str, bytes]]) -> bytes:
    """``* seq FETCH (...)`` in one piece (values already encoded): one join, no segments
    (STORE answers one of these per message)."""
    return b"* %d FETCH (%b)\r\n" % (
        seq, b" ".join([name.encode("ascii") + b" " + value for name, value in items]))
