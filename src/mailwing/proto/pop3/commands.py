"""POP3 commands as frozen dataclasses, and the parser from one command line to one of them.

Why: the core dispatches on the command's type (through the state table in ``states``), so
every argument check happens once, here, and handlers receive already-typed values.

Grammar (RFC 1939 section 3, RFC 2449 section 4): a case-insensitive keyword of 3-4 letters,
arguments separated by spaces, at most 255 octets per line including CRLF (enforced by the
line reader). Leniencies, each deliberate:

- several spaces or tabs between arguments are accepted (except in PASS, below);
- ``PASS`` takes the *rest of the line* after one space, so passwords may contain spaces
  (RFC 1939 section 7 notes that servers may accept this);
- user names and passwords may be UTF-8 (RFC 1939 only promises printable ASCII, but mail
  clients send UTF-8 passwords and AUTH PLAIN allows them, RFC 4616 section 2);
- any other byte outside printable ASCII (NUL, controls, DEL, 8-bit data in a keyword or a
  number) makes the line an error.

Message numbers are parsed to ints here; whether they exist is for the core to decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailwing.proto.pop3.replies import Pop3Error, R

__all__ = [
    "Apop", "Auth", "Capa", "Command", "Dele", "List", "Noop", "Pass", "Quit", "Retr", "Rset",
    "Stat", "Stls", "Top", "Uidl", "User", "parse_command",
]


class Command:
    """Base of every command; ``name`` is the upper-case keyword (used in replies and logs)."""

    name = ""


@dataclass(frozen=True, slots=True)
class User(Command):
    username: str
    name = "USER"


@dataclass(frozen=True, slots=True)
class Pass(Command):
    password: str
    name = "PASS"

    def __repr__(self) -> str:
        return "Pass(...)"


@dataclass(frozen=True, slots=True)
class Auth(Command):
    mechanism: str | None  # None: "AUTH" alone, list the mechanisms
    initial_response: str | None = None  # base64 text as sent, "=" for empty
    name = "AUTH"

    def __repr__(self) -> str:
        return f"Auth({self.mechanism!r}, ...)"


@dataclass(frozen=True, slots=True)
class Apop(Command):
    name = "APOP"


@dataclass(frozen=True, slots=True)
class Stls(Command):
    name = "STLS"


@dataclass(frozen=True, slots=True)
class Capa(Command):
    name = "CAPA"


@dataclass(frozen=True, slots=True)
class Quit(Command):
    name = "QUIT"


@dataclass(frozen=True, slots=True)
class Stat(Command):
    name = "STAT"


@dataclass(frozen=True, slots=True)
class List(Command):
    number: int | None
    name = "LIST"


@dataclass(frozen=True, slots=True)
class Retr(Command):
    number: int
    name = "RETR"


@dataclass(frozen=True, slots=True)
class Top(Command):
    number: int
    lines: int
    name = "TOP"


@dataclass(frozen=True, slots=True)
class Uidl(Command):
    number: int | None
    name = "UIDL"


@dataclass(frozen=True, slots=True)
class Dele(Command):
    number: int
    name = "DELE"


@dataclass(frozen=True, slots=True)
class Noop(Command):
    name = "NOOP"


@dataclass(frozen=True, slots=True)
class Rset(Command):
    name = "RSET"


# Printable ASCII plus space and tab; anything else is refused in keywords and numbers.
_PRINTABLE = re.compile(rb"[\x20-\x7e\t]*")
# Control characters (and DEL) are refused everywhere, even inside a UTF-8 password.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_NUMBER = re.compile(r"[0-9]{1,10}")
_NO_ARGS: dict[str, type[Command]] = {
    "STLS": Stls, "CAPA": Capa, "QUIT": Quit, "STAT": Stat, "NOOP": Noop, "RSET": Rset,
}
_ONE_NUMBER: dict[str, type[Retr] | type[Dele]] = {"RETR": Retr, "DELE": Dele}
_OPT_NUMBER: dict[str, type[List] | type[Uidl]] = {"LIST": List, "UIDL": Uidl}


def _number(text: str) -> int:
    if not _NUMBER.fullmatch(text):
        raise Pop3Error(R.BAD_NUMBER)
    return int(text)


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Pop3Error(R.BAD_BYTES) from None


def parse_command(line: bytes) -> Command:
    """Parse one command line (terminator already removed); raise :class:`Pop3Error`."""
    if _CONTROL.search(line):
        raise Pop3Error(R.BAD_BYTES)
    keyword_raw, sep, rest_raw = line.lstrip(b" \t").partition(b" ")
    keyword_raw, tab, tail = keyword_raw.partition(b"\t")
    if tab:
        rest_raw = tail + sep + rest_raw
    if not keyword_raw:
        raise Pop3Error(R.EMPTY)
    if not _PRINTABLE.fullmatch(keyword_raw):
        raise Pop3Error(R.BAD_BYTES)
    keyword = keyword_raw.decode("ascii").upper()

    if keyword == "PASS":
        # the rest of the line, as is: a password may contain (and end with) spaces
        if not rest_raw:
            raise Pop3Error(R.PASS_ARGS)
        return Pass(_utf8(rest_raw))
    if keyword == "USER":
        names = rest_raw.split()
        if len(names) != 1:
            raise Pop3Error(R.USER_ARGS)
        return User(_utf8(names[0]))

    # every other command is pure ASCII
    if not _PRINTABLE.fullmatch(rest_raw):
        raise Pop3Error(R.BAD_BYTES)
    args = rest_raw.decode("ascii").split()

    if keyword in _NO_ARGS:
        if args:
            raise Pop3Error(R.NO_ARGS_WANTED)
        return _NO_ARGS[keyword]()
    if keyword in _ONE_NUMBER:
        if len(args) != 1:
            raise Pop3Error(R.BAD_NUMBER)
        return _ONE_NUMBER[keyword](_number(args[0]))
    if keyword in _OPT_NUMBER:
        if len(args) > 1:
            raise Pop3Error(R.BAD_NUMBER)
        return _OPT_NUMBER[keyword](_number(args[0]) if args else None)
    if keyword == "TOP":
        if len(args) != 2:
            raise Pop3Error(R.TOP_ARGS)
        number = _number(args[0])
        if not _NUMBER.fullmatch(args[1]):
            raise Pop3Error(R.BAD_LINES)
        return Top(number, int(args[1]))
    if keyword == "AUTH":
        if not args:
            return Auth(None)
        if len(args) > 2:
            raise Pop3Error(R.AUTH_MALFORMED)
        return Auth(args[0].upper(), args[1] if len(args) == 2 else None)
    if keyword == "APOP":
        return Apop()
    raise Pop3Error(R.UNKNOWN)
