"""The sans-IO POP3 server core (RFC 1939, with RFC 2449 CAPA, RFC 5034 AUTH, RFC 2595 STLS).

Why sans-IO: bytes go in with :meth:`Pop3Core.receive_data`, events come out of
:meth:`Pop3Core.next_event` (see ``events``), results come back through the ``*_done`` /
``*_failed`` / ``auth_*`` methods. Everything that needs no I/O is answered here: message
numbering, deleted marks, STAT/LIST/UIDL/DELE/RSET/NOOP, CAPA, the error counter, the state
gate (``states.ALLOWED``). Unit tests drive it with plain bytes in microseconds.

Decisions worth knowing:

- **Snapshot, not lock.** The maildrop given to :meth:`auth_succeeded` is fixed for the
  session (RFC 1939 section 8 asks that numbers stay fixed). Two sessions on one maildrop each
  work on their own snapshot; at QUIT only the marked UIDs are expunged, and storage removes
  only those that still exist. So no ``[IN-USE]`` (RFC 2449 section 8.1.1) is ever needed;
  the cost is that a message removed by the other session may fail RETR with ``-ERR``.
- **Pipelining** (RFC 2449 section 6.6): all complete buffered lines are answered in order;
  after a request event no further line is parsed until its result arrives.
- **Errors**: every ``-ERR`` the client caused counts; the ``max_errors``-th one carries a
  "closing connection" suffix and is followed by :class:`~events.Close`. Server-side
  temporary failures (``[SYS/TEMP]``) do not count.
- **Plaintext** (RFC 2595 section 4 spirit): without TLS and with ``plaintext_allowed`` off,
  USER/PASS and AUTH PLAIN are refused with a reply naming STLS, and CAPA does not advertise
  USER or SASL PLAIN until TLS is active.
- **STLS**: offered only in AUTHORIZATION, only while TLS is inactive and available; bytes
  pipelined after STLS are discarded (RFC 2595 section 3.1, command injection).
- **Lines**: 255 octets including CRLF for commands (RFC 2449 section 4); 2048 for an AUTH
  continuation line (a PLAIN response holds up to three 255-octet fields, base64-expanded).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from mailwing.proto.common.lines import LINE_TOO_LONG, LineReader
from mailwing.proto.common.sasl import (
    MECHANISMS,
    SaslCancelled,
    SaslError,
    decode_response,
    parse_plain,
)
from mailwing.proto.pop3 import commands as c
from mailwing.proto.pop3.events import (
    CLOSE,
    NEED_DATA,
    AuthFailure,
    AuthRequest,
    CommandReceived,
    Event,
    MaildropItem,
    RetrieveRequest,
    SendReply,
    StartTlsRequest,
    UpdateRequest,
)
from mailwing.proto.pop3.replies import Pop3Error, R, Reply, multiline
from mailwing.proto.pop3.states import ALLOWED, State

__all__ = ["COMMAND_LIMIT", "SASL_LINE_LIMIT", "Pop3Core", "Pop3UsageError"]

COMMAND_LIMIT = 255  # RFC 2449 section 4, including CRLF
SASL_LINE_LIMIT = 2048
MAX_ERRORS = 10

_AUTH_FAILURE_REPLY: dict[AuthFailure, tuple[Reply, bool]] = {
    # failure -> (reply, counts as a client error)
    AuthFailure.BAD_CREDENTIALS: (R.LOGIN_FAILED, True),
    AuthFailure.THROTTLED: (R.LOGIN_THROTTLED, True),
    AuthFailure.DISABLED: (R.LOGIN_DISABLED, True),
    AuthFailure.TEMPFAIL: (R.LOGIN_TEMPFAIL, False),
    AuthFailure.MAILDROP_TEMPFAIL: (R.MAILDROP_TEMPFAIL, False),
}


class Pop3UsageError(RuntimeError):
    """The driver misused the core (a result call that nothing asked for, or a new event
    requested while a result is still owed): a bug in our code, never the client's."""


class Pop3Core:
    """One POP3 server session's protocol state."""

    def __init__(
        self,
        hostname: str,
        *,
        tls_active: bool = False,
        tls_available: bool = True,
        plaintext_allowed: bool = True,
        max_errors: int = MAX_ERRORS,
    ) -> None:
        self.state = State.AUTHORIZATION
        self.tls_active = tls_active
        self.tls_available = tls_available
        self.plaintext_allowed = plaintext_allowed
        self.max_errors = max_errors
        self.errors = 0
        self.closed = False
        self._lines = LineReader(COMMAND_LIMIT)
        self._events: deque[Event] = deque([SendReply(R.greeting(hostname).encode())])
        self._awaiting: type | None = None  # the request event whose result we wait for
        self._pending_user: str | None = None  # USER given, PASS expected next
        self._sasl_pending = False  # "AUTH PLAIN" sent without initial response
        self._maildrop: tuple[MaildropItem, ...] = ()
        self._deleted: set[int] = set()  # message numbers marked by DELE
        # Each handler takes its own command class; the key guarantees that the argument is
        # of that class, which the value type cannot say, hence ``Any``.
        self._handlers: dict[type[c.Command], Callable[[Any], None]] = {
            c.User: self._user, c.Pass: self._pass, c.Auth: self._auth, c.Apop: self._apop,
            c.Stls: self._stls, c.Capa: self._capa, c.Quit: self._quit, c.Stat: self._stat,
            c.List: self._list, c.Retr: self._retr, c.Top: self._top, c.Uidl: self._uidl,
            c.Dele: self._dele, c.Noop: self._noop, c.Rset: self._rset,
        }

    # -- driver interface -----------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if not self.closed:
            self._lines.feed(data)

    def next_event(self) -> Event:
        """The next thing to do. Raises :class:`Pop3UsageError` if a result is owed."""
        while True:
            if self._events:
                return self._events.popleft()
            if self.closed:
                return CLOSE
            if self._awaiting is not None:
                raise Pop3UsageError(f"waiting for the result of {self._awaiting.__name__}")
            limit = SASL_LINE_LIMIT if self._sasl_pending else COMMAND_LIMIT
            line = self._lines.next_line(limit)
            if line is None:
                return NEED_DATA
            if self._sasl_pending:
                self._sasl_pending = False
                if line is LINE_TOO_LONG:
                    self._error(R.AUTH_LINE_TOO_LONG)
                else:
                    assert isinstance(line, bytes)
                    self._sasl_response(line, initial=False)
            elif line is LINE_TOO_LONG:
                self._error(R.LINE_TOO_LONG)
            else:
                assert isinstance(line, bytes)
                self._command_line(line)

    def auth_succeeded(self, maildrop: Sequence[MaildropItem]) -> None:
        self._result_for(AuthRequest)
        self.state = State.TRANSACTION
        self._maildrop = tuple(maildrop)
        self._deleted.clear()
        self._send(R.logged_in(*self._totals()))

    def auth_failed(self, failure: AuthFailure) -> None:
        self._result_for(AuthRequest)
        reply, counts = _AUTH_FAILURE_REPLY[failure]
        if counts:
            self._error(reply)
        else:
            self._send(reply)

    def tls_started(self) -> None:
        self._result_for(StartTlsRequest)
        self.tls_active = True

    def retrieve_done(self) -> None:
        self._result_for(RetrieveRequest)

    def retrieve_failed(self, *, gone: bool) -> None:
        """Nothing was sent yet: answer ``-ERR`` (``gone``: the content no longer exists)."""
        self._result_for(RetrieveRequest)
        self._send(R.MESSAGE_GONE if gone else R.RETRIEVE_TEMPFAIL)

    def update_done(self, removed: int) -> None:
        self._result_for(UpdateRequest)
        self._send(R.bye_deleted(removed))
        self._close()

    def update_failed(self) -> None:
        self._result_for(UpdateRequest)
        self._send(R.UPDATE_FAILED)
        self._close()

    # -- views for the driver and tests ---------------------------------------------------
    @property
    def maildrop(self) -> tuple[MaildropItem, ...]:
        return self._maildrop

    @property
    def deleted(self) -> frozenset[int]:
        return frozenset(self._deleted)

    # -- plumbing -------------------------------------------------------------------------
    def _send(self, reply: Reply | bytes) -> None:
        data = reply if isinstance(reply, bytes) else reply.encode()
        self._events.append(SendReply(data))

    def _error(self, reply: Reply) -> None:
        self.errors += 1
        if self.errors >= self.max_errors:
            self._send(reply.with_suffix(R.TOO_MANY_ERRORS))
            self._close()
        else:
            self._send(reply)

    def _close(self) -> None:
        self.closed = True
        self._lines.clear()
        self._events.append(CLOSE)

    def _request(self, event: AuthRequest | StartTlsRequest | RetrieveRequest | UpdateRequest
                 ) -> None:
        self._events.append(event)
        self._awaiting = type(event)

    def _result_for(self, kind: type) -> None:
        if self._awaiting is not kind:
            raise Pop3UsageError(f"no {kind.__name__} is waiting for a result")
        self._awaiting = None

    def _command_line(self, line: bytes) -> None:
        try:
            command = c.parse_command(line)
        except Pop3Error as exc:
            self._pending_user = None
            self._error(exc.reply)
            return
        self._events.append(CommandReceived(command.name))
        if not isinstance(command, c.Pass):
            self._pending_user = None  # RFC 1939 section 7: PASS must follow USER directly
        if type(command) not in ALLOWED[self.state]:
            self._error(R.not_allowed(command.name, self.state.value))
            return
        try:
            self._handlers[type(command)](command)
        except Pop3Error as exc:
            self._error(exc.reply)

    def _login_allowed(self) -> bool:
        return self.tls_active or self.plaintext_allowed

    def _totals(self) -> tuple[int, int]:
        live = [m for i, m in enumerate(self._maildrop, 1) if i not in self._deleted]
        return len(live), sum(m.octets for m in live)

    def _message(self, number: int) -> MaildropItem:
        if not 1 <= number <= len(self._maildrop):
            raise Pop3Error(R.no_such_message(number))
        if number in self._deleted:
            raise Pop3Error(R.already_deleted(number))
        return self._maildrop[number - 1]

    # -- AUTHORIZATION --------------------------------------------------------------------
    def _user(self, cmd: c.User) -> None:
        if not self._login_allowed():
            raise Pop3Error(R.PLAINTEXT_REFUSED)
        self._pending_user = cmd.username
        self._send(R.USER_OK)

    def _pass(self, cmd: c.Pass) -> None:
        user, self._pending_user = self._pending_user, None
        if not self._login_allowed():
            raise Pop3Error(R.PLAINTEXT_REFUSED)
        if user is None:
            raise Pop3Error(R.PASS_NEEDS_USER)
        self._request(AuthRequest(user, cmd.password, "USER"))

    def _apop(self, cmd: c.Apop) -> None:
        raise Pop3Error(R.APOP)

    def _auth(self, cmd: c.Auth) -> None:
        if cmd.mechanism is None:
            # the pre-RFC 5034 listing form that some clients still send before CAPA
            offered = MECHANISMS if self._login_allowed() else ()
            self._send(multiline(R.AUTH_LIST, offered))
            return
        if cmd.mechanism not in MECHANISMS:
            raise Pop3Error(R.AUTH_UNSUPPORTED)
        if not self._login_allowed():
            raise Pop3Error(R.PLAINTEXT_REFUSED)
        if cmd.initial_response is None:
            self._sasl_pending = True
            self._send(R.AUTH_CONTINUE)  # RFC 5034 section 4: "+ " and an empty challenge
            return
        self._sasl_response(cmd.initial_response.encode("ascii"), initial=True)

    def _sasl_response(self, line: bytes, *, initial: bool) -> None:
        try:
            creds = parse_plain(decode_response(line, initial=initial))
        except SaslCancelled:
            self._error(R.AUTH_CANCELLED)
            return
        except SaslError:
            self._error(R.AUTH_MALFORMED)
            return
        if creds.authzid and creds.authzid != creds.authcid:
            self._error(R.AUTHZ_REFUSED)
            return
        self._request(AuthRequest(creds.authcid, creds.password, "PLAIN"))

    def _stls(self, cmd: c.Stls) -> None:
        if self.tls_active:
            raise Pop3Error(R.STLS_ACTIVE)
        if not self.tls_available:
            raise Pop3Error(R.STLS_UNAVAILABLE)
        self._lines.clear()  # never act on plaintext pipelined behind STLS
        self._send(R.STLS_GO)
        self._request(StartTlsRequest())

    def _capa(self, cmd: c.Capa) -> None:
        caps = ["TOP"]
        login = self.state is State.AUTHORIZATION and self._login_allowed()
        if login:
            caps.append("USER")
        caps += ["UIDL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE"]
        if login:
            caps.append("SASL " + " ".join(MECHANISMS))
        if self.state is State.AUTHORIZATION and not self.tls_active and self.tls_available:
            caps.append("STLS")
        caps.append("IMPLEMENTATION mailwing")
        self._send(multiline(R.CAPA, caps))

    def _quit(self, cmd: c.Quit) -> None:
        if self.state is State.TRANSACTION:
            self.state = State.UPDATE
            if self._deleted:
                uids = tuple(sorted(self._maildrop[n - 1].uid for n in self._deleted))
                self._request(UpdateRequest(uids))
                return
        self._send(R.BYE)
        self._close()

    # -- TRANSACTION ----------------------------------------------------------------------
    def _stat(self, cmd: c.Stat) -> None:
        self._send(R.stat(*self._totals()))

    def _scan(self, number: int | None, value: Callable[[MaildropItem], int | str],
              first: Reply) -> None:
        if number is not None:
            self._send(R.scan_line(number, value(self._message(number))))
            return
        lines = [f"{n} {value(m)}" for n, m in enumerate(self._maildrop, 1)
                 if n not in self._deleted]
        self._send(multiline(first, lines))

    def _list(self, cmd: c.List) -> None:
        self._scan(cmd.number, lambda m: m.octets, R.list_all(*self._totals()))

    def _uidl(self, cmd: c.Uidl) -> None:
        self._scan(cmd.number, lambda m: m.uidl, R.UIDL_ALL)

    def _retr(self, cmd: c.Retr) -> None:
        item = self._message(cmd.number)
        self._request(RetrieveRequest(cmd.number, item, R.retr(item.octets).encode()))

    def _top(self, cmd: c.Top) -> None:
        item = self._message(cmd.number)
        self._request(RetrieveRequest(cmd.number, item, R.TOP.encode(), cmd.lines))

    def _dele(self, cmd: c.Dele) -> None:
        self._message(cmd.number)
        self._deleted.add(cmd.number)
        self._send(R.deleted(cmd.number))

    def _noop(self, cmd: c.Noop) -> None:
        self._send(R.NOOP)

    def _rset(self, cmd: c.Rset) -> None:
        self._deleted.clear()
        self._send(R.rset(*self._totals()))
