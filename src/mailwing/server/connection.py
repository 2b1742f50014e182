"""One client connection as the protocol sessions see it: bytes in, bytes out, TLS on demand.

Sessions never touch asyncio streams directly; they read with an idle timeout, write with
back-pressure (``drain``) and upgrade with :meth:`Connection.start_tls`. Replies can be
queued with :meth:`Connection.send` instead of written: the queue goes out in one transport
write when the session reads next (or flushes, starts TLS, says its last words), so the
answers to pipelined commands cost one syscall, not one each, and a session cannot forget to
flush before it waits for the client. Driver errors
(``ConnectionResetError``, ``ssl.SSLError``, timeouts) are mapped here, at one boundary, to
:class:`ConnectionClosed` and :class:`IdleTimeout`.

:meth:`Connection.start_compression` switches both directions to raw DEFLATE (RFC 4978, IMAP
COMPRESS): from then on :meth:`read` returns inflated bytes (at most ``max_bytes`` per call, so
a small compressed input cannot make one read return a huge buffer) and :meth:`write`
deflates each write with a sync flush, so every response reaches the client whole. Over TLS the
deflate layer sits inside the TLS stream, as the RFC requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from mailwing.proto.common.proxy import V2_SIGNATURE
from mailwing.services import metrics

__all__ = ["Connection", "ConnectionClosed", "IdleTimeout", "PeerInfo", "ServerShutdown"]

log = logging.getLogger("mailwing.session")
_ids = itertools.count(1)

#: :meth:`Connection.send` queues up to this many octets before the session should flush
#: (a bound on memory per connection; larger than most reply groups, a small RETR included)
FLUSH_AT = 64 * 1024


@runtime_checkable
class _PausableTransport(Protocol):
    """A transport that can stop reading (asyncio's and uvloop's TCP transports can; uvloop's
    do not derive from :class:`asyncio.ReadTransport`, hence a protocol, not that class)."""

    def pause_reading(self) -> None: ...


class ConnectionClosed(Exception):
    """The peer went away (EOF, reset, TLS failure)."""


class IdleTimeout(Exception):
    """The peer sent nothing for longer than the session's idle limit."""


class ServerShutdown(ConnectionClosed):
    """The server is stopping: raised by :meth:`Connection.read` while a session waits for its
    next command, so the session can say goodbye in its protocol (POP3 ``-ERR``, SMTP ``421``,
    IMAP ``* BYE``) and end without applying anything half-done."""


@dataclass(frozen=True, slots=True)
class PeerInfo:
    ip: str
    port: int
    local_ip: str
    local_port: int

    @property
    def is_loopback(self) -> bool:
        return self.ip.startswith("127.") or self.ip in ("::1", "::ffff:127.0.0.1")


class Connection:
    """A live connection: wraps an asyncio stream pair and knows its TLS state."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        listener: str,
        ssl_context: ssl.SSLContext | None,
        idle_timeout: float,
        peer: PeerInfo | None = None,
        refuse_proxy_header: bool = True,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.listener = listener
        self.ssl_context = ssl_context
        self.idle_timeout = idle_timeout
        if peer is None:
            name = writer.get_extra_info("peername") or ("?", 0)
            sock = writer.get_extra_info("sockname") or ("?", 0)
            peer = PeerInfo(str(name[0]), int(name[1]), str(sock[0]), int(sock[1]))
        #: The client: from the PROXY header when a trusted balancer sent one.
        self.peer = peer
        #: Drop the connection if its first bytes are a PROXY header (a direct client trying
        #: to pass for someone else; see :mod:`mailwing.server.proxy`).
        self.refuse_proxy_header = refuse_proxy_header
        #: A load balancer's probe (PROXY LOCAL): its session is logged at debug level only.
        self.health_check = False
        self.session_id = f"{next(_ids):x}"
        self.user: str | None = None  # set by the session after a successful login
        self.commands = 0  # counted by the session, reported in the end-of-session log line
        self.started_at = time.monotonic()
        #: Why reading stopped ("timeout", "closed", "shutdown"), noted here even when the
        #: session catches the exception, so the end-of-session log line can report it.
        self.end_reason: str | None = None
        self._shutdown = asyncio.Event()
        #: when the read the session is blocked in began (loop time), None when not reading
        self._read_since: float | None = None
        self._woken_for_shutdown = False
        self._woken_for_idle = False
        self._idle_timer: asyncio.TimerHandle | None = None  # see _check_idle
        self._deflate: Any = None  # zlib compressor once COMPRESS=DEFLATE is active
        self._inflate: Any = None
        self._command: tuple[str, float] | None = None  # the command being answered, since
        #: replies queued by :meth:`send`, written together by :meth:`flush` (which
        #: :meth:`read` calls first, so nothing the client waits for is ever held)
        self._pending: list[bytes] = []
        self._pending_size = 0

    def command(self, name: str) -> None:
        """Count one protocol command (called by each session where it dispatches one). Its
        latency, for the metrics, runs until the session next reads or counts a command."""
        self.commands += 1
        now = time.perf_counter()
        if self._command is not None:
            metrics.command(self.listener, self._command[0], now - self._command[1])
        metrics.command(self.listener, name, None)
        self._command = (name, now)

    def _command_done(self) -> None:
        if self._command is not None:
            name, started = self._command
            self._command = None
            metrics.command(self.listener, name, time.perf_counter() - started)

    def log(self, event: str, *, level: int = logging.INFO, **fields: object) -> None:
        """Write one structured log line about this session (never pass passwords here).

        Login and message events also feed the metrics here, in one place for every
        protocol."""
        if event == "login":
            metrics.login(self.listener, str(fields.get("mechanism", "")), "ok")
        elif event == "login failed":
            reason = str(fields.get("reason", "failed")).split(":", 1)[0]
            metrics.login(self.listener, str(fields.get("mechanism", "")), reason)
        elif event == "message":
            code = fields.get("code")
            metrics.smtp_message(self.listener, fields.get("result") == "queued",
                                 code if isinstance(code, int) else None)
        if log.isEnabledFor(level):
            log.log(level, event, extra={"session": self.session_id, "listener": self.listener,
                                         "peer": self.peer.ip, "user": self.user,
                                         "fields": fields})

    def log_failure(self, event: str) -> None:
        """Log the exception being handled, with this session's fields (sessions call it
        from their last-resort ``except Exception`` before sending their internal-error line)."""
        log.exception(event, extra={"session": self.session_id, "listener": self.listener,
                                    "peer": self.peer.ip, "user": self.user, "fields": {}})

    # -- shutdown -------------------------------------------------------------------------
    @property
    def closing(self) -> bool:
        return self._shutdown.is_set()

    def begin_shutdown(self) -> None:
        """Called by the server layer on SIGTERM: a session waiting in :meth:`read` gets
        :class:`ServerShutdown`; one busy with a command finishes it first."""
        self._shutdown.set()
        # Wake a read in progress by cancelling the stream's internal wait-for-data future
        # (not the task: a task cancel could land later, in the middle of a command, if data
        # arrived at the same moment). A read that already has its data is left alone; the
        # next read() then sees the flag.
        waiter = getattr(self.reader, "_waiter", None)
        if self._read_since is not None and waiter is not None and not waiter.done():
            self._woken_for_shutdown = True
            waiter.cancel()

    # -- state ----------------------------------------------------------------------------
    @property
    def tls_active(self) -> bool:
        return self.writer.get_extra_info("ssl_object") is not None

    @property
    def tls_cipher(self) -> str | None:
        obj = self.writer.get_extra_info("ssl_object")
        if obj is None:
            return None
        cipher = obj.cipher()
        version = obj.version()
        return f"{version}:{cipher[0]}" if cipher else version

    @property
    def compressed(self) -> bool:
        return self._deflate is not None

    def start_compression(self) -> None:
        """Raw DEFLATE (window 2**15, no zlib header) in both directions, from the next
        read and write on (RFC 4978 section 3). Replies still queued by :meth:`send` were
        answers given before compression began: they go out uncompressed, now (their drain
        check is left to the next :meth:`flush`)."""
        if self._pending:
            self.writer.write(self.take_pending())
        if self._deflate is None:
            self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
            self._inflate = zlib.decompressobj(-15)

    # -- I/O ------------------------------------------------------------------------------
    async def read(self, max_bytes: int = 65536) -> bytes:
        """See :meth:`_read`; with compression on, inflated (never an empty result).

        Replies queued by :meth:`send` are flushed first: a session waits for its client
        only after everything the client may be waiting for has gone out (RFC 2920 section
        3.1, RFC 2449 section 6: flush when the input buffer is empty)."""
        if self._pending:
            await self.flush()
        inflate = self._inflate
        if inflate is None:
            return await self._read(max_bytes)
        while True:
            if inflate.unconsumed_tail:
                data = inflate.decompress(inflate.unconsumed_tail, max_bytes)
            else:
                try:
                    data = inflate.decompress(await self._read(max_bytes), max_bytes)
                except zlib.error as exc:
                    self.end_reason = "closed"
                    raise ConnectionClosed(f"bad DEFLATE data: {exc}") from exc
            if inflate.eof:
                self.end_reason = "closed"
                raise ConnectionClosed("DEFLATE stream ended")
            if data:
                return data

    async def _read(self, max_bytes: int = 65536) -> bytes:
        """Return the next bytes the peer sent; raise on EOF, error or idle timeout.

        This is the hottest call of every session, so it creates no extra task, future or
        timer: the idle limit is one timer per connection (:meth:`_check_idle`) that wakes
        a read waiting too long, as shutdown wakes one (see :meth:`begin_shutdown`); an
        ``asyncio.timeout`` per read (a timer armed and cancelled per command) was about
        6 % of a POP3 worker's time."""
        if self._command is not None:
            self._command_done()
        if self._shutdown.is_set():
            self.end_reason = "shutdown"
            raise ServerShutdown("shutdown")
        loop = asyncio.get_running_loop()
        self._read_since = now = loop.time()
        if self._idle_timer is None:
            self._idle_timer = loop.call_at(now + self.idle_timeout, self._check_idle)
        self._woken_for_shutdown = self._woken_for_idle = False
        try:
            data = await self.reader.read(max_bytes)
        except asyncio.CancelledError:
            task = asyncio.current_task()  # only now: it cost ~4 % of a POP3 worker per read
            if task is None or not task.cancelling():  # woken by us, not a task cancel
                if self._woken_for_shutdown:
                    self.end_reason = "shutdown"
                    raise ServerShutdown("shutdown") from None
                if self._woken_for_idle:
                    self.end_reason = "timeout"
                    raise IdleTimeout from None
            raise
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            self.end_reason = "closed"
            raise ConnectionClosed(str(exc)) from exc
        finally:
            self._read_since = None
        if not data:
            self.end_reason = "closed"
            raise ConnectionClosed("eof")
        if self.refuse_proxy_header:
            self.refuse_proxy_header = False  # only the first bytes can be a header
            if data.startswith((b"PROXY ", V2_SIGNATURE[:8])):
                self.log("connection refused", reason="PROXY header from an untrusted address")
                self.end_reason = "closed"
                raise ConnectionClosed("PROXY header from an untrusted address")
        return data

    def _check_idle(self) -> None:
        """The idle timer: wake a read that has waited :attr:`idle_timeout` seconds.

        Armed by the first read at that read's deadline; when it fires it re-arms itself at
        the deadline of the read in progress (a later one, if the client has sent meanwhile),
        or lets the next read arm it if none is (a session busy with a command). The read is
        woken by cancelling the stream's wait-for-data future, as :meth:`begin_shutdown`
        does; a read whose data has already arrived is left alone."""
        self._idle_timer = None
        since = self._read_since
        if since is None:
            return
        loop = asyncio.get_running_loop()
        deadline = since + self.idle_timeout
        if loop.time() < deadline - 0.001:  # a timer may fire a clock tick early
            self._idle_timer = loop.call_at(deadline, self._check_idle)
            return
        waiter = getattr(self.reader, "_waiter", None)
        if waiter is not None and not waiter.done():
            self._woken_for_idle = True
            waiter.cancel()

    # -- output: queued replies, written in one go ---------------------------------------
    def send(self, data: bytes) -> None:
        """Queue ``data`` behind the replies already queued, without writing.

        Sessions queue the replies to pipelined commands here and let :meth:`read` (or an
        explicit :meth:`flush`) write them in one transport write and one drain check: one
        ``send`` syscall (and, over TLS, one record; with COMPRESS, one sync flush) per
        group of commands instead of one per reply. A session that keeps queueing without
        reading (a long RETR, many pipelined commands) checks :attr:`full` and flushes."""
        self._pending.append(data)
        self._pending_size += len(data)

    @property
    def full(self) -> bool:
        """The queue holds :data:`FLUSH_AT` octets or more: time to :meth:`flush`."""
        return self._pending_size >= FLUSH_AT

    def take_pending(self) -> bytes:
        """Remove and return the queued replies (for a TLS go-ahead or last words).

        A queue of one item (a RETR chunk of up to a megabyte) is returned as it is: a join
        would copy it once more for nothing."""
        pending = self._pending
        data = pending[0] if len(pending) == 1 and type(pending[0]) is bytes else b"".join(pending)
        pending.clear()
        self._pending_size = 0
        return data

    async def flush(self) -> None:
        """Write the queued replies (see :meth:`write` for back-pressure)."""
        if self._pending:
            await self.write(b"")

    async def write(self, data: bytes) -> None:
        """Send the queued replies and ``data``, and wait until the transport buffer has room
        again.

        A peer that stops reading for longer than the idle limit (its receive window full
        in the middle of a large message) is treated as gone, so it cannot hold a session
        and its buffers forever.

        When the transport holds no more than its high-water mark after the write (nearly
        always: the socket took the data), ``drain`` would return at once; it is skipped,
        because the timeout around it costs a task and a timer per response. The buffer
        stays bounded by that mark plus one write, and a closed transport still goes
        through ``drain``, which reports it."""
        if self._pending:
            if data:
                self._pending.append(data)
            data = self.take_pending()
            if not data:
                return
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        try:
            writer = self.writer
            writer.write(data)
            transport = writer.transport
            if (not transport.is_closing() and transport.get_write_buffer_size()
                    <= transport.get_write_buffer_limits()[1]):
                return
            await asyncio.wait_for(writer.drain(), self.idle_timeout)
        except TimeoutError as exc:
            self.end_reason = self.end_reason or "timeout"
            raise ConnectionClosed("peer stopped reading") from exc
        except (OSError, ssl.SSLError, RuntimeError) as exc:
            self.end_reason = self.end_reason or "closed"
            raise ConnectionClosed(str(exc)) from exc

    async def serve(self, loop: Callable[[], Awaitable[None]], *, protocol: str,
                    shutdown: bytes, idle: bytes, internal: bytes) -> None:
        """Run a session's ``loop`` and end it the way every protocol here ends one: its
        last words when the server shuts down (``shutdown``), when the peer was idle too
        long (``idle``) or when the session failed (``internal``, after logging the
        failure), nothing when the peer is gone. Errors are contained here, so one
        session's bug never reaches the listener."""
        try:
            await loop()
        except ServerShutdown:
            await self.write_last(shutdown)
        except IdleTimeout:
            await self.write_last(idle)
        except ConnectionClosed:
            pass
        except Exception:
            self.log_failure(f"{protocol} session failed")
            await self.write_last(internal)

    async def write_last(self, data: bytes, timeout: float = 5.0) -> None:
        """Send a session's last words (pending replies and its goodbye: POP3 ``-ERR``, SMTP
        ``421``, IMAP ``* BYE``) without letting a peer that reads nothing, or is gone
        already, hold the closing session: bounded by ``timeout``, failures ignored."""
        data = self.take_pending() + data
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            await asyncio.wait_for(self.write(data), timeout)

    async def start_tls(self, go_ahead: bytes = b"") -> None:
        """Upgrade this connection in place (STARTTLS / STLS).

        ``go_ahead`` is the server's "begin TLS" reply (with any replies still queued before
        it). Pass it here rather than writing it first: reading is paused *before* it is
        sent, so the client's TLS ClientHello, which may arrive the moment the reply is out,
        stays in the socket for the TLS layer instead of landing in the plaintext stream
        buffer (where it would be lost and the handshake would hang). Bytes that the client
        pipelined after the STARTTLS command are already in that buffer: they are discarded,
        as RFC 3207 section 4.2 and RFC 2595 section 3.1 require (a command injection)."""
        if self.ssl_context is None:
            raise RuntimeError("no TLS context configured")
        if self._pending:
            go_ahead = self.take_pending() + go_ahead
        transport = self.writer.transport
        if not isinstance(transport, _PausableTransport):
            raise RuntimeError("this transport cannot pause reading")
        transport.pause_reading()
        buffered = getattr(self.reader, "_buffer", None)
        if buffered:
            buffered.clear()
        try:
            if go_ahead:
                self.writer.write(go_ahead)
                await asyncio.wait_for(self.writer.drain(), self.idle_timeout)
            await self.writer.start_tls(self.ssl_context)
        except (OSError, ssl.SSLError, TimeoutError, RuntimeError) as exc:
            raise ConnectionClosed(f"TLS handshake failed: {exc}") from exc

    async def close(self) -> None:
        self._command_done()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (OSError, ssl.SSLError, TimeoutError, RuntimeError):
            pass
