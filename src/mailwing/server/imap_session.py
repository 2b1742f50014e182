"""The asyncio side of an IMAP session: reads, feeds the sans-IO reader, dispatches, writes.

Why so thin: framing, parsing and literals are :class:`~mailwing.proto.imap.reader.ImapReader`'s
job; which command is allowed in which state (RFC 3501 section 3) is
:func:`~mailwing.proto.imap.states.allowed`; what each command does lives in one handler
module per group (:mod:`mailwing.server.imap`), and the selected mailbox's numbering and
pending updates in :mod:`mailwing.services.imap_selected`. This loop only:

- greets with ``* OK [CAPABILITY ...]`` (RFC 3501 section 7.1.1);
- answers ``+`` continuations for synchronising literals, and protocol errors with their own
  wire form (``BAD``, ``NO [TOOBIG]``);
- refuses a command not allowed in the current state with ``BAD``;
- after each command in the selected state catches up with other sessions and sends the
  untagged updates allowed at that moment (no EXPUNGE after FETCH, STORE or SEARCH, but
  after their UID forms, section 7.4.1), then the tagged completion; the responses are
  written (one write, one ``drain`` check) when no further complete command is buffered,
  before a continuation request, or once :data:`~mailwing.server.connection.FLUSH_AT` octets
  are queued, so the answers to pipelined commands share a write and none is held while the
  client waits for it;
- ends the session with ``* BYE``: after LOGOUT, after ``limits.max_errors`` BAD/NO-for-syntax
  answers in a row, after ``limits.max_auth_failures`` failed logins, on idle timeout
  (autologout, section 5.4), on server shutdown, on an unexpected error (logged), or when
  another session deleted the selected mailbox (instead of the tagged completion, as Dovecot
  does: the session's message numbers mean nothing any more).
"""

from __future__ import annotations

import asyncio
import logging

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap.events import (
    CommandReceived,
    LineReceived,
    NeedData,
    ProtocolError,
    SendContinuation,
)
from mailwing.proto.imap.reader import ImapReader
from mailwing.proto.imap.responses import Code
from mailwing.proto.imap.states import State, allowed
from mailwing.server.connection import Connection
from mailwing.server.imap import HANDLERS
from mailwing.server.imap.auth import capability_list
from mailwing.server.imap.base import Refusal, SessionState, sync_view, unavailable
from mailwing.services.context import AppContext
from mailwing.storage.errors import StorageError
from mailwing.storage.notify import READ_AT

__all__ = ["handle_imap"]

log = logging.getLogger("mailwing.session")

#: commands during which EXPUNGE must not be sent (RFC 3501 section 7.4.1)
_NO_EXPUNGE = (c.Fetch, c.Store, c.Search, c.Sort, c.Thread)
_MAX_LITERAL = 1024 * 1024  # literal data of any command but APPEND
#: the last words of a session that ends without LOGOUT (``Connection.serve``)
_ENDINGS: dict[str, bytes] = {
    "shutdown": responses.bye(texts.BYE_SHUTDOWN),
    "idle": responses.bye(texts.BYE_IDLE_TIMEOUT),
    "internal": responses.bye(texts.BYE_INTERNAL),
}


async def handle_imap(ctx: AppContext, conn: Connection) -> None:
    """Run one IMAP session on an accepted connection (imap and imaps listeners)."""
    reader = ImapReader(max_line=max(ctx.settings.server.max_line_length, 1024),
                        max_literal=_MAX_LITERAL,
                        max_message=ctx.settings.limits.max_message_size)
    await _ImapSession(SessionState(ctx, conn, reader)).run()


class _ImapSession:
    def __init__(self, s: SessionState) -> None:
        self.s = s
        self.reader: ImapReader = s.reader
        self.errors = 0
        s.read_line = self.read_line
        #: loop time of the last read from the client: every command parsed so far was
        #: sent before then
        self.read_at: float | None = None

    @property
    def state(self) -> State:
        if self.s.logout:
            return State.LOGOUT
        if self.s.user is None:
            return State.NOT_AUTHENTICATED
        return State.SELECTED if self.s.view is not None else State.AUTHENTICATED

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        await self.s.conn.serve(self._session, protocol="IMAP", **_ENDINGS)

    async def _session(self) -> None:
        s = self.s
        s.send(responses.ok("*", texts.GREETING, Code.capability(capability_list(s))))
        await self._loop()
        await s.flush()

    async def _loop(self) -> None:
        s, reader = self.s, self.reader
        while not (s.logout or s.closing):
            event = reader.next_event()
            match event:
                case NeedData():
                    await s.flush()
                    reader.receive_data(await self._read())
                case SendContinuation():
                    s.send(event.response())
                    await s.flush()
                case ProtocolError():
                    if event.saves_result and s.view is not None:
                        s.view.saved_uids = frozenset()  # RFC 5182 section 2.1
                    s.send(event.response())
                    self._error(close=event.close)
                case CommandReceived(command=command):
                    await self._dispatch(command)
                case LineReceived():
                    pass  # a stray line after an aborted exchange: nothing to do

    def _error(self, *, close: bool = False) -> None:
        self.errors += 1
        if close or self.errors >= self.s.ctx.settings.limits.max_errors:
            self.s.send(responses.bye(texts.BYE_TOO_MANY_ERRORS))
            self.s.closing = True

    async def _dispatch(self, command: c.Command) -> None:
        s = self.s
        s.conn.command(command.name)
        s.conn.log("command", level=logging.DEBUG, command=command.name)
        state = self.state
        if not allowed(state, command):
            s.send(responses.bad(command.tag,
                                 texts.NOT_ALLOWED_STATE.format(command.name, state.value)))
            self._error()
            return
        s.caught_up = False
        READ_AT.set(self.read_at)  # for the storage's change marks (see READ_AT)
        try:
            done = await HANDLERS[type(command)](s, command)
        except Refusal as refusal:
            done = refusal.done
        except StorageError:
            done = unavailable().done
        if s.view is not None and not s.logout:
            # RFC 3501 7.4.1: EXPUNGE may be sent after UID FETCH/STORE/SEARCH, not after the
            # sequence-number forms
            await sync_view(s, allow_expunge=not (isinstance(command, _NO_EXPUNGE)
                                                  and not command.uid))
        if s.bye is not None:  # the selected mailbox is gone: BYE instead of the completion
            s.send(responses.bye(s.bye))
            await s.flush()
            return
        if not done.sent:
            s.send(responses.tagged(command.tag, done.status, done.text, done.code))
        if s.closing:  # set by a login handler: too many failed attempts
            s.send(responses.bye(texts.BYE_TOO_MANY_AUTH_FAILURES))
        elif done.status == "BAD":
            self._error()
        else:
            self.errors = 0
        # written when the reader needs more input (NeedData in _loop): replies to pipelined
        # commands go out together; a long pipeline is flushed once FLUSH_AT octets are queued
        if s.conn.full:
            await s.flush()

    # -- raw lines (AUTHENTICATE continuations, IDLE's DONE) -----------------------------
    async def read_line(self) -> bytes:
        self.reader.expect_line()
        while True:
            event = self.reader.next_event()
            if isinstance(event, LineReceived):
                return event.line
            if not isinstance(event, NeedData):
                return b""  # an over-long or malformed line: the caller refuses it
            await self.s.flush()
            self.reader.receive_data(await self._read())

    async def _read(self) -> bytes:
        """The next bytes from the client; notes when they were read (see ``_dispatch``)."""
        data = await self.s.conn.read()
        self.read_at = asyncio.get_running_loop().time()
        return data
