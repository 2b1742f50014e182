"""Serve the admin app with uvicorn inside the worker's running event loop.

Sockets are made here, like the mail listeners' (``SO_REUSEADDR`` + ``SO_REUSEPORT``), so
with ``server.workers = N`` every worker accepts on the admin port and the kernel spreads the
connections. uvicorn's own signal handlers are disabled (the worker stops it on SIGTERM with
the rest). TLS: on when ``admin.tls_enabled`` (any non-loopback ``admin.listen`` address
with ``admin.tls = "auto"``), with the mail listeners' certificate. uvicorn is told not to
trust ``X-Forwarded-*`` headers, so the throttle sees the real peer address.

Behind a TCP load balancer (``[admin] proxy_protocol = true``) the admin listener accepts
connections itself: the composition root hands in a ``proxy_acceptor`` (the server layer's
PROXY protocol reader, :mod:`mailwing.server.proxy`, which this front may not import) that
takes the header off the raw socket and names the client; the socket then goes to uvicorn's
HTTP protocol as if uvicorn had accepted it, with that client as ``request.client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from mailwing.admin.app import create_app, create_autoconfig_app
from mailwing.admin.state import AdminState

__all__ = ["AdminServer", "ProxyAcceptor"]

#: For a freshly accepted socket: the client (ip, port) to use; raises on a bad PROXY header.
ProxyAcceptor = Callable[[socket.socket], Awaitable[tuple[str, int]]]

log = logging.getLogger("mailwing.admin")
# uvicorn's start/stop chatter per worker repeats what mailwing logs; keep its warnings.
logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the worker owns SIGTERM/SIGINT


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class AdminServer:
    """The admin listener (and the optional plain-HTTP autoconfig listener) of one worker."""

    def __init__(self, state: AdminState, cert: Path | None, key: Path | None,
                 proxy_acceptor: ProxyAcceptor | None = None) -> None:
        self.state = state
        self.cert, self.key = cert, key
        self.proxy_acceptor = proxy_acceptor
        self._handovers: set[asyncio.Task[None]] = set()
        self.bound: list[tuple[str, str, int, str]] = []  # (name, host, port, tls)
        self._servers: list[_Server] = []
        self._tasks: list[asyncio.Task[None]] = []

    def _config(self, app: Any, tls: bool) -> uvicorn.Config:
        admin = self.state.settings.admin
        return uvicorn.Config(
            app, lifespan="off", log_config=None, access_log=False, proxy_headers=False,
            server_header=False, timeout_keep_alive=int(min(admin.idle_timeout, 300)),
            timeout_graceful_shutdown=5, limit_concurrency=1000,
            ssl_certfile=str(self.cert) if tls and self.cert else None,
            ssl_keyfile=str(self.key) if tls and self.key else None,
        )

    async def _serve(self, name: str, app: Any, hosts: list[str], port: int,
                     tls: bool) -> None:
        sockets = []
        try:
            for host in hosts:
                try:
                    sockets.append(_bind(host, port))
                except OSError as exc:
                    raise OSError(exc.errno, f"cannot listen on {host} port {port} ({name}): "
                                             f"{exc.strerror}") from exc
        except OSError:
            for s in sockets:
                s.close()
            raise
        server = _Server(self._config(app, tls))
        proxied = (name == "admin" and self.proxy_acceptor is not None
                   and self.state.settings.admin.proxy_protocol)
        task = asyncio.create_task(server.serve(sockets=[] if proxied else sockets),
                                   name=f"mailwing-{name}")
        self._servers.append(server)
        self._tasks.append(task)
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # raises what stopped it
            raise OSError(f"the {name} listener stopped at start-up")
        if proxied:
            for sock in sockets:
                self._tasks.append(asyncio.create_task(self._accept_loop(sock, server)))
        scheme = "https" if tls else "http"
        for host in hosts:
            self.bound.append((name, host, port, "implicit" if tls else "none"))
            log.info("listening on %s port %d (%s, %s), worker pid %d", host, port, name,
                     scheme, os.getpid())

    async def _accept_loop(self, lsock: socket.socket, server: _Server) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not server.should_exit:
                try:
                    sock, _ = await loop.sock_accept(lsock)
                except OSError as exc:
                    log.warning("admin accept failed: %s", exc)
                    await asyncio.sleep(0.1)
                    continue
                sock.setblocking(False)
                task = asyncio.create_task(self._hand_over(sock, server))
                self._handovers.add(task)
                task.add_done_callback(self._handovers.discard)
        finally:
            lsock.close()

    async def _hand_over(self, sock: socket.socket, server: _Server) -> None:
        """Read the PROXY header (trusted peers), then give the socket to uvicorn."""
        assert self.proxy_acceptor is not None
        try:
            client = await self.proxy_acceptor(sock)
        except (ValueError, TimeoutError, OSError) as exc:  # ProxyError is a ValueError
            log.warning("admin: dropped a connection: bad or missing PROXY header (%s)", exc)
            sock.close()
            return
        config = server.config

        def protocol() -> asyncio.Protocol:
            factory: Any = config.http_protocol_class
            proto: Any = factory(
                config=config, server_state=server.server_state,
                app_state=server.lifespan.state)
            made = proto.connection_made

            def connection_made(transport: Any) -> None:
                made(transport)
                proto.client = client  # what request.client (the throttle, logs) sees

            proto.connection_made = connection_made
            made_proto: asyncio.Protocol = proto
            return made_proto

        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                protocol, sock, ssl=config.ssl,
                ssl_handshake_timeout=30.0 if config.ssl is not None else None)
        except (OSError, TimeoutError) as exc:
            log.debug("admin connection failed at start: %s", exc)
            sock.close()

    async def start(self) -> None:
        settings = self.state.settings
        admin = settings.admin
        await self._serve("admin", create_app(self.state), admin.listen, admin.port,
                          admin.tls_enabled)
        if admin.autoconfig_port:
            await self._serve("autoconfig", create_autoconfig_app(self.state),
                              settings.server.listen, admin.autoconfig_port, False)

    async def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        for task in self._tasks:
            if not task.done():
                task.cancel()
