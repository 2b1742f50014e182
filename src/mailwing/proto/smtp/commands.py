"""SMTP command lines parsed into frozen dataclasses (RFC 5321 section 4.1, with extensions).

Why typed commands: the core dispatches on the type and the state table (``states``) gates
by type, so no handler re-parses text. Parsing is strict where RFC 5321 is (paths, parameter
syntax: section 4.1.2) and lenient where real clients are not careful (a space after
``FROM:``; lower-case verbs; trailing spaces).

- Paths (section 4.1.2): ``<>`` (the null reverse-path), ``<local@domain>``, an obsolete
  source route ``<@a,@b:local@domain>`` (accepted, route ignored, section C), and for RCPT
  ``<postmaster>``. Local part at most 64 octets, domain 255, path 256 (section 4.5.3.1).
  UTF-8 in addresses (RFC 6531 section 3.3) is parsed; whether it is allowed (the SMTPUTF8
  parameter) is the core's decision, so :class:`Address` says whether it is ASCII.
- MAIL parameters: ``SIZE`` (RFC 1870), ``BODY`` (RFC 6152; ``BINARYMIME`` from RFC 3030),
  ``SMTPUTF8`` (RFC 6531), ``AUTH`` (RFC 4954 section 5: accepted and ignored). Anything else
  raises ``555 5.5.4`` (RFC 5321 section 4.1.1.11). RCPT takes no parameters (no DSN).
- Bytes: NUL and control characters are refused; bytes >= 0x80 only in MAIL/RCPT and only
  as valid UTF-8.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass

from mailwing.proto.smtp.replies import R, Reply, SmtpError

__all__ = [
    "Address", "Auth", "Bdat", "Command", "Data", "Ehlo", "Expn", "Helo", "Help", "Mail",
    "Noop", "Quit", "Rcpt", "Rset", "StartTls", "Vrfy", "parse_command", "parse_path",
    "split_command", "split_path",
]

MAX_LOCAL = 64
MAX_DOMAIN = 255
MAX_PATH = 256

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_QUOTED = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"')
_LETDIG = r"[A-Za-z0-9\u0080-\U0010ffff]"
_LABEL = rf"{_LETDIG}(?:[A-Za-z0-9\-\u0080-\U0010ffff]*{_LETDIG})?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_LITERAL = re.compile(r"\[[\x21-\x5a\x5e-\x7e]+\]")
_ROUTE = re.compile(r"@[^,:]+(?:,@[^,:]+)*:")
_PARAM = re.compile(r"([A-Za-z0-9][A-Za-z0-9\-]*)(?:=([\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+))?")
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})+")


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed path; ``text`` is ``""`` for the null reverse-path ``<>``."""

    text: str

    @property
    def is_null(self) -> bool:
        return not self.text

    @property
    def is_ascii(self) -> bool:
        return self.text.isascii()

    @property
    def domain(self) -> str:
        return self.text.rpartition("@")[2].lower() if "@" in self.text else ""


@dataclass(frozen=True, slots=True)
class Command:
    @property
    def name(self) -> str:
        return type(self).__name__.upper()


@dataclass(frozen=True, slots=True)
class Helo(Command):
    domain: str


@dataclass(frozen=True, slots=True)
class Ehlo(Command):
    domain: str


@dataclass(frozen=True, slots=True)
class Mail(Command):
    sender: Address
    size: int | None = None
    body: str = "7BIT"  # 7BIT, 8BITMIME or BINARYMIME
    smtputf8: bool = False


@dataclass(frozen=True, slots=True)
class Rcpt(Command):
    recipient: Address
    #: The target mailbox of an LMTP recipient (``proto.lmtp``'s ``XMAILBOX`` parameter);
    #: SMTP takes no RCPT parameter, so it is always None there.
    mailbox: str | None = None


@dataclass(frozen=True, slots=True)
class Data(Command):
    pass


@dataclass(frozen=True, slots=True)
class Bdat(Command):
    size: int
    last: bool


@dataclass(frozen=True, slots=True)
class Rset(Command):
    pass


@dataclass(frozen=True, slots=True)
class Noop(Command):
    pass


@dataclass(frozen=True, slots=True)
class Help(Command):
    pass


@dataclass(frozen=True, slots=True)
class Vrfy(Command):
    pass


@dataclass(frozen=True, slots=True)
class Expn(Command):
    pass


@dataclass(frozen=True, slots=True)
class Quit(Command):
    pass


@dataclass(frozen=True, slots=True)
class StartTls(Command):
    @property
    def name(self) -> str:
        return "STARTTLS"


@dataclass(frozen=True, slots=True)
class Auth(Command):
    mechanism: str
    initial_response: str | None = None

    def __repr__(self) -> str:  # the initial response carries the password
        return f"Auth(mechanism={self.mechanism!r})"


def _fail(reply: Reply) -> SmtpError:
    return SmtpError(reply)


def parse_path(text: str, *, bad: Reply, allow_null: bool, allow_postmaster: bool) -> Address:
    """Parse ``<...>`` as a Reverse-path or Forward-path (RFC 5321 section 4.1.2)."""
    if not (text.startswith("<") and text.endswith(">")):
        raise _fail(bad)
    inner = text[1:-1]
    if not inner:
        if allow_null:
            return Address("")
        raise _fail(bad)
    route = _ROUTE.match(inner)
    if route:
        inner = inner[route.end():]
    if allow_postmaster and inner.lower() == "postmaster":
        return Address("postmaster")
    local, at, domain = inner.rpartition("@")
    if not at or not local or not domain:
        raise _fail(bad)
    if not (_DOT_ATOM.fullmatch(local) or _QUOTED.fullmatch(local)):
        raise _fail(bad)
    if not (_DOMAIN.fullmatch(domain) or _LITERAL.fullmatch(domain)):
        raise _fail(bad)
    if (len(local.encode()) > MAX_LOCAL or len(domain.encode()) > MAX_DOMAIN
            or len(inner.encode()) > MAX_PATH):
        raise _fail(bad)
    return Address(f"{local}@{domain}")


def split_path(rest: str, prefix: str, usage: Reply) -> tuple[str, list[str]]:
    """Split ``FROM:<path> params`` into the path and the parameter words."""
    if not rest.upper().startswith(prefix):
        raise _fail(usage)
    rest = rest[len(prefix):].lstrip(" ")
    if not rest.startswith("<"):
        raise _fail(usage)
    end = rest.find(">")
    if end < 0:
        raise _fail(usage)
    path, params = rest[: end + 1], rest[end + 1:]
    if params and not params.startswith(" "):
        raise _fail(usage)
    return path, params.split()


def _parse_mail(rest: str) -> Mail:
    path, words = split_path(rest, "FROM:", R.MAIL_ARGS)
    sender = parse_path(path, bad=R.BAD_SENDER_SYNTAX, allow_null=True, allow_postmaster=False)
    size: int | None = None
    body = "7BIT"
    smtputf8 = False
    seen: set[str] = set()
    for word in words:
        m = _PARAM.fullmatch(word)
        if not m:
            raise _fail(R.BAD_PARAM_VALUE)
        key, value = m.group(1).upper(), m.group(2)
        if key in seen:
            raise _fail(R.BAD_PARAM_VALUE)
        seen.add(key)
        if key == "SIZE":
            if value is None or not value.isdigit() or len(value) > 20:
                raise _fail(R.BAD_PARAM_VALUE)
            size = int(value)
        elif key == "BODY":
            if value is None or value.upper() not in ("7BIT", "8BITMIME", "BINARYMIME"):
                raise _fail(R.BAD_PARAM_VALUE)
            body = value.upper()
        elif key == "SMTPUTF8":
            if value is not None:
                raise _fail(R.BAD_PARAM_VALUE)
            smtputf8 = True
        elif key == "AUTH":
            if value is None or not (value == "<>" or _XTEXT.fullmatch(value)):
                raise _fail(R.BAD_PARAM_VALUE)
        else:
            raise _fail(R.UNKNOWN_PARAM)
    return Mail(sender, size, body, smtputf8)


def _parse_rcpt(rest: str) -> Rcpt:
    path, words = split_path(rest, "TO:", R.RCPT_ARGS)
    recipient = parse_path(path, bad=R.BAD_RCPT_SYNTAX, allow_null=False,
                           allow_postmaster=True)
    if words:
        raise _fail(R.UNKNOWN_PARAM)
    return Rcpt(recipient)


def _parse_bdat(rest: str) -> Bdat:
    words = rest.split()
    if not 1 <= len(words) <= 2 or not words[0].isdigit() or len(words[0]) > 18:
        raise _fail(R.BDAT_ARGS)
    if len(words) == 2 and words[1].upper() != "LAST":
        raise _fail(R.BDAT_ARGS)
    return Bdat(int(words[0]), len(words) == 2)


def _no_args(cls: type[Command]) -> object:
    def build(rest: str) -> Command:
        if rest.strip():
            raise _fail(R.NO_ARGS_WANTED)
        return cls()
    return build


def _domain(cls: type[Helo] | type[Ehlo]) -> object:
    def build(rest: str) -> Command:
        words = rest.split()
        if len(words) != 1 or not words[0].isascii():
            raise _fail(R.HELO_ARGS)
        return cls(words[0])
    return build


def _auth(rest: str) -> Auth:
    words = rest.split()
    if not 1 <= len(words) <= 2:
        raise _fail(R.SYNTAX)
    return Auth(words[0].upper(), words[1] if len(words) == 2 else None)


def _vrfy(rest: str) -> Vrfy:
    if not rest.strip():
        raise _fail(R.VRFY_ARGS)
    return Vrfy()


_PARSERS: dict[str, object] = {
    "HELO": _domain(Helo), "EHLO": _domain(Ehlo), "MAIL": _parse_mail, "RCPT": _parse_rcpt,
    "DATA": _no_args(Data), "BDAT": _parse_bdat, "RSET": _no_args(Rset),
    "NOOP": lambda rest: Noop(), "HELP": lambda rest: Help(), "VRFY": _vrfy,
    "EXPN": lambda rest: Expn(), "QUIT": _no_args(Quit), "STARTTLS": _no_args(StartTls),
    "AUTH": _auth,
}
_UTF8_VERBS = frozenset({"MAIL", "RCPT", "VRFY", "EXPN", "NOOP", "HELP"})


def split_command(line: bytes, verbs: Container[str]) -> tuple[str, str]:
    """The upper-cased verb of one command line (without CRLF) and its arguments, decoded
    and trimmed; :class:`SmtpError` for bytes no command may carry or a verb not in
    ``verbs``. Shared with LMTP (``proto.lmtp``), which knows other verbs."""
    if not line.strip():
        raise _fail(R.EMPTY)
    if any(b < 0x20 and b != 0x09 for b in line) or 0x7F in line:
        raise _fail(R.BAD_BYTES)
    verb_bytes, _, rest_bytes = line.partition(b" ")
    verb = verb_bytes.decode("ascii", "replace").upper()
    if verb not in verbs:
        raise _fail(R.UNKNOWN)
    if not rest_bytes.isascii() and verb not in _UTF8_VERBS:
        raise _fail(R.BAD_BYTES)
    try:
        rest = rest_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(R.BAD_BYTES) from None
    return verb, rest.replace("\t", " ").strip(" ")


def parse_command(line: bytes) -> Command:
    """Parse one command line (without CRLF); raise :class:`SmtpError` with the reply."""
    verb, rest = split_command(line, _PARSERS)
    return _PARSERS[verb](rest)  # type: ignore[operator, no-any-return]
