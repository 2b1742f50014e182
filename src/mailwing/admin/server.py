"""Serve the admin app with uvicorn inside the worker's running event loop.

Sockets are made here, like the mail listeners' (``SO_REUSEADDR`` + ``SO_REUSEPORT``), so
with ``server.workers = N`` every worker accepts on the admin port and the kernel spreads the
connections. uvicorn's own signal handlers are disabled (the worker stops it on SIGTERM with
the rest). TLS: on when ``admin.tls_enabled`` (any non-loopback ``admin.listen`` address
with ``admin.tls = "auto"``), with the mail listeners' certificate. uvicorn is told not to
trust ``X-Forwarded-*`` headers, so the throttle sees the real peer address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from mailwing.admin.app import create_app, create_autoconfig_app
from mailwing.admin.state import AdminState

__all__ = ["AdminServer"]

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

    def __init__(self, state: AdminState, cert: Path | None, key: Path | None) -> None:
        self.state = state
        self.cert, self.key = cert, key
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
        task = asyncio.create_task(server.serve(sockets=sockets), name=f"mailwing-{name}")
        self._servers.append(server)
        self._tasks.append(task)
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # raises what stopped it
            raise OSError(f"the {name} listener stopped at start-up")
        scheme = "https" if tls else "http"
        for host in hosts:
            self.bound.append((name, host, port, "implicit" if tls else "none"))
            log.info("listening on %s port %d (%s, %s), worker pid %d", host, port, name,
                     scheme, os.getpid())

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
