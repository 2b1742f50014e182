"""Every POP3 reply text, in one place, and the error type that carries its own reply.

Why: the wording of ``+OK``/``-ERR`` lines and their RFC 2449 section 8 / RFC 3206 response
codes is decided here and nowhere else, so the core and the session never write reply text
inline and tests can compare against the catalogue.

Response codes used (RFC 2449 section 8, RFC 3206 section 4):

- ``[AUTH]``: the credentials were refused (wrong user or password, malformed SASL, or too
  many recent failures: throttling is a property of the login attempt, so the client should
  not blindly retry with the same credentials -- RFC 3206 leaves ``[AUTH]`` as the code for
  "a problem with the credentials or the login itself").
- ``[SYS/PERM]``: the account is disabled. RFC 3206 section 4 describes SYS/PERM as a problem
  that needs a human to fix; a disabled account is exactly that, and it tells the client to
  stop retrying rather than prompt again for a password.
- ``[SYS/TEMP]``: storage unavailable, idle timeout, server shutting down, expunge failed.
- ``[IN-USE]`` is never sent: sessions take a snapshot instead of locking (see ``core``).

Replies are at most 512 octets including CRLF (RFC 2449 section 4); the texts here are short
and the only variable parts are numbers and command names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Pop3Error", "R", "Reply", "multiline"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One status line: ``+OK``/``-ERR``, an optional response code, a text."""

    ok: bool
    text: str
    code: str | None = None

    def encode(self) -> bytes:
        status = "+OK" if self.ok else "-ERR"
        code = f" [{self.code}]" if self.code else ""
        text = f" {self.text}" if self.text else ""
        return f"{status}{code}{text}\r\n".encode("ascii", "replace")

    def with_suffix(self, suffix: str) -> Reply:
        return Reply(self.ok, f"{self.text}{suffix}", self.code)


class Pop3Error(Exception):
    """A client mistake that knows its ``-ERR`` reply (raised by parsing and by handlers)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


def multiline(first: Reply, lines: Iterable[str]) -> bytes:
    """A multi-line response (RFC 1939 section 3): status line, dot-stuffed lines, ``.``."""
    out = [first.encode()]
    for line in lines:
        out.append(("." + line if line.startswith(".") else line).encode("ascii") + b"\r\n")
    out.append(b".\r\n")
    return b"".join(out)


def _ok(text: str, code: str | None = None) -> Reply:
    return Reply(True, text, code)


def _err(text: str, code: str | None = None) -> Reply:
    return Reply(False, text, code)


class R:
    """The catalogue. Constants for fixed replies, static methods for parametrised ones."""

    # -- greeting, sign-off, connection-level ---------------------------------------------
    @staticmethod
    def greeting(hostname: str) -> Reply:
        return _ok(f"mailwing POP3 server ready <{hostname}>")

    BYE = _ok("mailwing POP3 server signing off")

    @staticmethod
    def bye_deleted(count: int) -> Reply:
        return _ok(f"mailwing POP3 server signing off ({count} messages deleted)")

    TOO_MANY_ERRORS = "; too many errors, closing connection"  # suffix for the last -ERR
    IDLE_TIMEOUT = _err("idle timeout, closing connection", "SYS/TEMP")
    SHUTDOWN = _err("server shutting down, try again later", "SYS/TEMP")
    INTERNAL = _err("internal server error, closing connection", "SYS/TEMP")
    UPDATE_FAILED = _err("could not remove deleted messages, none removed; try again",
                         "SYS/TEMP")

    # -- syntax ---------------------------------------------------------------------------
    LINE_TOO_LONG = _err("command line too long (limit 255 octets)")
    AUTH_LINE_TOO_LONG = _err("authentication response too long", "AUTH")
    BAD_BYTES = _err("command contains NUL, control or non-ASCII characters")
    EMPTY = _err("empty command")
    UNKNOWN = _err("unknown command")
    APOP = _err("APOP is not supported; use USER/PASS or AUTH PLAIN")
    NO_ARGS_WANTED = _err("this command takes no arguments")
    BAD_NUMBER = _err("invalid message number")
    BAD_LINES = _err("invalid number of lines")
    TOP_ARGS = _err("usage: TOP message lines")
    USER_ARGS = _err("usage: USER name")
    PASS_ARGS = _err("usage: PASS password")

    @staticmethod
    def not_allowed(command: str, state: str) -> Reply:
        return _err(f"{command} not allowed in the {state} state")

    # -- CAPA / AUTH listing ----------------------------------------------------------------
    CAPA = _ok("capability list follows")
    AUTH_LIST = _ok("supported SASL mechanisms follow")

    # -- STLS (RFC 2595 section 4) -----------------------------------------------------------
    STLS_GO = _ok("begin TLS negotiation")
    STLS_ACTIVE = _err("TLS is already active")
    STLS_UNAVAILABLE = _err("TLS is not available on this server")

    # -- authorization ----------------------------------------------------------------------
    USER_OK = _ok("send PASS")
    PASS_NEEDS_USER = _err("send USER first")
    PLAINTEXT_REFUSED = _err("plaintext login is disabled on this connection; use STLS first",
                             "AUTH")
    AUTH_CONTINUE = b"+ \r\n"  # RFC 5034 section 4: an empty challenge
    AUTH_CANCELLED = _err("authentication cancelled", "AUTH")
    AUTH_MALFORMED = _err("malformed SASL response", "AUTH")
    AUTH_UNSUPPORTED = _err("unsupported SASL mechanism; CAPA lists SASL PLAIN")
    AUTHZ_REFUSED = _err("not authorized to act as another user", "AUTH")
    LOGIN_FAILED = _err("authentication failed", "AUTH")
    LOGIN_THROTTLED = _err("too many failed logins, try again later", "AUTH")
    LOGIN_DISABLED = _err("account disabled, contact the administrator", "SYS/PERM")
    LOGIN_TEMPFAIL = _err("authentication temporarily unavailable, try again later",
                          "SYS/TEMP")
    MAILDROP_TEMPFAIL = _err("maildrop temporarily unavailable, try again later", "SYS/TEMP")

    @staticmethod
    def logged_in(count: int, octets: int) -> Reply:
        return _ok(f"maildrop has {count} messages ({octets} octets)")

    # -- transaction ------------------------------------------------------------------------
    @staticmethod
    def stat(count: int, octets: int) -> Reply:
        return _ok(f"{count} {octets}")  # RFC 1939 section 5: exactly "+OK nn mm"

    @staticmethod
    def list_all(count: int, octets: int) -> Reply:
        return _ok(f"{count} messages ({octets} octets)")

    @staticmethod
    def scan_line(number: int, value: int | str) -> Reply:
        return _ok(f"{number} {value}")

    UIDL_ALL = _ok("unique-id listing follows")
    NOOP = _ok("")

    @staticmethod
    def no_such_message(number: int | None = None) -> Reply:
        return _err("no such message" if number is None else f"no such message {number}")

    @staticmethod
    def already_deleted(number: int) -> Reply:
        return _err(f"message {number} already deleted")

    @staticmethod
    def deleted(number: int) -> Reply:
        return _ok(f"message {number} deleted")

    @staticmethod
    def retr(octets: int) -> Reply:
        return _ok(f"{octets} octets")

    TOP = _ok("top of message follows")

    @staticmethod
    def rset(count: int, octets: int) -> Reply:
        return _ok(f"maildrop has {count} messages ({octets} octets)")

    MESSAGE_GONE = _err("message was removed by another session", "SYS/PERM")
    RETRIEVE_TEMPFAIL = _err("message temporarily unavailable, try again later", "SYS/TEMP")
