"""One client connection as the protocol sessions see it: bytes in, bytes out, TLS on demand.

Sessions never touch asyncio streams directly; they read with an idle timeout, write with
back-pressure (``drain``) and upgrade with :meth:`Connection.start_tls`. Driver errors
(``ConnectionResetError``, ``ssl.SSLError``, timeouts) are mapped here, at one boundary, to
:class:`ConnectionClosed` and :class:`IdleTimeout`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

__all__ = ["Connection", "ConnectionClosed", "IdleTimeout", "PeerInfo"]

log = logging.getLogger("mailwing.session")


class ConnectionClosed(Exception):
    """The peer went away (EOF, reset, TLS failure)."""


class IdleTimeout(Exception):
    """The peer sent nothing for longer than the session's idle limit."""


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
        self.closing = False  # set by graceful shutdown: finish the current command, then end

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
        try:
            data = await asyncio.wait_for(self.reader.read(max_bytes), self.idle_timeout)
        except TimeoutError as exc:
            raise IdleTimeout from exc
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            raise ConnectionClosed(str(exc)) from exc
        if not data:
            raise ConnectionClosed("eof")
        return data

    async def write(self, data: bytes) -> None:
        """Send ``data`` and wait until the transport buffer has room again."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (OSError, ssl.SSLError, RuntimeError) as exc:
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
