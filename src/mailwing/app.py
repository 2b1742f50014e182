"""Composition root: settings -> storage -> services -> listeners, plus signals and draining.

This is the only module that knows every layer. ``mailwing serve`` calls :func:`serve`:

1. pre-flight in the parent process: the database schema must be current (``SchemaOutdated``
   stops start-up with the message naming ``mailwing db upgrade``; serve never migrates or
   creates accounts), and the TLS certificate must load (a self-signed one is made first if
   none is configured);
2. protocol handlers are looked up by name; one not written yet (the SMTP, IMAP and admin
   listeners for now) is reported once and its listener is skipped;
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
from pathlib import Path
from typing import Any, TypeVar

from mailwing.config import LISTENERS, Settings, parse_duration
from mailwing.server.listeners import Handler, ListenerGroup, enabled_listeners
from mailwing.server.tls import TlsSetupError, build_server_context, ensure_self_signed
from mailwing.server.workers import supervise
from mailwing.services.auth import Authenticator, VerificationCache
from mailwing.services.context import AppContext
from mailwing.shared.background import GarbageCollector
from mailwing.shared.node import NodeShared, open_worker, prepare_node
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


async def _worker_main(settings: Settings, handlers: dict[str, Handler],
                       ssl_context: ssl.SSLContext, node: NodeShared, index: int) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    storage = await open_store(settings)
    shared = await open_worker(settings, node, index)
    cache = VerificationCache(settings.auth.cache_ttl, table=shared.cache_table,
                              key=node.cache_key)
    auth = Authenticator(storage, settings.auth, cache=cache, throttle=shared.throttle)
    log.info("node %s worker %d: login cache in node memory, limits shared through %s",
             node.name, index, shared.where)
    try:
        ctx = AppContext(settings, storage, auth)
        group = ListenerGroup(ctx, handlers, ssl_context, connections=shared.connections)
        try:
            await group.start()
        except OSError as exc:
            log.error("%s", exc.strerror or exc)
            return 1
        if not group.bound:
            log.warning("no listener is enabled with an implemented protocol")
        outbound = _start_outbound(storage, settings)
        if outbound is not None:
            log.info("outbound queue: node %s worker %s takes per-message leases alongside "
                     "every other worker and node", node.name, outbound.id)
        gc = GarbageCollector(storage, f"{node.name}/{os.getpid()}",
                              interval=parse_duration(settings.server.gc_interval),
                              min_age=parse_duration(settings.server.gc_min_age))
        gc.start()
        log.info("worker pid %d ready", os.getpid())
        await stop.wait()
        log.info("worker pid %d shutting down (%d session(s) live)",
                 os.getpid(), len(group.live))
        if outbound is not None:
            await outbound.stop()
        await gc.stop()
        await group.shutdown(settings.server.shutdown_grace)
    finally:
        await auth.aclose()
        with contextlib.suppress(Exception):
            await shared.connections.close()
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
        if spec.protocol not in handlers:
            log.info("listener %s on port %d: %s is not implemented yet, skipped",
                     spec.name, spec.port, spec.protocol)
    served = [s for s in enabled_listeners(settings) if s.protocol in handlers]
    if not served:
        log.warning("no enabled listener has an implemented protocol (known: %s)",
                    ", ".join(sorted({p for p, *_ in LISTENERS.values()})))

    node = prepare_node(settings)  # shared memory and cache key, inherited by the workers

    def run_worker(index: int = 0) -> int:
        ctx = build_server_context(cert, key)
        return run_async(lambda: _worker_main(settings, handlers, ctx, node, index))

    workers = settings.server.workers
    if workers == 1:
        return run_worker()
    log.info("starting %d worker processes", workers)
    return supervise(workers, run_worker)
