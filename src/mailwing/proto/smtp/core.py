"""The sans-IO SMTP server core (RFC 5321, with RFC 1870 SIZE, RFC 2920 PIPELINING, RFC 2034
ENHANCEDSTATUSCODES, RFC 3030 CHUNKING/BINARYMIME, RFC 3207 STARTTLS, RFC 4954 AUTH,
RFC 6152 8BITMIME, RFC 6531 SMTPUTF8).

Bytes go in with :meth:`SmtpCore.receive_data`; :meth:`SmtpCore.next_event` yields
``events``; the driver answers requests with the result methods. The core decides everything
that needs no lookup: the command sequence (``states.ALLOWED``), EHLO keywords, SIZE, the
recipient count, SMTPUTF8 gating, AUTH framing (``auth``), the body reader (``body``), the
error counters. Sender/recipient decisions and the commit are the driver's (services.policy,
services.inbound), so this module never knows about users or storage.

Decisions worth knowing:

- **Pipelining** (RFC 2920 section 3): every buffered command line is answered in order; the
  driver writes replies when the core asks for data, so a group gets one write.
- **Roles**: ``auth_required`` (the submission listeners) refuses MAIL before AUTH with
  ``530 5.7.0``. AUTH is offered on any listener where a login is allowed (after TLS unless
  plaintext is allowed, RFC 4954 section 4 / RFC 3207 section 4.1).
- **Counters**: every ``_error`` (syntax, sequence, refused AUTH framing) counts towards
  ``max_errors`` in a row; any positive reply resets it. Failed logins count towards
  ``max_auth_failures`` per session. The limit-reaching reply is ``421 4.7.0`` and the
  connection closes (one reply per command, RFC 5321 section 4.2).
- **STARTTLS** (RFC 3207 section 4.2): bytes after the command are discarded and the
  session returns to CONNECTED: the client must EHLO again.
- **BDAT** (RFC 3030 section 2): the chunk's octets are always read, even when the command
  is refused, so the stream stays in step; a failed chunk ends the transaction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from mailwing.proto.common.lines import LINE_TOO_LONG
from mailwing.proto.smtp import commands as c
from mailwing.proto.smtp.auth import FAILURE_REPLY, SASL_LINE_LIMIT, SaslExchange
from mailwing.proto.smtp.body import DataReader, InputBuffer
from mailwing.proto.smtp.events import (
    CLOSE,
    NEED_DATA,
    AuthFailure,
    AuthRequest,
    BodyChunk,
    CommandReceived,
    Event,
    MailRequest,
    MessageAbort,
    MessageComplete,
    MessageStart,
    RcptRequest,
    SendReply,
    StartTlsRequest,
)
from mailwing.proto.smtp.replies import R, Reply, SmtpError
from mailwing.proto.smtp.states import ALLOWED, State, refusal

__all__ = ["COMMAND_LIMIT", "SmtpCore", "SmtpUsageError"]

COMMAND_LIMIT = 1000  # octets incl. CRLF; RFC 5321 4.5.3.1.4 allows extensions to raise 512

class SmtpUsageError(RuntimeError):
    """The driver misused the core (a result nobody asked for): our bug, not the client's."""


class SmtpCore:
    """One SMTP server session's protocol state.

    LMTP (:class:`mailwing.proto.lmtp.LmtpCore`) is this dialogue with another greeting
    verb and one reply per recipient after the body: it replaces the command table and
    parser (``allowed``, :meth:`parse`, :meth:`refusal`), the greeting and the handlers,
    and :meth:`_body_refused` / the message results, nothing else."""

    #: The command sequence, by state (``states.ALLOWED`` for SMTP).
    allowed: ClassVar[Mapping[State, frozenset[type[c.Command]]]] = ALLOWED

    def __init__(
        self, hostname: str, *, auth_required: bool = False, tls_active: bool = False,
        tls_available: bool = True, plaintext_allowed: bool = True,
        max_message_size: int = 52_428_800, max_recipients: int = 100, max_errors: int = 10,
        max_auth_failures: int = 3,
    ) -> None:
        self.hostname = hostname
        self.auth_required = auth_required
        self.tls_active = tls_active
        self.tls_available = tls_available
        self.plaintext_allowed = plaintext_allowed
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        self.max_errors = max_errors
        self.max_auth_failures = max_auth_failures
        self.state = State.CONNECTED
        self.user: str | None = None  # the authenticated address
        self.esmtp = False  # EHLO (not HELO) was used: for the Received "with" clause
        self.client_name = ""
        self.errors = 0
        self.auth_failures = 0
        self.closed = False
        self._input = InputBuffer()
        self._events: deque[Event] = deque([SendReply(self.greeting().encode())])
        self._awaiting: type | None = None
        self._sasl: SaslExchange | None = None
        self._reader: DataReader | None = None  # DATA body in progress
        self._bdat_left = 0  # octets of the current BDAT chunk still to read
        self._bdat: c.Bdat | None = None
        self._bdat_refusal: Reply | None = None  # chunk being discarded, then this reply
        self._body_open = False  # MessageStart sent, no MessageComplete/MessageAbort yet
        self._txn_mail: c.Mail | None = None
        self._recipients: list[object] = []
        self._body_size = 0
        self._handlers: dict[type[c.Command], Callable[[Any], None]] = {
            c.Helo: self._helo, c.Ehlo: self._ehlo, c.Mail: self._mail, c.Rcpt: self._rcpt,
            c.Data: self._data, c.Bdat: self._bdat_cmd, c.Rset: self._rset,
            c.Noop: lambda cmd: self._ok(R.NOOP), c.Help: lambda cmd: self._ok(R.HELP),
            c.Vrfy: lambda cmd: self._ok(R.VRFY), c.Expn: lambda cmd: self._send(R.EXPN),
            c.Quit: self._quit, c.StartTls: self._starttls, c.Auth: self._auth,
        }

    # -- the dialect (overridden by LMTP) ---------------------------------------------------
    def greeting(self) -> Reply:
        return R.greeting(self.hostname)

    @staticmethod
    def parse(line: bytes) -> c.Command:
        return c.parse_command(line)

    @staticmethod
    def refusal(state: State, command: type[c.Command], name: str) -> Reply:
        return refusal(state, command, name)

    # -- driver interface -----------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if not self.closed:
            self._input.feed(data)

    def next_event(self) -> Event:
        while True:
            if self._events:
                return self._events.popleft()
            if self.closed:
                return CLOSE
            if self._awaiting is not None:
                raise SmtpUsageError(f"waiting for the result of {self._awaiting.__name__}")
            if self._reader is not None:
                if not self._pump_data():
                    return NEED_DATA
            elif self._bdat is not None:
                if not self._pump_bdat():
                    return NEED_DATA
            elif not self._next_line():
                return NEED_DATA

    @property
    def login_allowed(self) -> bool:
        return self.tls_active or self.plaintext_allowed

    def auth_succeeded(self, address: str) -> None:
        self._result_for(AuthRequest)
        self.user = address
        self._ok(R.AUTH_OK)

    def auth_failed(self, failure: AuthFailure) -> None:
        self._result_for(AuthRequest)
        reply, counts = FAILURE_REPLY[failure]
        if not counts:
            self._send(reply)
            return
        self.auth_failures += 1
        if self.auth_failures >= self.max_auth_failures:
            self._send(R.TOO_MANY_AUTH_FAILURES)
            self._close()
        else:
            self._send(reply)

    def tls_started(self) -> None:
        self._result_for(StartTlsRequest)
        self.tls_active = True
        self.state = State.CONNECTED  # RFC 3207 4.2: forget EHLO and everything learnt
        self.esmtp = False
        self._reset_transaction()

    def mail_accepted(self) -> None:
        self._result_for(MailRequest)
        self.state = State.MAIL
        self._ok(R.SENDER_OK)

    def mail_rejected(self, reply: Reply) -> None:
        self._result_for(MailRequest)
        self._reset_transaction()
        self._send(reply)

    def rcpt_accepted(self, target: object) -> None:
        self._result_for(RcptRequest)
        self._recipients.append(target)
        self.state = State.RCPT
        self._ok(R.RCPT_OK)

    def rcpt_rejected(self, reply: Reply) -> None:
        self._result_for(RcptRequest)
        self._send(reply)

    def message_accepted(self, queue_id: str) -> None:
        self._result_for(MessageComplete)
        self._end_transaction()
        self._ok(R.queued(queue_id))

    def message_failed(self, reply: Reply) -> None:
        self._result_for(MessageComplete)
        self._end_transaction()
        self._send(reply)

    # -- views ------------------------------------------------------------------------------
    @property
    def sender(self) -> c.Address | None:
        return self._txn_mail.sender if self._txn_mail else None

    @property
    def mail(self) -> c.Mail | None:
        return self._txn_mail

    @property
    def recipients(self) -> tuple[object, ...]:
        return tuple(self._recipients)

    # -- plumbing ---------------------------------------------------------------------------
    def _send(self, reply: Reply) -> None:
        self._events.append(SendReply(reply.encode()))

    def _ok(self, reply: Reply) -> None:
        self.errors = 0
        self._send(reply)

    def _error(self, reply: Reply) -> None:
        self.errors += 1
        if self.errors >= self.max_errors:
            self._send(R.TOO_MANY_ERRORS)
            self._close()
        else:
            self._send(reply)

    def _close(self) -> None:
        if self._body_open:
            self._events.append(MessageAbort())
            self._body_open = False
        self.closed = True
        self._input.clear()
        self._events.append(CLOSE)

    def _request(self, event: Event) -> None:
        self._events.append(event)
        self._awaiting = type(event)

    def _result_for(self, kind: type) -> None:
        if self._awaiting is None or not issubclass(self._awaiting, kind):
            raise SmtpUsageError(f"no {kind.__name__} is waiting for a result")
        self._awaiting = None

    def _reset_transaction(self) -> None:
        """RFC 5321 4.1.1.5: forget sender, recipients and body (RSET, EHLO, failures)."""
        if self._body_open:
            self._events.append(MessageAbort())
        self._body_open = False
        self._txn_mail = None
        self._recipients = []
        self._body_size = 0
        if self.state in (State.MAIL, State.RCPT, State.BDAT):
            self.state = State.READY

    def _end_transaction(self) -> None:
        self._body_open = False
        self._reset_transaction()

    def _body_refused(self, reply: Reply, *, final: bool) -> None:
        """The body cannot be taken (size, line endings): forget the transaction and answer
        (``final``: the body's end, where LMTP answers once per recipient)."""
        self._reset_transaction()
        self._send(reply)

    def _start_body(self, *, bdat: bool) -> None:
        if not self._body_open:
            self._body_open = True
            self._events.append(MessageStart(bdat=bdat))

    def _complete(self) -> None:
        assert self._txn_mail is not None
        self._request(MessageComplete(self._txn_mail.sender, tuple(self._recipients),
                                      self._body_size))

    # -- command lines ----------------------------------------------------------------------
    def _next_line(self) -> bool:
        limit = SASL_LINE_LIMIT if self._sasl is not None else COMMAND_LIMIT
        line = self._input.next_line(limit)
        if line is None:
            return False
        if self._sasl is not None:
            sasl, self._sasl = self._sasl, None
            if line is LINE_TOO_LONG:
                self._error(R.AUTH_LINE_TOO_LONG)
            else:
                assert isinstance(line, bytes)
                self._sasl_step(sasl, line)
            return True
        if line is LINE_TOO_LONG:
            self._error(R.LINE_TOO_LONG)
            return True
        assert isinstance(line, bytes)
        try:
            command = self.parse(line)
        except SmtpError as exc:
            self._error(exc.reply)
            return True
        self._events.append(CommandReceived(command.name))
        if type(command) not in self.allowed[self.state]:
            if isinstance(command, c.Bdat):  # read and drop its octets first (RFC 3030)
                self._bdat, self._bdat_left = command, command.size
                self._bdat_refusal = self.refusal(self.state, c.Bdat, "BDAT")
                return True
            self._error(self.refusal(self.state, type(command), command.name))
            return True
        try:
            self._handlers[type(command)](command)
        except SmtpError as exc:
            self._error(exc.reply)
        return True

    # -- greeting and general ---------------------------------------------------------------
    def _helo(self, cmd: c.Helo) -> None:
        self._reset_transaction()
        self.state, self.esmtp, self.client_name = State.READY, False, cmd.domain
        self._ok(R.helo(self.hostname, cmd.domain))

    def _ehlo(self, cmd: c.Ehlo) -> None:
        self._reset_transaction()
        self.state, self.esmtp, self.client_name = State.READY, True, cmd.domain
        keywords = ["PIPELINING", f"SIZE {self.max_message_size}", "8BITMIME", "SMTPUTF8",
                    "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME"]
        if not self.tls_active and self.tls_available:
            keywords.append("STARTTLS")
        if self.login_allowed and self.user is None:
            keywords.append("AUTH PLAIN LOGIN")
        self._ok(R.ehlo(self.hostname, cmd.domain, keywords))

    def _rset(self, cmd: c.Rset) -> None:
        self._reset_transaction()
        self._ok(R.RESET)

    def _quit(self, cmd: c.Quit) -> None:
        self._send(R.bye(self.hostname))
        self._close()

    # -- MAIL / RCPT --------------------------------------------------------------------------
    def _mail(self, cmd: c.Mail) -> None:
        if self.auth_required and self.user is None:
            raise SmtpError(R.AUTH_REQUIRED)
        if not cmd.sender.is_ascii and not cmd.smtputf8:
            raise SmtpError(R.UTF8_NEEDS_SMTPUTF8)
        if cmd.size is not None and cmd.size > self.max_message_size:
            self._send(R.SIZE_DECLARED_TOO_BIG)  # a refusal, not a client error
            return
        self._txn_mail = cmd
        self._request(MailRequest(cmd, self.user))

    def _rcpt(self, cmd: c.Rcpt) -> None:
        assert self._txn_mail is not None
        if not cmd.recipient.is_ascii and not self._txn_mail.smtputf8:
            raise SmtpError(R.UTF8_NEEDS_SMTPUTF8)
        if len(self._recipients) >= self.max_recipients:
            self._send(R.TOO_MANY_RECIPIENTS)
            return
        self._request(RcptRequest(cmd.recipient, self.user, cmd.mailbox))

    # -- DATA ---------------------------------------------------------------------------------
    def _data(self, cmd: c.Data) -> None:
        assert self._txn_mail is not None
        if self._txn_mail.body == "BINARYMIME":
            raise SmtpError(R.BINARYMIME_NEEDS_BDAT)
        self._ok(R.START_DATA)
        self._start_body(bdat=False)
        self._reader = DataReader(self.max_message_size)

    def _pump_data(self) -> bool:
        reader = self._reader
        assert reader is not None
        data = self._input.peek()
        if not data:
            return False
        out, consumed = reader.feed(data)
        self._input.skip(consumed)
        if out:
            self._events.append(BodyChunk(out))
        if reader.done:
            self._reader = None
            self._body_size = reader.size
            if reader.problem is not None:
                self._body_refused(reader.problem, final=True)
            else:
                self._complete()
        return True

    # -- BDAT ---------------------------------------------------------------------------------
    def _bdat_cmd(self, cmd: c.Bdat) -> None:
        self._start_body(bdat=True)
        self._bdat, self._bdat_left, self._bdat_refusal = cmd, cmd.size, None
        self.state = State.BDAT

    def _pump_bdat(self) -> bool:
        cmd = self._bdat
        assert cmd is not None
        if self._bdat_left:
            data = self._input.take(self._bdat_left)
            if not data:
                return False
            self._bdat_left -= len(data)
            if self._bdat_refusal is None:
                self._body_size += len(data)
                if self._body_size <= self.max_message_size:
                    self._events.append(BodyChunk(data))
        if self._bdat_left:
            return True
        self._bdat = None
        if self._bdat_refusal is not None:
            self._error(self._bdat_refusal)
        elif self._body_size > self.max_message_size:
            self._body_refused(R.MESSAGE_TOO_BIG, final=cmd.last)
        elif cmd.last:
            self._complete()
        else:
            self._ok(R.chunk_ok(cmd.size))
        return True

    # -- STARTTLS and AUTH --------------------------------------------------------------------
    def _starttls(self, cmd: c.StartTls) -> None:
        if self.tls_active:
            raise SmtpError(R.TLS_ACTIVE)
        if not self.tls_available:
            self._send(R.TLS_UNAVAILABLE)
            return
        self._input.clear()  # never act on plaintext pipelined behind STARTTLS
        self._ok(R.TLS_GO)
        self._request(StartTlsRequest())

    def _auth(self, cmd: c.Auth) -> None:
        if self.user is not None:
            raise SmtpError(R.AUTH_ALREADY)
        if not self.login_allowed:
            raise SmtpError(R.ENCRYPTION_REQUIRED)
        exchange = SaslExchange.start(cmd.mechanism)
        self._sasl_step(exchange, cmd.initial_response, initial=True)

    def _sasl_step(self, exchange: SaslExchange, line: bytes | str | None,
                   *, initial: bool = False) -> None:
        try:
            result = exchange.step(line, initial=initial)
        except SmtpError as exc:
            self._error(exc.reply)
            return
        if isinstance(result, Reply):  # a 334 challenge: the next line is the response
            self._send(result)
            self._sasl = exchange
            return
        self._request(AuthRequest(result.authcid, result.password, exchange.mechanism))
