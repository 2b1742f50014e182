"""The sans-IO LMTP server core (RFC 2033): the SMTP core (:mod:`mailwing.proto.smtp.core`)
with LHLO and one reply per recipient after the message.

Why a subclass and not a second state machine: LMTP *is* the SMTP dialogue (RFC 2033
section 4) with three differences, so the command table, the body readers (DATA's
smuggling-safe reader, BDAT), PIPELINING, SIZE, the recipient cap and the error counters
are SMTP's, and only these change:

- **LHLO** (section 4.1) replaces HELO and EHLO, which are refused (``500 5.5.1``); the
  keywords are EHLO's minus STARTTLS and AUTH (neither is offered: see ``replies``), plus
  ``XMAILBOX``.
- **One reply per accepted recipient** (section 4.2) after DATA's final dot or ``BDAT ...
  LAST``, in RCPT order, each saying whether *that* recipient's copy was delivered: the
  driver answers :class:`~mailwing.proto.smtp.events.MessageComplete` with
  :meth:`LmtpCore.message_results`. A body refused by the reader (too big, bare line
  endings) is refused once per recipient too, so a client always reads as many replies as
  it had recipients accepted.
- **XMAILBOX=<xtext>** on RCPT (RFC 3461 xtext, UTF-8 underneath): deliver that recipient's
  copy into this mailbox instead of INBOX, as ``mailwing deliver --mailbox`` does (the
  mailbox must exist). It is mailwing's own parameter, advertised in the LHLO reply.

Whether a recipient exists and where its copy goes is the driver's (``server.lmtp_session``,
through ``services.delivery``); nothing here knows about users or storage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from mailwing.proto.lmtp.replies import LR
from mailwing.proto.smtp import commands as c
from mailwing.proto.smtp.core import SmtpCore, SmtpUsageError
from mailwing.proto.smtp.events import MessageComplete
from mailwing.proto.smtp.replies import R, Reply, SmtpError
from mailwing.proto.smtp.states import ALLOWED, State

__all__ = ["LMTP_ALLOWED", "Lhlo", "LmtpCore", "parse_lmtp_command", "xtext_decode"]


@dataclass(frozen=True, slots=True)
class Lhlo(c.Command):
    domain: str


def _lmtp_table() -> dict[State, frozenset[type[c.Command]]]:
    """SMTP's table with LHLO where HELO/EHLO are allowed, and no HELO, EHLO, STARTTLS or
    AUTH (they never parse in LMTP, so this only keeps the table honest)."""
    gone = {c.Helo, c.Ehlo, c.StartTls, c.Auth}
    return {state: frozenset((allowed - gone) | ({Lhlo} if c.Ehlo in allowed else set()))
            for state, allowed in ALLOWED.items()}


LMTP_ALLOWED: Mapping[State, frozenset[type[c.Command]]] = _lmtp_table()

_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
MAX_MAILBOX = 1000  # octets of a decoded XMAILBOX name


def xtext_decode(text: str) -> str:
    """RFC 3461 section 4 xtext -> the UTF-8 string it encodes; ValueError if malformed."""
    if not text or not _XTEXT.fullmatch(text):
        raise ValueError("not xtext")
    data = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "+":
            data.append(int(text[i + 1:i + 3], 16))
            i += 3
        else:
            data.append(ord(text[i]))
            i += 1
    if len(data) > MAX_MAILBOX:
        raise ValueError("too long")
    return data.decode("utf-8")


def _parse_lhlo(rest: str) -> Lhlo:
    words = rest.split()
    if len(words) != 1 or not words[0].isascii():
        raise SmtpError(LR.LHLO_ARGS)
    return Lhlo(words[0])


def _parse_rcpt(rest: str) -> c.Rcpt:
    path, words = c.split_path(rest, "TO:", R.RCPT_ARGS)
    recipient = c.parse_path(path, bad=R.BAD_RCPT_SYNTAX, allow_null=False,
                             allow_postmaster=True)
    mailbox: str | None = None
    for word in words:
        key, eq, value = word.partition("=")
        if key.upper() != "XMAILBOX":
            raise SmtpError(R.UNKNOWN_PARAM)
        if not eq or mailbox is not None:
            raise SmtpError(R.BAD_PARAM_VALUE)
        try:
            mailbox = xtext_decode(value)
        except ValueError:
            raise SmtpError(R.BAD_PARAM_VALUE) from None
    return c.Rcpt(recipient, mailbox)


_REFUSED = {"HELO": LR.USE_LHLO, "EHLO": LR.USE_LHLO, "STARTTLS": LR.NOT_OFFERED,
            "AUTH": LR.NOT_OFFERED}
_VERBS = frozenset({"LHLO", "RCPT", "MAIL", "DATA", "BDAT", "RSET", "NOOP", "HELP", "VRFY",
                    "EXPN", "QUIT", *_REFUSED})


def parse_lmtp_command(line: bytes) -> c.Command:
    """One LMTP command line (without CRLF), or :class:`SmtpError` with the reply. Byte
    checks and every shared verb are SMTP's parser's."""
    verb, rest = c.split_command(line, _VERBS)
    if verb == "LHLO":
        return _parse_lhlo(rest)
    if verb == "RCPT":
        return _parse_rcpt(rest)
    refused = _REFUSED.get(verb)
    if refused is not None:
        raise SmtpError(refused)
    return c.parse_command(line)


class LmtpCore(SmtpCore):
    """One LMTP server session's protocol state (see the module docstring)."""

    allowed: ClassVar[Mapping[State, frozenset[type[c.Command]]]] = LMTP_ALLOWED

    def __init__(self, hostname: str, *, max_message_size: int = 52_428_800,
                 max_recipients: int = 100, max_errors: int = 10) -> None:
        super().__init__(hostname, tls_available=False, plaintext_allowed=False,
                         max_message_size=max_message_size, max_recipients=max_recipients,
                         max_errors=max_errors)
        self._handlers[Lhlo] = self._lhlo
        for gone in (c.Helo, c.Ehlo, c.StartTls, c.Auth):
            del self._handlers[gone]

    # -- the dialect ------------------------------------------------------------------------
    def greeting(self) -> Reply:
        return LR.greeting(self.hostname)

    @staticmethod
    def parse(line: bytes) -> c.Command:
        return parse_lmtp_command(line)

    @staticmethod
    def refusal(state: State, command: type[c.Command], name: str) -> Reply:
        reply = SmtpCore.refusal(state, command, name)
        return LR.NEED_LHLO if reply is R.NEED_HELO else reply

    def _lhlo(self, cmd: Lhlo) -> None:
        self._reset_transaction()
        self.state, self.esmtp, self.client_name = State.READY, True, cmd.domain
        keywords = ("PIPELINING", f"SIZE {self.max_message_size}", "8BITMIME", "SMTPUTF8",
                    "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME", "XMAILBOX")
        self._ok(LR.lhlo(self.hostname, cmd.domain, keywords))

    # -- one reply per recipient ------------------------------------------------------------
    def message_results(self, replies: Sequence[Reply]) -> None:
        """The outcome of each accepted recipient, in RCPT order (RFC 2033 section 4.2)."""
        if self._awaiting is MessageComplete and len(replies) != len(self._recipients):
            raise SmtpUsageError(f"{len(replies)} replies for {len(self._recipients)} "
                                 "recipients")
        self._result_for(MessageComplete)
        self._end_transaction()
        if any(r.positive for r in replies):
            self.errors = 0
        for reply in replies:
            self._send(reply)

    def message_accepted(self, queue_id: str) -> None:
        self.message_results([R.queued(queue_id)] * len(self._recipients))

    def message_failed(self, reply: Reply) -> None:
        self.message_results([reply] * len(self._recipients))

    def _body_refused(self, reply: Reply, *, final: bool) -> None:
        count = len(self._recipients) if final else 1
        self._reset_transaction()
        for _ in range(max(count, 1)):
            self._send(reply)
