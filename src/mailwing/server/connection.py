"""One client connection as the protocol sessions see it: bytes in, bytes out, TLS on demand.

Sessions never touch asyncio streams directly; they read with an idle timeout, write with
back-pressure (``drain``) and upgrade with :meth:`Connection.start_tls`. Driver errors
(``ConnectionResetError``, ``ssl.SSLError``, timeouts) are mapped here, at one boundary, to
:class:`ConnectionClosed` and :class:`IdleTimeout`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from dataclasses import dataclass

__all__ = ["Connection", "ConnectionClosed", "IdleTimeout", "PeerInfo", "ServerShutdown"]

log = logging.getLogger("mailwing.session")
_ids = itertools.count(1)


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
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.listener = listener
        self.ssl_context = ssl_context
        self.idle_timeout = idle_timeout
        peer = writer.get_extra_info("peername") or ("?", 0)
        sock = writer.get_extra_info("sockname") or ("?", 0)
        self.peer = PeerInfo(str(peer[0]), int(peer[1]), str(sock[0]), int(sock[1]))
        self.session_id = f"{next(_ids):x}"
        self.user: str | None = None  # set by the session after a successful login
        self.commands = 0  # counted by the session, reported in the end-of-session log line
        self.started_at = time.monotonic()
        #: Why reading stopped ("timeout", "closed", "shutdown"), noted here even when the
        #: session catches the exception, so the end-of-session log line can report it.
        self.end_reason: str | None = None
        self._shutdown = asyncio.Event()

    def log(self, event: str, *, level: int = logging.INFO, **fields: object) -> None:
        """Write one structured log line about this session (never pass passwords here)."""
        if log.isEnabledFor(level):
            log.log(level, event, extra={"session": self.session_id, "listener": self.listener,
                                         "peer": self.peer.ip, "user": self.user,
                                         "fields": fields})

    # -- shutdown -------------------------------------------------------------------------
    @property
    def closing(self) -> bool:
        return self._shutdown.is_set()

    def begin_shutdown(self) -> None:
        """Called by the server layer on SIGTERM: a session waiting in :meth:`read` gets
        :class:`ServerShutdown`; one busy with a command finishes it first."""
        self._shutdown.set()

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

    # -- I/O ------------------------------------------------------------------------------
    async def read(self, max_bytes: int = 65536) -> bytes:
        """Return the next bytes the peer sent; raise on EOF, error or idle timeout."""
        if self._shutdown.is_set():
            self.end_reason = "shutdown"
            raise ServerShutdown("shutdown")
        read = asyncio.ensure_future(self.reader.read(max_bytes))
        stop = asyncio.ensure_future(self._shutdown.wait())
        try:
            done, _ = await asyncio.wait(
                {read, stop}, timeout=self.idle_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
            if not read.done():  # timeout, shutdown, or this task was cancelled
                read.cancel()
        if read not in done:
            if stop in done:
                self.end_reason = "shutdown"
                raise ServerShutdown("shutdown")
            self.end_reason = "timeout"
            raise IdleTimeout
        try:
            data = read.result()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            self.end_reason = "closed"
            raise ConnectionClosed(str(exc)) from exc
        if not data:
            self.end_reason = "closed"
            raise ConnectionClosed("eof")
        return data

    async def write(self, data: bytes) -> None:
        """Send ``data`` and wait until the transport buffer has room again.

        A peer that stops reading for longer than the idle limit (its receive window full
        in the middle of a large message) is treated as gone, so it cannot hold a session
        and its buffers forever."""
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self.idle_timeout)
        except TimeoutError as exc:
            self.end_reason = self.end_reason or "timeout"
            raise ConnectionClosed("peer stopped reading") from exc
        except (OSError, ssl.SSLError, RuntimeError) as exc:
            self.end_reason = self.end_reason or "closed"
            raise ConnectionClosed(str(exc)) from exc

    async def start_tls(self) -> None:
        """Upgrade this connection in place (STARTTLS / STLS).

        Bytes the client pipelined after the STARTTLS command are discarded, as RFC 3207
        section 4.2 and RFC 2595 section 3.1 require (they would be a command injection)."""
        if self.ssl_context is None:
            raise RuntimeError("no TLS context configured")
        buffered = getattr(self.reader, "_buffer", None)
        if buffered:
            buffered.clear()
        try:
            await self.writer.start_tls(self.ssl_context)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise ConnectionClosed(f"TLS handshake failed: {exc}") from exc

    async def close(self) -> None:
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (OSError, ssl.SSLError, TimeoutError, RuntimeError):
            pass
