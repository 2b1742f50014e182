"""The one asyncio server layer for every protocol: bind, accept, cap, run a session, log it.

Each enabled listener (``[pop3]``, ``[smtps]`` ...) is bound on each ``server.listen`` address
with ``SO_REUSEPORT``, so several worker processes can share the ports and the kernel spreads
new connections over them (the LMTP UNIX socket, which no two processes can bind, is bound
once by ``mailwing serve``'s parent and inherited: :mod:`mailwing.server.unix_listener`). An
accepted connection is wrapped in a :class:`Connection` and handed, with the
:class:`AppContext`, to the handler registered for the listener's protocol; the protocol
sessions never see sockets, caps, logging or shutdown bookkeeping.

Guarantees kept here, for all protocols at once:

* caps: over ``server.max_connections`` / ``max_connections_per_ip`` the client gets its
  protocol's refusal line (:mod:`mailwing.server.limits`) and is disconnected;
* isolation: an exception in a handler is logged with its traceback and only that connection
  is closed;
* one structured ``session end`` line per connection (session id, listener, peer, TLS cipher,
  user, command count, duration, result ``ok``/``timeout``/``closed``/``shutdown``/``error``);
* graceful stop: :meth:`ListenerGroup.shutdown` stops accepting, tells every live connection
  to finish (:meth:`Connection.begin_shutdown`), waits up to the grace period, then cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from mailwing.config import LISTENERS, Settings
from mailwing.proto.common.proxy import ProxyError
from mailwing.server.connection import (
    Connection,
    ConnectionClosed,
    IdleTimeout,
    PeerInfo,
    ServerShutdown,
)
from mailwing.server.limits import ConnectionLimiter, refusal_line
from mailwing.server.proxy import (
    TrustedProxies,
    accept_proxied,
    open_streams,
    reuse_port_socket,
)
from mailwing.server.unix_listener import UnixSocket, bind_unix_socket
from mailwing.services import metrics
from mailwing.services.context import AppContext
from mailwing.shared.limits import (
    ConnectionCounts,
    MemoryConnections,
    NoConnections,
    publish_forever,
)

__all__ = ["Handler", "ListenerGroup", "ListenerSpec", "enabled_listeners"]

log = logging.getLogger("mailwing.server")

#: A protocol session: runs until the conversation is over; the layer closes the connection.
Handler = Callable[[AppContext, Connection], Awaitable[None]]

_HANDSHAKE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    name: str
    protocol: str
    implicit_tls: bool
    port: int
    idle_timeout: float
    proxy_protocol: bool = False


def enabled_listeners(settings: Settings) -> list[ListenerSpec]:
    """Listeners with a non-zero port, in the order of :data:`LISTENERS`."""
    out = []
    for name, (protocol, implicit_tls, _, _) in LISTENERS.items():
        ls = settings.listener(name)
        if ls.port:
            out.append(ListenerSpec(name, protocol, implicit_tls, ls.port, ls.idle_timeout,
                                    ls.proxy_protocol))
    return out


class ListenerGroup:
    """All listening sockets of one worker process and the sessions they accepted."""

    def __init__(
        self,
        ctx: AppContext,
        handlers: Mapping[str, Handler],
        ssl_context: ssl.SSLContext | None,
        *,
        sockets: Mapping[str, socket.socket] | None = None,
        connections: ConnectionCounts | None = None,
        lmtp_socket: socket.socket | None = None,
    ) -> None:
        self.ctx = ctx
        #: listening sockets bound by the caller, by listener name (the embeddable server
        #: binds port 0 itself, so no port is ever picked and then lost to a race)
        self._given = dict(sockets or {})
        #: the LMTP UNIX socket bound by ``mailwing serve``'s parent, shared by its workers
        #: (see :mod:`mailwing.server.unix_listener`); without it this group binds its own
        self._given_lmtp = lmtp_socket
        self._own_lmtp: UnixSocket | None = None
        self.handlers = dict(handlers)
        self.ssl_context = ssl_context
        server = ctx.settings.server
        self.limiter = ConnectionLimiter(server.max_connections, server.max_connections_per_ip,
                                         connections or NoConnections())
        self._publisher: asyncio.Task[None] | None = None
        self.trusted = TrustedProxies(server.proxy_trusted)
        self.bound: list[tuple[str, str, int]] = []  # (listener, host, port)
        self._servers: list[asyncio.Server] = []
        self._accept_loops: list[tuple[socket.socket, asyncio.Task[None]]] = []
        self._handshakes: set[asyncio.Task[None]] = set()  # PROXY header not read yet
        self._sessions: dict[Connection, asyncio.Task[None]] = {}

    @property
    def live(self) -> list[Connection]:
        return list(self._sessions)

    # -- start / stop ------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind every enabled listener that has a handler; raise OSError if a bind fails."""
        settings = self.ctx.settings
        if not isinstance(self.limiter.shared, NoConnections | MemoryConnections):
            self._publisher = asyncio.create_task(
                publish_forever(self.limiter.shared, self.limiter.snapshot))
        for spec in enabled_listeners(settings):
            handler = self.handlers.get(spec.protocol)
            if handler is None:
                log.debug("listener %s (port %d): protocol %s is not implemented; not served",
                         spec.name, spec.port, spec.protocol)
                continue
            if spec.implicit_tls and self.ssl_context is None:
                raise RuntimeError(f"listener {spec.name} needs TLS but no context was given")
            given = self._given.get(spec.name)
            hosts = ([given.getsockname()[0]] if given is not None else
                     settings.lmtp.listen if spec.name == "lmtp" else settings.server.listen)
            for host in hosts:
                if spec.proxy_protocol:
                    self._start_proxied(spec, handler, host, sock=given)
                    continue
                where: dict[str, Any] = (
                    {"sock": given} if given is not None else
                    {"host": host, "port": spec.port, "reuse_port": True, "reuse_address": True})
                try:
                    srv = await asyncio.start_server(
                        functools.partial(self._accept, spec=spec, handler=handler), **where,
                        ssl=self.ssl_context if spec.implicit_tls else None,
                        ssl_handshake_timeout=_HANDSHAKE_TIMEOUT if spec.implicit_tls else None,
                    )
                except OSError as exc:
                    self.stop_accepting()
                    raise OSError(exc.errno, f"cannot listen on {host} port {spec.port} "
                                             f"({spec.name}): {exc.strerror}") from exc
                self._servers.append(srv)
                self.bound.append((spec.name, host, spec.port))
                log.info("listening on %s port %d (%s%s), worker pid %d", host, spec.port,
                         spec.name, ", implicit TLS" if spec.implicit_tls else "", os.getpid())
        self._start_lmtp_socket()

    def _start_lmtp_socket(self) -> None:
        """Accept on the LMTP UNIX socket (``lmtp.socket``), when it is configured."""
        settings = self.ctx.settings
        path = settings.lmtp_socket_path
        handler = self.handlers.get("lmtp")
        if path is None or handler is None:
            return
        sock = self._given_lmtp
        if sock is None:
            try:
                self._own_lmtp = bind_unix_socket(path, int(settings.lmtp.socket_mode, 8))
            except OSError:
                self.stop_accepting()
                raise
            sock = self._own_lmtp.sock
        spec = ListenerSpec("lmtp", "lmtp", False, 0, settings.lmtp.idle_timeout)
        peer = PeerInfo("unix", 0, str(path), 0)
        task = asyncio.create_task(self._accept_loop(
            sock, spec, handler, functools.partial(self._accept_unix, peer=peer)))
        self._accept_loops.append((sock, task))
        self.bound.append((spec.name, str(path), 0))
        log.info("listening on %s (lmtp), worker pid %d", path, os.getpid())

    def _start_proxied(self, spec: ListenerSpec, handler: Handler, host: str, *,
                       sock: socket.socket | None = None) -> None:
        """Bind a listener that takes PROXY headers (accepting itself, see server.proxy);
        ``sock`` is one the caller bound already."""
        try:
            if sock is None:
                sock = reuse_port_socket(host, spec.port)
            else:
                sock.setblocking(False)
        except OSError as exc:
            self.stop_accepting()
            raise OSError(exc.errno, f"cannot listen on {host} port {spec.port} "
                                     f"({spec.name}): {exc.strerror}") from exc
        task = asyncio.create_task(self._accept_loop(sock, spec, handler,
                                                     self._accept_proxied))
        self._accept_loops.append((sock, task))
        self.bound.append((spec.name, host, spec.port))
        log.info("listening on %s port %d (%s%s, PROXY protocol from %s), worker pid %d",
                 host, spec.port, spec.name, ", implicit TLS" if spec.implicit_tls else "",
                 ", ".join(self.ctx.settings.server.proxy_trusted) or "nobody", os.getpid())

    def stop_accepting(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            self._publisher = None
        for srv in self._servers:
            srv.close()
        self._servers.clear()
        for sock, task in self._accept_loops:
            task.cancel()
            sock.close()  # the LMTP socket too: this process's descriptor of it
        self._accept_loops.clear()
        if self._own_lmtp is not None:
            self._own_lmtp.close()
            self._own_lmtp = None

    async def _accept_loop(
        self, lsock: socket.socket, spec: ListenerSpec, handler: Handler,
        serve: Callable[[socket.socket, ListenerSpec, Handler], Coroutine[Any, Any, None]],
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(lsock)
            except asyncio.CancelledError:
                raise
            except OSError as exc:  # EMFILE and friends: back off instead of spinning
                log.warning("accept on %s failed: %s", spec.name, exc)
                await asyncio.sleep(0.1)
                continue
            sock.setblocking(False)
            task = asyncio.create_task(serve(sock, spec, handler))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _accept_unix(self, sock: socket.socket, spec: ListenerSpec, handler: Handler,
                           *, peer: PeerInfo) -> None:
        try:
            reader, writer = await open_streams(sock, ssl_context=None,
                                                handshake_timeout=_HANDSHAKE_TIMEOUT)
        except OSError:
            sock.close()
            return
        await self._accept(reader, writer, spec, handler, peer=peer)

    async def _accept_proxied(self, sock: socket.socket, spec: ListenerSpec,
                              handler: Handler) -> None:
        try:
            header, (ip, port) = await accept_proxied(sock, self.trusted)
        except (ProxyError, TimeoutError, OSError) as exc:
            log.warning("listener %s: dropped a connection from %s: bad or missing PROXY "
                        "header (%s)", spec.name, _peer_ip(sock), exc or type(exc).__name__)
            sock.close()
            return
        local = sock.getsockname()
        if header is not None and header.destination is not None:
            local = header.destination
        try:
            reader, writer = await open_streams(
                sock, ssl_context=self.ssl_context if spec.implicit_tls else None,
                handshake_timeout=_HANDSHAKE_TIMEOUT)
        except (OSError, ssl.SSLError, TimeoutError):
            sock.close()
            return
        peer = PeerInfo(ip, port, str(local[0]), int(local[1]))
        await self._accept(reader, writer, spec, handler, peer=peer,
                           refuse_proxy_header=header is None,
                           health_check=header is not None and header.local)

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, ask sessions to end, wait up to ``grace`` s, cancel the rest."""
        self.stop_accepting()
        for conn in self._sessions:
            conn.begin_shutdown()
        tasks = set(self._sessions.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            log.warning("cancelling %d session(s) still running after %.1f s",
                        len(pending), grace)
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=5)

    # -- one connection ----------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      spec: ListenerSpec, handler: Handler, *, peer: PeerInfo | None = None,
                      refuse_proxy_header: bool = True, health_check: bool = False) -> None:
        conn = Connection(reader, writer, listener=spec.name,
                          ssl_context=self.ssl_context, idle_timeout=spec.idle_timeout,
                          peer=peer, refuse_proxy_header=refuse_proxy_header)
        conn.health_check = health_check
        metrics.connection_opened(spec.name)
        if not self.limiter.acquire(conn.peer.ip):
            await self._refuse(conn, spec)
            metrics.connection_closed(spec.name, "refused")
            return
        task = asyncio.current_task()
        assert task is not None
        self._sessions[conn] = task
        try:
            await self._run(conn, handler)
        except asyncio.CancelledError:
            # A session cancelled by shutdown ends here, as a normal return: this task is the
            # stream's connection callback, and on Python 3.11 asyncio reports a callback
            # task that ends cancelled as "Exception in callback" with a traceback (fixed in
            # 3.12), once per connection still open at shutdown. Nothing awaits this task's
            # result, so the cancellation has nobody else to reach.
            return
        finally:
            del self._sessions[conn]
            self.limiter.release(conn.peer.ip)

    async def _refuse(self, conn: Connection, spec: ListenerSpec) -> None:
        conn.log("connection refused", reason="too many connections",
                 from_ip=self.limiter.count(conn.peer.ip), total=self.limiter.total)
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait_for(
                conn.write(refusal_line(spec.protocol, self.ctx.hostname)), 5)
        with contextlib.suppress(TimeoutError):
            await conn.close()

    async def _run(self, conn: Connection, handler: Handler) -> None:
        result = "ok"
        cipher = conn.tls_cipher
        try:
            await handler(self.ctx, conn)
            result = conn.end_reason if conn.end_reason in ("timeout", "closed") else "ok"
            if conn.end_reason == "shutdown":
                result = "shutdown"
        except ServerShutdown:
            result = "shutdown"
        except ConnectionClosed:
            result = "closed"
        except IdleTimeout:
            result = "timeout"
        except asyncio.CancelledError:
            result = "cancelled"
            raise
        except Exception:
            result = "error"
            log.exception("session %s (%s) failed", conn.session_id, conn.listener,
                          extra={"session": conn.session_id, "listener": conn.listener,
                                 "peer": conn.peer.ip, "user": conn.user})
        finally:
            cipher = conn.tls_cipher or cipher
            await conn.close()
            metrics.connection_closed(conn.listener, result)
            conn.log("session end", level=logging.DEBUG if conn.health_check else logging.INFO,
                     tls=cipher, commands=conn.commands,
                     duration=round(time.monotonic() - conn.started_at, 3), result=result)


def _peer_ip(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return "?"
