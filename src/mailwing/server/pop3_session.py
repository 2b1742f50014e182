"""The asyncio side of a POP3 session: feeds the sans-IO core and does its I/O.

Why so thin: every protocol decision (RFC 1939 states, RFC 2449 CAPA and response codes,
RFC 5034 AUTH, RFC 2595 STLS, numbering, deleted marks, the error limit) lives in
:mod:`mailwing.proto.pop3.core`. This module only answers the core's requests:

- ``AuthRequest``: :meth:`Authenticator.authenticate`, then a snapshot of the user's INBOX
  (``list_mail``), given to the core as the session's fixed maildrop. The snapshot is kept
  per process (:class:`_MaildropCache`) under the INBOX's (id, UIDVALIDITY, HIGHESTMODSEQ)
  read at this login, so a login to an unchanged maildrop reads only the mailbox row, and
  reads it while the password is checked (by the id this login name's INBOX had last time,
  checked against the user before use; by name when there is no guess or it is wrong). The
  UIDL string is ``"<uidvalidity>.<uid>"``: unique per message and stable across sessions
  while the mailbox keeps its UIDVALIDITY (RFC 1939 section 7).
- ``StartTlsRequest``: :meth:`Connection.start_tls` (which discards pipelined plaintext).
- ``RetrieveRequest``: streams the content from ``storage.open_content`` chunk by chunk (1 MiB
  for RETR, 256 KiB for TOP) through
  :class:`~mailwing.proto.pop3.encode.DotStuffer` (and :class:`TopLimiter` for TOP, which stops
  reading storage once the header and the requested body lines are out), one ``conn.write``
  (with ``drain``) per :data:`~mailwing.server.connection.FLUSH_AT` octets, so a large
  message never sits whole in memory; a small one goes out with its status line and its
  terminator in one write (with the replies around it, if pipelined). Small messages are
  read ahead, up to 1 MiB of those that follow with one ``read_contents`` (one
  query on PostgreSQL), since clients retrieve the maildrop in order.
- ``UpdateRequest``: one ``storage.expunge`` transaction (RFC 1939 section 6). If it fails
  nothing is removed and the client gets ``-ERR [SYS/TEMP]``. A connection that ends any other
  way (drop, timeout, shutdown) never reaches UPDATE, so nothing is removed.

Replies are queued on the connection (:meth:`Connection.send`) and written together when
the core needs more input (:meth:`Connection.read` flushes first), before a blocking request
(login, UPDATE) and before the TLS switch: replies to pipelined commands (RFC 2449 section 6)
share one write, and no reply is held while the client waits for it.
Connection-level ends are answered here: idle timeout and server shutdown with
``-ERR [SYS/TEMP]`` (RFC 2449 section 8 / RFC 3206), a dropped connection silently. An
unexpected exception is logged and answered with ``-ERR [SYS/TEMP]`` rather than escaping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from typing import cast

from mailwing.lru import Lru, for_storage
from mailwing.model import ContentInfo, Mailbox, User
from mailwing.proto.pop3.core import Pop3Core
from mailwing.proto.pop3.encode import DotStuffer, TopLimiter
from mailwing.proto.pop3.events import (
    AuthFailure,
    AuthRequest,
    Close,
    CommandReceived,
    MaildropItem,
    NeedData,
    RetrieveRequest,
    SendReply,
    StartTlsRequest,
    UpdateRequest,
)
from mailwing.proto.pop3.replies import R
from mailwing.server.connection import Connection
from mailwing.services.auth import AuthOutcome
from mailwing.services.context import AppContext
from mailwing.storage.errors import NotFound, StorageError
from mailwing.storage.interface import Storage

__all__ = ["CHUNK_SIZE", "RETR_CHUNK_SIZE", "handle_pop3", "uidl_for"]

log = logging.getLogger("mailwing.session")

CHUNK_SIZE = 256 * 1024  # storage read size for TOP (which usually stops in the first)
#: storage read size for RETR: a PostgreSQL piece (1 MiB) whole, so it is neither sliced
#: nor joined on its way to the socket, and a SQLite file in a quarter of the thread hops
RETR_CHUNK_SIZE = 1024 * 1024
#: RETR/TOP read small messages ahead (``_Pop3Session._read_ahead``): octets and messages
AHEAD_BYTES = 1024 * 1024
AHEAD_COUNT = 100

#: the last words of a session that ends without QUIT (``Connection.serve``)
_ENDINGS: dict[str, bytes] = {
    "shutdown": R.SHUTDOWN.encode(),
    "idle": R.IDLE_TIMEOUT.encode(),
    "internal": R.INTERNAL.encode(),
}
_OUTCOMES: dict[AuthOutcome, AuthFailure] = {
    AuthOutcome.BAD_CREDENTIALS: AuthFailure.BAD_CREDENTIALS,
    AuthOutcome.DISABLED: AuthFailure.DISABLED,
    AuthOutcome.THROTTLED: AuthFailure.THROTTLED,
    AuthOutcome.TEMPFAIL: AuthFailure.TEMPFAIL,
}


def uidl_for(uidvalidity: int, uid: int) -> str:
    """The POP3 unique-id of a message (RFC 1939 section 7: 1-70 chars of 0x21-0x7E)."""
    return f"{uidvalidity}.{uid}"


@contextlib.asynccontextmanager
async def _closing(chunks: AsyncIterator[bytes]) -> AsyncIterator[AsyncIterator[bytes]]:
    """Close the storage iterator (and its file or cursor) however the loop ends; a plain
    AsyncIterator without ``aclose`` is accepted too."""
    try:
        yield chunks
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    """A content read ahead, in the slices ``open_content`` would give."""
    for start in range(0, len(data), CHUNK_SIZE):
        yield data[start : start + CHUNK_SIZE]


class _MaildropCache:
    """The maildrops of recent logins, per storage object (process-wide).

    Why: POP3 clients poll, and most logins find the maildrop as it was; rebuilding it from
    one row per message was about an eighth of a POP3 worker's CPU. Why it is safe across
    processes and nodes: every append and expunge raises the mailbox's HIGHESTMODSEQ in its
    transaction (flag changes too), UIDVALIDITY values never repeat within a database, and
    each login reads the mailbox row first: a snapshot is used only when that row still shows
    the (id, UIDVALIDITY, HIGHESTMODSEQ) it was stored under. A snapshot listed after that
    row was read may already include a later change; it is then stored under an older
    HIGHESTMODSEQ than it shows and simply never matches again (modseqs only grow). Bounded
    to :attr:`SIZE` mailboxes (least recently used out) and :attr:`MAX_ITEMS` messages
    each, so a huge maildrop is not kept."""

    SIZE = 256
    MAX_ITEMS = 5000

    def __init__(self) -> None:
        self._by_storage: weakref.WeakKeyDictionary[
            Storage, Lru[int, tuple[tuple[int, int], tuple[MaildropItem, ...]]]
        ] = weakref.WeakKeyDictionary()
        #: login name -> the id of the INBOX found at that user's last login here
        self._inboxes: weakref.WeakKeyDictionary[Storage, Lru[str, int]] = (
            weakref.WeakKeyDictionary())

    def inbox_of(self, storage: Storage, username: str) -> int | None:
        """The INBOX id last seen for ``username`` (as the client typed it): only a guess,
        which :meth:`_Pop3Session._snapshot` checks against the row it reads."""
        lru = self._inboxes.get(storage)
        return lru.get(username) if lru is not None else None

    def remember_inbox(self, storage: Storage, username: str, mailbox_id: int) -> None:
        lru = for_storage(self._inboxes, storage, self.SIZE * 4)
        if lru is not None:
            lru.put(username, mailbox_id)

    def get(self, storage: Storage, mailbox: Mailbox) -> tuple[MaildropItem, ...] | None:
        lru = self._by_storage.get(storage)
        found = lru.get(mailbox.id) if lru is not None else None
        if found is None or found[0] != (mailbox.uidvalidity, mailbox.highestmodseq):
            return None
        return found[1]

    def put(self, storage: Storage, mailbox: Mailbox, items: tuple[MaildropItem, ...]) -> None:
        lru = for_storage(self._by_storage, storage, self.SIZE)
        if lru is None:
            return
        if len(items) > self.MAX_ITEMS:
            lru.pop(mailbox.id)
            return
        lru.put(mailbox.id, ((mailbox.uidvalidity, mailbox.highestmodseq), items))


_maildrops = _MaildropCache()


async def _guessed_inbox(early: asyncio.Future[Mailbox | None] | None) -> Mailbox | None:
    """The mailbox row read during the login, or None (no guess, or it failed: the session
    then reads the INBOX by name, as without a guess)."""
    if early is None:
        return None
    try:
        return await early
    except StorageError:
        return None


def _discard(early: asyncio.Future[Mailbox | None] | None) -> None:
    """Let a guessed read nobody needs (a failed login, an error) end on its own without
    leaving an unretrieved exception behind. Not cancelled: on PostgreSQL a query
    cancelled in flight costs its pooled connection a reset."""
    if early is not None:
        early.add_done_callback(_retrieve)


def _retrieve(done: asyncio.Future[Mailbox | None]) -> None:
    if not done.cancelled():
        done.exception()


class _Abort(Exception):
    """The session cannot continue (storage failed in the middle of a RETR)."""


async def handle_pop3(ctx: AppContext, conn: Connection) -> None:
    """Run one POP3 session on an accepted connection (pop3 and pop3s listeners)."""
    core = Pop3Core(
        ctx.hostname,
        tls_active=conn.tls_active,
        tls_available=conn.ssl_context is not None,
        plaintext_allowed=ctx.settings.plaintext_allowed,
    )
    await _Pop3Session(ctx, conn, core).run()


class _Pop3Session:
    def __init__(self, ctx: AppContext, conn: Connection, core: Pop3Core) -> None:
        self.ctx = ctx
        self.conn = conn
        self.core = core
        self.mailbox_id: int | None = None
        self._contents: list[ContentInfo] = []  # the maildrop's, by message number - 1
        self._ahead: dict[str, bytes] = {}  # small contents read ahead (_read_ahead)
        self._ahead_from = 0  # message numbers below this were read ahead (or passed)

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        # a shutdown expunges nothing: UPDATE was never reached
        await self.conn.serve(self._session, protocol="POP3", **_ENDINGS)

    async def _session(self) -> None:
        try:
            await self._loop()
        except _Abort:
            await self.conn.write_last(b"")  # the +OK and the part of the message queued

    async def _loop(self) -> None:
        """Pump the core's events until it closes.

        POP3 and SMTP each have this loop rather than one shared driver: the four cases they
        share (send, read, count a command, close) are three lines each, and everything else
        is a match on the core's own event classes with protocol-specific handling (POP3 streams
        RETR from storage; SMTP streams body chunks). A shared
        driver would need a dispatch table plus hooks and read worse than two short matches;
        what is really common (replies queued and flushed before each read, bounded reads,
        STARTTLS, the failure log and the goodbye line) already lives once, on
        :class:`~mailwing.server.connection.Connection`.
        """
        core, conn = self.core, self.conn
        while True:
            event = core.next_event()
            match event:
                case SendReply(data=data):
                    conn.send(data)
                    if conn.full:
                        await conn.flush()
                case NeedData():
                    core.receive_data(await conn.read())  # flushes the queued replies first
                case CommandReceived(name=name):
                    conn.command(name)
                    if log.isEnabledFor(logging.DEBUG):
                        self._debug("command", command=name)  # never the arguments
                case AuthRequest():
                    await conn.flush()
                    await self._authenticate(event)
                case StartTlsRequest():
                    await conn.start_tls()  # writes the queued "+OK Begin TLS" (and any before)
                    core.tls_started()
                    conn.log("tls started", cipher=conn.tls_cipher)
                case RetrieveRequest():
                    await self._retrieve(event)
                case UpdateRequest():
                    await conn.flush()
                    await self._update(event)
                case Close():
                    await conn.flush()
                    return

    # -- requests -------------------------------------------------------------------------
    async def _authenticate(self, req: AuthRequest) -> None:
        # The INBOX row is read while the password is checked, not after it: a second
        # storage round trip (a thread hop on SQLite, a query on PostgreSQL) in series with
        # the user lookup was a fixed part of every login's wait. The guess is the INBOX this
        # login name had at its last login here; the row is used only once the login has
        # succeeded, and only if it is still this user's INBOX (_snapshot checks).
        storage = self.ctx.storage
        guess = _maildrops.inbox_of(storage, req.username)
        early = (asyncio.ensure_future(storage.get_mailbox_by_id(guess))
                 if guess is not None else None)
        try:
            await self._login(req, early)
        finally:
            _discard(early)

    async def _login(self, req: AuthRequest, early: asyncio.Future[Mailbox | None] | None
                     ) -> None:
        try:
            result = await self.ctx.auth.authenticate(
                req.username, req.password, peer_ip=self.conn.peer.ip
            )
        except StorageError as exc:
            self.conn.log("login failed", mechanism=req.mechanism, reason=f"storage: {exc}")
            self.core.auth_failed(AuthFailure.TEMPFAIL)
            return
        if not result.ok or result.user is None:
            failure = _OUTCOMES.get(result.outcome, AuthFailure.TEMPFAIL)
            self.conn.log("login failed", mechanism=req.mechanism, reason=failure.value,
                          username=req.username[:64])
            self.core.auth_failed(failure)
            return
        try:
            maildrop = await self._snapshot(result.user, await _guessed_inbox(early))
        except StorageError as exc:
            self.conn.log("login failed", mechanism=req.mechanism, reason=f"maildrop: {exc}")
            self.core.auth_failed(AuthFailure.MAILDROP_TEMPFAIL)
            return
        if self.mailbox_id is not None:
            _maildrops.remember_inbox(self.ctx.storage, req.username, self.mailbox_id)
        self.conn.user = result.user.address
        self.conn.log("login", mechanism=req.mechanism, messages=len(maildrop),
                      tls=self.conn.tls_active)
        self.core.auth_succeeded(maildrop)

    async def _snapshot(self, user: User, guessed: Mailbox | None = None
                        ) -> tuple[MaildropItem, ...]:
        storage = self.ctx.storage
        if guessed is not None and guessed.user_id == user.id and guessed.name == "INBOX":
            mailbox: Mailbox | None = guessed  # read during this login: as fresh
        else:
            mailbox = await storage.get_mailbox(user.id, "INBOX")
        if mailbox is None:
            self.mailbox_id = None
            return ()
        self.mailbox_id = mailbox.id
        items = _maildrops.get(storage, mailbox)  # valid for the row just read
        if items is None:
            validity = mailbox.uidvalidity
            items = tuple(
                MaildropItem(e.uid, uidl_for(validity, e.uid), e.content.crlf_size, e.content)
                for e in await storage.list_mail(mailbox.id)
            )
            _maildrops.put(storage, mailbox, items)
        self._contents = [cast(ContentInfo, item.content) for item in items]
        return items

    async def _read_ahead(self, number: int, info: ContentInfo) -> bytes | None:
        """A small message's bytes, read together with the small messages that follow it
        (up to :data:`AHEAD_BYTES`, one query on PostgreSQL) the first time one of them is
        retrieved: clients RETR the maildrop in order. None for a big or missing content
        (streamed with ``open_content``, which reports NotFound)."""
        if info.size > AHEAD_BYTES:
            return None
        data = self._ahead.pop(info.sha256, None)
        if data is not None or number < self._ahead_from:
            return data
        window: list[ContentInfo] = []
        total = 0
        for content in self._contents[number - 1 : number - 1 + AHEAD_COUNT]:
            if content.size > AHEAD_BYTES:
                continue
            if window and total + content.size > AHEAD_BYTES:
                break
            window.append(content)
            total += content.size
        self._ahead_from = number + len(window)  # approximately: a skipped big one too
        self._ahead = await self.ctx.storage.read_contents(window)
        return self._ahead.pop(info.sha256, None)

    async def _retrieve(self, req: RetrieveRequest) -> None:
        info = cast(ContentInfo, req.item.content)
        stuffer = DotStuffer(crlf_clean=info.crlf_clean)
        limiter = TopLimiter(req.body_lines) if req.body_lines is not None else None
        try:
            whole = await self._read_ahead(req.number, info)
        except StorageError as exc:
            self.conn.log("read-ahead failed", number=req.number, error=str(exc))
            whole = None
        if whole is not None and limiter is None:
            # read ahead, so nothing to stream: no async iterator, context manager or
            # ``anext`` per message (a session of 50 small RETRs paid for 50 of each)
            self.conn.send(req.reply)
            self.conn.send(stuffer.encode(whole))
            self._retrieved(req, stuffer)
            if self.conn.full:
                await self.conn.flush()
            return
        size = CHUNK_SIZE if limiter is not None else RETR_CHUNK_SIZE
        chunks = (_pieces(whole) if whole is not None
                  else self.ctx.storage.open_content(info.sha256, chunk_size=size))
        async with _closing(chunks):
            try:
                first: bytes | None = await anext(chunks)
            except StopAsyncIteration:
                first = None
            except NotFound:
                self.core.retrieve_failed(gone=True)
                return
            except StorageError as exc:
                self.conn.log("retrieve failed", number=req.number, error=str(exc))
                self.core.retrieve_failed(gone=False)
                return
            conn = self.conn
            conn.send(req.reply)
            chunk = first
            try:
                while chunk is not None:
                    if limiter is not None:
                        chunk = limiter.feed(chunk)
                    conn.send(stuffer.encode(chunk))
                    if limiter is not None and limiter.done:
                        break
                    if conn.full:
                        await conn.flush()
                    chunk = await anext(chunks, None)
            except StorageError as exc:
                # +OK and part of the message are out: no reply can repair that
                self.conn.log("retrieve failed mid-stream", number=req.number, error=str(exc))
                raise _Abort from exc
        self._retrieved(req, stuffer, top=limiter is not None)

    def _retrieved(self, req: RetrieveRequest, stuffer: DotStuffer, *, top: bool = False
                   ) -> None:
        self.conn.send(stuffer.finish())  # written with the next reply group
        if not top and stuffer.octets != req.item.octets:
            self.conn.log("size mismatch", number=req.number, announced=req.item.octets,
                          sent=stuffer.octets)
        self.core.retrieve_done()

    async def _update(self, req: UpdateRequest) -> None:
        if self.mailbox_id is None:
            self.core.update_done(0)
            return
        try:
            removed = await self.ctx.storage.expunge(self.mailbox_id, req.uids)
            if removed:  # bound IMAP QRESYNC's memory of expunged UIDs (RFC 7162)
                await self.ctx.storage.prune_expunged(
                    self.mailbox_id, self.ctx.settings.limits.expunged_retention)
        except StorageError as exc:
            self.conn.log("expunge failed", count=len(req.uids), error=str(exc))
            self.core.update_failed()
            return
        self.conn.log("expunged", count=len(removed))
        self.core.update_done(len(removed))

    # -- output and logging ---------------------------------------------------------------
    def _debug(self, event: str, **fields: object) -> None:
        self.conn.log(event, level=logging.DEBUG, **fields)
