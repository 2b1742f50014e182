"""Composition root: settings -> storage -> services -> listeners, plus signals and draining.

This is the only module that knows every layer. ``mailwing serve`` calls :func:`serve`:

1. pre-flight in the parent process: the database schema must be current (``SchemaOutdated``
   stops start-up with the message naming ``mailwing db upgrade``; serve never migrates or
   creates accounts), and the TLS certificate must load (a self-signed one is made first if
   none is configured);
2. protocol handlers are looked up by name; one not written yet is reported once and its
   listener is skipped. The admin listener (protocol ``http``) is not a session handler: it
   is :class:`mailwing.admin.server.AdminServer`, started in each worker after the mail
   listeners, on the same event loop;
   metrics (:mod:`mailwing.services.metrics`) are switched on in each worker, in
   multiprocess mode under ``data_dir/metrics`` when there are several workers, and the
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
import importlib
import logging
import os
import signal
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from mailwing.config import LISTENERS, Settings
from mailwing.server.listeners import Handler, ListenerGroup, enabled_listeners
from mailwing.server.tls import TlsSetupError, build_server_context, ensure_self_signed
from mailwing.server.workers import supervise
from mailwing.services import metrics
from mailwing.services.auth import Authenticator
from mailwing.services.context import AppContext
from mailwing.storage.errors import SchemaOutdated, StorageError
from mailwing.storage.interface import Storage

__all__ = ["HANDLERS", "StartupError", "load_handlers", "open_store", "run_async", "serve"]

log = logging.getLogger("mailwing.app")
T = TypeVar("T")

#: protocol -> (module, function) of its session handler; modules may not exist yet.
HANDLERS: dict[str, tuple[str, str]] = {
    "pop3": ("mailwing.server.pop3_session", "handle_pop3"),
    "smtp": ("mailwing.server.smtp_session", "handle_smtp"),
    "imap": ("mailwing.server.imap_session", "handle_imap"),
}


class StartupError(Exception):
    """The server cannot start; the message is one line for the operator."""


def run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on a fresh event loop, uvloop's when available."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


async def open_store(settings: Settings) -> Storage:
    """Open the configured storage (creating the data folder first)."""
    from mailwing.storage import open_storage

    data_dir = settings.server.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    return await open_storage(settings.database_url, data_dir=data_dir)


def load_handlers(protocols: set[str] | None = None) -> dict[str, Handler]:
    """Import the session handlers that exist (for ``protocols``, default all)."""
    found: dict[str, Handler] = {}
    for protocol, (module_name, func) in HANDLERS.items():
        if protocols is not None and protocol not in protocols:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                log.exception("cannot import the %s session", protocol)
            continue
        except Exception:
            log.exception("cannot import the %s session", protocol)
            continue
        handler = getattr(module, func, None)
        if handler is not None:
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

    live: dict[str, int] = {}
    for conn in group.live:
        live[conn.listener] = live.get(conn.listener, 0) + 1
    out = []
    for name, host, port in group.bound:
        protocol, implicit, _, _ = LISTENERS[name]
        tls = "implicit" if implicit else ("none" if name == "smtp" else "starttls")
        out.append(ListenerStatus(name, protocol, host, port, tls, live.get(name, 0)))
    if admin is not None:
        out += [ListenerStatus(name, "http", host, port, tls, 0)
                for name, host, port, tls in admin.bound]
    return out


async def _start_admin(settings: Settings, storage: Storage, group: ListenerGroup,
                       setup: _WorkerSetup) -> Any:
    """The admin HTTP listener of this worker (:mod:`mailwing.admin`), or None if disabled."""
    if not settings.admin.port:
        return None
    from mailwing.admin.server import AdminServer
    from mailwing.admin.state import AdminState

    holder: list[Any] = []
    state = AdminState(settings, storage, setup.session_key,
                       listeners=lambda: _listener_status(group, holder[0] if holder else None),
                       ready=lambda: bool(group.bound) or not group.handlers)
    server = AdminServer(state, setup.cert, setup.key)
    holder.append(server)
    await server.start()
    return server


async def _worker_main(settings: Settings, handlers: dict[str, Handler],
                       ssl_context: ssl.SSLContext, setup: _WorkerSetup) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics.setup({name: spec[0] for name, spec in LISTENERS.items()}, setup.metrics_dir)
    storage = cast(Storage, metrics.TimedStorage(await open_store(settings)))
    auth = Authenticator(storage, settings.auth)
    admin = None
    try:
        ctx = AppContext(settings, storage, auth)
        group = ListenerGroup(ctx, handlers, ssl_context)
        try:
            await group.start()
        except OSError as exc:
            log.error("%s", exc.strerror or exc)
            return 1
        try:
            admin = await _start_admin(settings, storage, group, setup)
        except OSError as exc:
            log.error("%s", exc.strerror or exc)
            group.stop_accepting()
            return 1
        if not group.bound and admin is None:
            log.warning("no listener is enabled with an implemented protocol")
        outbound = _start_outbound(storage, settings)
        log.info("worker pid %d ready", os.getpid())
        await stop.wait()
        log.info("worker pid %d shutting down (%d session(s) live)",
                 os.getpid(), len(group.live))
        if outbound is not None:
            await outbound.stop()
        if admin is not None:
            await admin.stop()
        await group.shutdown(settings.server.shutdown_grace)
    finally:
        auth.close()
        await storage.close()
    log.info("worker pid %d stopped", os.getpid())
    return 0


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
    run_async(lambda: _preflight(settings))
    try:
        cert, key = _tls_files(settings)
        build_server_context(cert, key)  # fail here, once, with a clear message
    except TlsSetupError as exc:
        raise StartupError(str(exc)) from exc
    handlers = load_handlers()
    for spec in enabled_listeners(settings):
        if spec.protocol not in handlers and spec.protocol != "http":
            log.info("listener %s on port %d: %s is not implemented yet, skipped",
                     spec.name, spec.port, spec.protocol)
    served = [s for s in enabled_listeners(settings)
              if s.protocol in handlers or s.protocol == "http"]
    if not served:
        log.warning("no enabled listener has an implemented protocol (known: %s)",
                    ", ".join(sorted({p for p, *_ in LISTENERS.values()})))

    workers = settings.server.workers
    from mailwing.admin.state import load_session_key

    setup = _WorkerSetup(
        Path(cert), Path(key), load_session_key(settings.server.data_dir),
        metrics.prepare_multiprocess_dir(settings.server.data_dir) if workers > 1 else None)

    def run_worker(_index: int = 0) -> int:
        ctx = build_server_context(cert, key)
        return run_async(lambda: _worker_main(settings, handlers, ctx, setup))

    if workers == 1:
        return run_worker()
    log.info("starting %d worker processes", workers)
    return supervise(workers, run_worker)
