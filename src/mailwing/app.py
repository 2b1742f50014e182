"""Composition root: settings -> storage -> services -> listeners, plus signals and draining.

This is the only module that knows every layer. ``mailwing serve`` calls :func:`serve`:

1. pre-flight in the parent process: the database schema must be current (``SchemaOutdated``
   stops start-up with the message naming ``mailwing db upgrade``; serve never migrates or
   creates accounts), and the TLS certificate must load (a self-signed one is made first if
   none is configured);
2. the session handler of every enabled listener is imported; a module that fails to import
   is an installation fault and stops start-up with one line naming it. The admin listener
   (protocol ``http``) is not a session handler: it is
   :class:`mailwing.admin.server.AdminServer`, started in each worker after the mail
   listeners, on the same event loop; metrics (:mod:`mailwing.services.metrics`) are
   switched on in each worker, in multiprocess mode under ``data_dir/metrics`` when there
   are several workers (published every second and when the worker stops), and the
   worker's storage is wrapped in its timing proxy;
3. with ``server.workers = 1`` the worker runs in this process, otherwise
   :mod:`mailwing.server.workers` forks them (after the pre-flight, before any event loop);
4. each worker opens its own storage, builds the :class:`Authenticator` and
   :class:`AppContext`, binds its listeners, starts its outbound queue worker and waits for
   SIGTERM/SIGINT, then stops the queue worker, drains (:meth:`ListenerGroup.shutdown`) and
   closes storage.

uvloop is used when it is installed (``asyncio.Runner`` with its loop factory).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import importlib
import logging
import os
import signal
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from mailwing.config import LISTENERS, Settings, parse_duration
from mailwing.runtime import open_store, run_async
from mailwing.server.listeners import Handler, ListenerGroup, enabled_listeners
from mailwing.server.tls import TlsSetupError, build_server_context, ensure_self_signed
from mailwing.server.unix_listener import UnixSocket, bind_unix_socket
from mailwing.server.workers import supervise
from mailwing.services import metrics
from mailwing.services.auth import Authenticator, VerificationCache
from mailwing.services.capture import PASSWORD_FILE, Capture, apply_capture_mode, provision
from mailwing.services.context import AppContext
from mailwing.shared.background import GarbageCollector
from mailwing.shared.node import NodeShared, WorkerShared, open_worker, prepare_node
from mailwing.storage.errors import SchemaOutdated, StorageError
from mailwing.storage.interface import Storage

__all__ = ["HANDLERS", "RunningWorker", "StartupError", "load_handlers", "open_store",
           "run_async", "serve", "start_worker"]

log = logging.getLogger("mailwing.app")
T = TypeVar("T")

#: protocol -> (module, function) of its session handler.
HANDLERS: dict[str, tuple[str, str]] = {
    "lmtp": ("mailwing.server.lmtp_session", "handle_lmtp"),
    "pop3": ("mailwing.server.pop3_session", "handle_pop3"),
    "smtp": ("mailwing.server.smtp_session", "handle_smtp"),
    "imap": ("mailwing.server.imap_session", "handle_imap"),
}


class StartupError(Exception):
    """The server cannot start; the message is one line for the operator."""


def load_handlers(protocols: set[str] | None = None) -> dict[str, Handler]:
    """Import the session handlers of ``protocols`` (default all).

    Every protocol is written, so a handler that cannot be imported means a broken
    installation: :class:`StartupError` names the module and the reason, and the server
    does not start with a listener silently missing."""
    found: dict[str, Handler] = {}
    for protocol, (module_name, func) in HANDLERS.items():
        if protocols is not None and protocol not in protocols:
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise StartupError(f"cannot load the {protocol} session ({module_name}): "
                               f"{type(exc).__name__}: {exc}") from exc
        handler = getattr(module, func, None)
        if handler is None:
            raise StartupError(f"cannot load the {protocol} session: {module_name} has no "
                               f"{func}")
        found[protocol] = handler
    return found


def _tls_files(settings: Settings) -> tuple[Path, Path]:
    if settings.tls.cert_file:
        return Path(settings.tls.cert_file), Path(settings.tls.key_file)
    return ensure_self_signed(settings.server.data_dir, settings.server.hostname)


async def _preflight(settings: Settings) -> None:
    try:
        store = await open_store(settings)
    except StorageError as exc:
        raise StartupError(f"cannot open the database: {exc}") from exc
    try:
        await store.check_schema()
        if settings.capture.enabled:
            await provision(store, settings)
            where = ("capture.password" if settings.capture.password
                     else settings.server.data_dir / PASSWORD_FILE)
            log.info("capture mode: every message is kept, nothing is sent; log in as %s "
                     "with the password in %s", settings.capture.address, where)
    except SchemaOutdated as exc:
        raise StartupError(str(exc)) from exc
    except StorageError as exc:
        raise StartupError(f"cannot read the database: {exc}") from exc
    finally:
        await store.close()


@dataclass(frozen=True)
class _WorkerSetup:
    cert: Path
    key: Path
    session_key: bytes
    metrics_dir: Path | None


def _listener_status(group: ListenerGroup, admin: Any) -> list[Any]:
    from mailwing.admin.state import ListenerStatus

    live = metrics.live_connections()  # every worker's, when metrics are on
    if live is None:
        live = {}
        for conn in group.live:
            live[conn.listener] = live.get(conn.listener, 0) + 1
    out = []
    for name, host, port in group.bound:
        protocol, implicit, _, _ = LISTENERS[name]
        tls = "implicit" if implicit else ("none" if name in ("smtp", "lmtp") else "starttls")
        out.append(ListenerStatus(name, protocol, host, port, tls, live.get(name, 0)))
    if admin is not None:
        out += [ListenerStatus(name, "http", host, port, tls, 0)
                for name, host, port, tls in admin.bound]
    return out


async def _start_admin(settings: Settings, storage: Storage, group: ListenerGroup,
                       setup: _WorkerSetup, admin_throttle: Any = None) -> Any:
    """The admin HTTP listener of this worker (:mod:`mailwing.admin`), or None if disabled."""
    if not settings.admin.port:
        return None
    from mailwing.admin.server import AdminServer
    from mailwing.admin.state import AdminState

    holder: list[Any] = []
    state = AdminState(settings, storage, setup.session_key, shared_throttle=admin_throttle,
                       listeners=lambda: _listener_status(group, holder[0] if holder else None),
                       ready=lambda: bool(group.bound) or not group.handlers)
    acceptor = None
    if settings.admin.proxy_protocol:
        from mailwing.server.proxy import TrustedProxies, accept_proxied

        trusted = TrustedProxies(settings.server.proxy_trusted)

        async def acceptor(sock: socket.socket) -> tuple[str, int]:
            return (await accept_proxied(sock, trusted))[1]

    server = AdminServer(state, setup.cert, setup.key, proxy_acceptor=acceptor)
    holder.append(server)
    await server.start()
    return server


@dataclass
class RunningWorker:
    """What one worker runs on its event loop: storage, services, listeners and background
    tasks. ``mailwing serve`` runs one per process; the embeddable server runs one in the
    caller's loop (:mod:`mailwing.embed`)."""

    settings: Settings
    storage: Storage
    ctx: AppContext
    group: ListenerGroup
    shared: WorkerShared
    outbound: Any = None
    gc: GarbageCollector | None = None
    admin: Any = None
    background: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self, grace: float | None = None) -> None:
        """Stop the outbound worker, GC and admin listener, drain the sessions, end
        background work, close."""
        try:
            if self.outbound is not None:
                await self.outbound.stop()
            if self.gc is not None:
                await self.gc.stop()
            if self.admin is not None:
                await self.admin.stop()
            await self.group.shutdown(self.settings.server.shutdown_grace
                                      if grace is None else grace)
        finally:
            for task in self.background:
                task.cancel()
            await asyncio.gather(*self.background, return_exceptions=True)
            await self.ctx.auth.aclose()
            with contextlib.suppress(Exception):
                await self.shared.connections.close()
            await self.storage.close()


async def start_worker(settings: Settings, handlers: Mapping[str, Handler],
                       ssl_context: ssl.SSLContext | None, *,
                       node: NodeShared | None = None, index: int = 0,
                       storage: Storage | None = None,
                       sockets: Mapping[str, socket.socket] | None = None,
                       admin_setup: _WorkerSetup | None = None,
                       lmtp_socket: socket.socket | None = None) -> RunningWorker:
    """Open storage (unless given), build the services with the node's shared limits, bind
    the listeners (on ``sockets`` where given, by listener name), the admin HTTP listener
    (with ``admin_setup``), the LMTP UNIX socket (``lmtp_socket`` when the caller bound it)
    and start the background work (outbound queue, garbage
    collection, capture retention). Raises OSError when a listener cannot be bound
    (everything opened is closed again)."""
    node = node if node is not None else prepare_node(settings)
    storage = storage if storage is not None else await open_store(settings)
    shared = await open_worker(settings, node, index)
    cache = VerificationCache(settings.auth.cache_ttl, table=shared.cache_table,
                              key=node.cache_key)
    auth = Authenticator(storage, settings.auth, cache=cache, throttle=shared.throttle)
    log.info("node %s worker %d: login cache in node memory, limits shared through %s",
             node.name, index, shared.where)
    capture = Capture(storage, settings) if settings.capture.enabled else None
    ctx = AppContext(settings, storage, auth, capture=capture)
    group = ListenerGroup(ctx, handlers, ssl_context, sockets=sockets,
                          connections=shared.connections, lmtp_socket=lmtp_socket)
    worker = RunningWorker(settings, storage, ctx, group, shared)
    try:
        await group.start()
        if admin_setup is not None:
            worker.admin = await _start_admin(settings, storage, group, admin_setup,
                                                shared.admin_throttle)
    except BaseException:
        await worker.stop(0)
        raise
    if capture is not None:
        worker.background.append(asyncio.create_task(_retention_loop(capture)))
    worker.outbound = _start_outbound(storage, settings)
    if worker.outbound is not None:
        log.info("outbound queue: node %s worker %s takes per-message leases alongside "
                 "every other worker and node", node.name, worker.outbound.id)
    worker.gc = GarbageCollector(storage, f"{node.name}/{os.getpid()}",
                                 interval=parse_duration(settings.server.gc_interval),
                                 min_age=parse_duration(settings.server.gc_min_age))
    worker.gc.start()
    return worker


async def _worker_main(settings: Settings, handlers: dict[str, Handler],
                       ssl_context: ssl.SSLContext, node: NodeShared, index: int,
                       setup: _WorkerSetup, lmtp: UnixSocket | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics.setup({name: spec[0] for name, spec in LISTENERS.items()}, setup.metrics_dir)
    flusher = metrics.start_flushing()  # the hooks only add in-process: publish them
    try:
        return await _worker_run(settings, handlers, ssl_context, node, index, setup, stop,
                                 lmtp)
    finally:
        metrics.stop_flushing(flusher)  # after the drain: nothing recorded is lost


async def _worker_run(settings: Settings, handlers: dict[str, Handler],
                      ssl_context: ssl.SSLContext, node: NodeShared, index: int,
                      setup: _WorkerSetup, stop: asyncio.Event, lmtp: UnixSocket | None,
                      ) -> int:
    store = await open_store(settings)
    lock_stats = getattr(store, "write_lock_stats", None)  # SQLite's writers' queue
    if lock_stats is not None:
        metrics.watch_write_lock(lock_stats)
    storage = cast(Storage, metrics.TimedStorage(store))
    try:
        worker = await start_worker(settings, handlers, ssl_context, node=node, index=index,
                                    storage=storage, admin_setup=setup,
                                    lmtp_socket=lmtp.sock if lmtp is not None else None)
    except OSError as exc:
        log.error("%s", exc.strerror or exc)
        return 1
    if not worker.group.bound and worker.admin is None:
        log.warning("no listener is enabled with an implemented protocol")
    log.info("worker pid %d ready", os.getpid())
    await stop.wait()
    log.info("worker pid %d shutting down (%d session(s) live)",
             os.getpid(), len(worker.group.live))
    await worker.stop()
    log.info("worker pid %d stopped", os.getpid())
    return 0


async def _retention_loop(capture: Capture, every: float = 60.0) -> None:
    """Capture mode's retention rule, applied now and then (idempotent, so every worker may
    run it)."""
    while True:
        try:
            removed = await capture.enforce_retention()
        except StorageError as exc:
            log.warning("capture retention failed: %s", exc)
        else:
            if removed:
                log.info("capture retention removed %d message(s)", removed)
        await asyncio.sleep(every)


def _start_outbound(storage: Storage, settings: Settings) -> Any:
    """The outbound queue worker of this process (:mod:`mailwing.queue.worker`), or None."""
    if not settings.outbound.enabled:
        return None
    from mailwing.queue.worker import Worker

    worker = Worker(storage, settings)
    worker.start()
    return worker


def _lock_data_dir(data_dir: Path) -> int:
    """Hold an exclusive lock on ``data_dir/serve.lock`` for the life of this process tree.

    SO_REUSEPORT would otherwise let a second ``mailwing serve`` silently share the ports of a
    running one (same user) instead of failing; the lock turns that into a clear error."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "serve.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise StartupError(f"another mailwing serve (pid {other or '?'}) is running "
                           f"with data folder {data_dir}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def serve(settings: Settings) -> int:
    """Run the server until SIGTERM/SIGINT; the exit code (StartupError for start-up faults)."""
    lock = _lock_data_dir(settings.server.data_dir)
    try:
        return _serve_locked(settings)
    finally:
        with contextlib.suppress(OSError):
            os.close(lock)


def _serve_locked(settings: Settings) -> int:
    if settings.capture.enabled:
        apply_capture_mode(settings)
    run_async(lambda: _preflight(settings))
    try:
        cert, key = _tls_files(settings)
        build_server_context(cert, key)  # fail here, once, with a clear message
    except TlsSetupError as exc:
        raise StartupError(str(exc)) from exc
    enabled = enabled_listeners(settings)
    # the admin listener (protocol http) has no session handler: mailwing.admin serves it
    lmtp_path = settings.lmtp_socket_path
    handlers = load_handlers({spec.protocol for spec in enabled}
                             | ({"lmtp"} if lmtp_path is not None else set()))
    if not enabled and lmtp_path is None:
        log.warning("no listener is enabled (known: %s)", ", ".join(LISTENERS))

    node = prepare_node(settings)  # shared memory and cache key, inherited by the workers
    from mailwing.admin.state import load_session_key

    setup = _WorkerSetup(
        Path(cert), Path(key), load_session_key(settings.server.data_dir),
        metrics.prepare_multiprocess_dir(settings.server.data_dir)
        if settings.server.workers > 1 else None)

    lmtp: UnixSocket | None = None
    if lmtp_path is not None:  # bound here, once, and inherited by every worker
        try:
            lmtp = bind_unix_socket(lmtp_path, int(settings.lmtp.socket_mode, 8))
        except OSError as exc:
            raise StartupError(str(exc.strerror or exc)) from exc

    def run_worker(index: int = 0) -> int:
        ctx = build_server_context(cert, key)
        return run_async(lambda: _worker_main(settings, handlers, ctx, node, index, setup,
                                              lmtp))

    def unlink_lmtp() -> None:
        if lmtp is not None:
            with contextlib.suppress(OSError):
                os.unlink(lmtp.path)

    try:
        workers = settings.server.workers
        if workers == 1:
            return run_worker()
        log.info("starting %d worker processes", workers)
        on_exit = (functools.partial(metrics.process_exited, setup.metrics_dir)
                   if setup.metrics_dir is not None else None)
        return supervise(workers, run_worker, on_exit, on_stop=unlink_lmtp)
    finally:
        if lmtp is not None:
            lmtp.close()
