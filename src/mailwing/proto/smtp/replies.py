"""Every SMTP reply, in one place, with its RFC 3463 enhanced status code.

Why one module: the reply code, the enhanced code (RFC 2034 ENHANCEDSTATUSCODES, RFC 3463
classes) and the text of every reply are decided here; the core, the policy service and the
session only pick entries, so tests compare against the catalogue and the wording cannot
drift between modules.

Code choices worth knowing (RFC 5321 section 4.2.2/4.2.3, RFC 3463, RFC 4954 section 6,
RFC 3207 section 4, RFC 3030 section 2, RFC 6531 section 3.7.4):

- ``500 5.5.2`` unknown command, unparsable bytes, line too long (RFC 5321 4.5.3.1.4);
  ``501 5.5.4`` bad arguments, ``501 5.1.7``/``501 5.1.3`` bad sender/recipient syntax;
  ``503 5.5.1`` wrong sequence (decided by the state table in ``states``);
  ``555 5.5.4`` an unknown MAIL/RCPT parameter (RFC 5321 4.1.1.11).
- Content rejected at the end of DATA: ``550 5.6.0`` for bare CR / bare LF / NUL or a text
  line longer than 1000 octets (RFC 5321 2.3.8, 4.5.3.1.6; X.6.0 "other media error");
  ``552 5.3.4`` for a message over the size limit (RFC 1870 section 6).
- ``553 5.6.7`` a UTF-8 address without SMTPUTF8 (RFC 6531 3.7.4.1); ``553 5.7.1`` a sender
  the authenticated user may not use.
- Relay: ``554 5.7.1`` unauthenticated mail for a remote domain; ``550 5.7.1`` remote mail
  from an authenticated user while outbound delivery does not exist yet.
- AUTH (RFC 4954 section 6): ``235 2.7.0``, ``334``, ``535 5.7.8``, ``501 5.0.0`` cancelled,
  ``538 5.7.11`` encryption required, ``530 5.7.0`` authentication required,
  ``454 4.7.0`` temporary failure, ``504 5.5.4`` unknown mechanism,
  ``500 5.5.6`` exchange line too long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ENDINGS", "R", "Reply", "SmtpError"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: a three-digit code, an optional enhanced code, one or more lines."""

    code: int
    enhanced: str | None
    text: str
    extra: tuple[str, ...] = ()  # further lines of a multi-line reply (EHLO, HELP)

    @property
    def positive(self) -> bool:
        return self.code < 400

    def encode(self) -> bytes:
        lines = (self.text, *self.extra)
        out = []
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            prefix = f"{self.enhanced} " if self.enhanced else ""  # every line (RFC 2034)
            out.append(f"{self.code}{sep}{prefix}{line}\r\n")
        return "".join(out).encode("utf-8", "replace")

    def with_text(self, text: str) -> Reply:
        return Reply(self.code, self.enhanced, text, self.extra)


class SmtpError(Exception):
    """A client mistake (or refusal) that knows its reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.code} {reply.text}")
        self.reply = reply


def _r(code: int, enhanced: str | None, text: str) -> Reply:
    return Reply(code, enhanced, text)


class R:
    """The catalogue. Constants for fixed replies, static methods for parametrised ones."""

    # -- connection ------------------------------------------------------------------------
    @staticmethod
    def dmarc_rejected(domain: str) -> Reply:
        """RFC 7489 section 6.6.4: a p=reject failure is refused in the SMTP transaction."""
        return _r(550, "5.7.1", f"message rejected: DMARC policy of {domain}")

    @staticmethod
    def greeting(hostname: str) -> Reply:
        return _r(220, None, f"{hostname} ESMTP mailwing")

    @staticmethod
    def bye(hostname: str) -> Reply:
        return _r(221, "2.0.0", f"{hostname} closing connection")

    IDLE_TIMEOUT = _r(421, "4.4.2", "idle timeout, closing connection")
    SHUTDOWN = _r(421, "4.3.2", "server shutting down, try again later")
    TOO_MANY_ERRORS = _r(421, "4.7.0", "too many errors, closing connection")
    TOO_MANY_AUTH_FAILURES = _r(421, "4.7.0", "too many failed authentications, closing")
    INTERNAL = _r(421, "4.3.0", "internal server error, closing connection")

    # -- greeting commands --------------------------------------------------------------------
    @staticmethod
    def helo(hostname: str, client: str) -> Reply:
        return _r(250, None, f"{hostname} greets {client}")

    @staticmethod
    def ehlo(hostname: str, client: str, keywords: Sequence[str]) -> Reply:
        return Reply(250, None, f"{hostname} greets {client}", tuple(keywords))

    # -- general --------------------------------------------------------------------------
    OK = _r(250, "2.0.0", "Ok")
    RESET = _r(250, "2.0.0", "Ok: reset")
    NOOP = _r(250, "2.0.0", "Ok")
    HELP = Reply(214, "2.0.0", "mailwing ESMTP: commands:",
                 ("HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY",
                  "STARTTLS AUTH; see RFC 5321"))
    VRFY = _r(252, "2.5.2", "cannot VRFY user, but will accept message and attempt delivery")
    EXPN = _r(502, "5.5.1", "EXPN is not supported")

    # -- syntax and sequence --------------------------------------------------------------
    UNKNOWN = _r(500, "5.5.2", "command not recognized")
    LINE_TOO_LONG = _r(500, "5.5.2", "line too long")
    BAD_BYTES = _r(500, "5.5.2", "command contains NUL, control or invalid characters")
    EMPTY = _r(500, "5.5.2", "empty command")
    SYNTAX = _r(501, "5.5.4", "syntax error in parameters or arguments")
    NO_ARGS_WANTED = _r(501, "5.5.4", "this command takes no arguments")
    HELO_ARGS = _r(501, "5.5.4", "usage: HELO/EHLO domain")
    MAIL_ARGS = _r(501, "5.5.4", "usage: MAIL FROM:<address> [parameters]")
    RCPT_ARGS = _r(501, "5.5.4", "usage: RCPT TO:<address> [parameters]")
    BDAT_ARGS = _r(501, "5.5.4", "usage: BDAT size [LAST]")
    VRFY_ARGS = _r(501, "5.5.4", "usage: VRFY address")
    BAD_SENDER_SYNTAX = _r(501, "5.1.7", "bad sender address syntax")
    BAD_RCPT_SYNTAX = _r(501, "5.1.3", "bad recipient address syntax")
    BAD_PARAM_VALUE = _r(501, "5.5.4", "invalid parameter value")
    UNKNOWN_PARAM = _r(555, "5.5.4", "unsupported MAIL/RCPT parameter")
    NEED_HELO = _r(503, "5.5.1", "send HELO or EHLO first")
    NEED_MAIL = _r(503, "5.5.1", "need MAIL command first")
    NEED_RCPT = _r(503, "5.5.1", "need RCPT command first")
    NESTED_MAIL = _r(503, "5.5.1", "sender already given; RSET first")
    BDAT_IN_PROGRESS = _r(503, "5.5.1", "BDAT transfer in progress: only BDAT, RSET or QUIT")
    DATA_AFTER_BDAT = _r(503, "5.5.1", "DATA cannot follow BDAT in one transaction")
    BINARYMIME_NEEDS_BDAT = _r(503, "5.5.1", "BODY=BINARYMIME requires BDAT, not DATA")

    @staticmethod
    def bad_sequence(command: str) -> Reply:
        return _r(503, "5.5.1", f"bad sequence of commands: {command} not allowed now")

    # -- MAIL / RCPT ----------------------------------------------------------------------
    SENDER_OK = _r(250, "2.1.0", "Ok: sender")
    RCPT_OK = _r(250, "2.1.5", "Ok: recipient")
    UTF8_NEEDS_SMTPUTF8 = _r(553, "5.6.7", "UTF-8 address requires the SMTPUTF8 parameter")
    SIZE_DECLARED_TOO_BIG = _r(552, "5.3.4", "message size exceeds fixed maximum message size")
    TOO_MANY_RECIPIENTS = _r(452, "4.5.3", "too many recipients")
    UNKNOWN_USER = _r(550, "5.1.1", "mailbox unavailable: no such user here")
    MAILBOX_FULL = _r(552, "5.2.2", "mailbox full")
    RELAY_DENIED = _r(554, "5.7.1", "relay access denied")
    OUTBOUND_UNAVAILABLE = _r(
        550, "5.7.1",
        "outbound delivery is not available on this server yet; only local recipients",
    )
    SENDER_NOT_OWNED = _r(553, "5.7.1", "sender address not owned by the authenticated user")
    FROM_NOT_OWNED = _r(553, "5.7.1", "From: header address not owned by the authenticated user")
    NULL_SENDER_REFUSED = _r(553, "5.7.1", "null sender not allowed on submission")
    LOOKUP_TEMPFAIL = _r(451, "4.3.0", "temporary lookup failure, try again later")

    # -- DATA / BDAT ----------------------------------------------------------------------
    START_DATA = _r(354, None, "End data with <CR><LF>.<CR><LF>")

    @staticmethod
    def queued(queue_id: str) -> Reply:
        return _r(250, "2.0.0", f"Ok: queued as {queue_id}")

    @staticmethod
    def chunk_ok(octets: int) -> Reply:
        return _r(250, "2.0.0", f"Ok: {octets} octets received")

    MESSAGE_TOO_BIG = _r(552, "5.3.4", "message size exceeds fixed maximum message size")
    BARE_LINE_ENDING = _r(550, "5.6.0", "message contains bare CR or bare LF; use CRLF")
    NUL_IN_MESSAGE = _r(550, "5.6.0", "message contains NUL characters")
    TEXT_LINE_TOO_LONG = _r(550, "5.6.0", "message contains a line longer than 1000 octets")
    STORAGE_TEMPFAIL = _r(451, "4.3.0", "local error in processing, try again later")
    QUOTA_AT_END = _r(552, "5.2.2", "mailbox full: message does not fit the recipient's quota")

    # -- STARTTLS (RFC 3207 section 4) ------------------------------------------------------
    TLS_GO = _r(220, "2.0.0", "ready to start TLS")
    TLS_ACTIVE = _r(503, "5.5.1", "TLS already active")
    TLS_UNAVAILABLE = _r(454, "4.7.0", "TLS not available")
    TLS_REQUIRED = _r(530, "5.7.0", "must issue a STARTTLS command first")

    # -- AUTH (RFC 4954) --------------------------------------------------------------------
    AUTH_OK = _r(235, "2.7.0", "authentication successful")
    AUTH_FAILED = _r(535, "5.7.8", "authentication credentials invalid")
    AUTH_CANCELLED = _r(501, "5.0.0", "authentication cancelled")
    AUTH_MALFORMED = _r(501, "5.5.2", "cannot decode SASL response")
    AUTH_REQUIRED = _r(530, "5.7.0", "Authentication required")
    ENCRYPTION_REQUIRED = _r(538, "5.7.11", "Encryption required for requested authentication "
                                           "mechanism")
    AUTH_UNSUPPORTED = _r(504, "5.5.4", "unrecognized authentication mechanism")
    AUTH_ALREADY = _r(503, "5.5.1", "already authenticated")
    AUTH_IN_TRANSACTION = _r(503, "5.5.1", "AUTH not allowed during a mail transaction")
    AUTH_LINE_TOO_LONG = _r(500, "5.5.6", "authentication exchange line is too long")
    AUTH_TEMPFAIL = _r(454, "4.7.0", "temporary authentication failure, try again later")
    AUTH_THROTTLED = _r(454, "4.7.0", "too many failed logins, try again later")
    AUTHZ_REFUSED = _r(535, "5.7.8", "not authorized to act as another user")

    @staticmethod
    def challenge(data: str) -> Reply:
        return _r(334, None, data)


#: the last words of an SMTP or LMTP session that ends without QUIT (the server's
#: ``Connection.serve``): shutting down, idle too long, failed
ENDINGS: dict[str, bytes] = {
    "shutdown": R.SHUTDOWN.encode(),
    "idle": R.IDLE_TIMEOUT.encode(),
    "internal": R.INTERNAL.encode(),
}
