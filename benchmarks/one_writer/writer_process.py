"""An experiment, not part of mailwing: one SQLite writer *process* per node (issue #9).

The README's "Performance" section names this design as what the IMAP mixed load needs:
today each worker process has its own writer thread, the two take turns on SQLite's write
lock, and the holder spends about half of its holding time off the CPU (waiting for the GIL
its own event loop holds, or for a core). Here one process with no event loop and no other
thread runs every worker's write scripts: it never waits for a GIL while it holds the lock,
the lock never passes between processes, and one commit carries both workers' requests.

It is measured by running the unchanged benchmarks with :mod:`sitecustomize` of this folder
on ``PYTHONPATH`` (see README.md here). What it leaves out, because a measurement does not
need it: restarting a writer that died, metrics of the writer, and a way to run a script that
:func:`describe` cannot name (it then runs on the worker's own writer thread, as today).

How a script crosses the socket: mailwing's transaction scripts are generators, made by
calling a module-level generator function. A generator that has not started holds exactly its
arguments in its frame, so it is sent as (module, function name, arguments) and made again
in the writer; a script given to another script as an argument (``with_changes(append(...))``)
is sent the same way, nested. Results and errors go back pickled.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import pickle
import selectors
import socket
import struct
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailwing.storage.blobs import BlobStore
from mailwing.storage.errors import TemporaryStorageError
from mailwing.storage.sqlite.broadcast import Broadcaster, notify_dir
from mailwing.storage.sqlite.executor import SqliteExecutor, Work
from mailwing.storage.sqlite.runner import MAX_BATCH, POST_WAIT

_HEAD = struct.Struct("!I")
_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08

Described = tuple[str, str, tuple[Any, ...], dict[str, Any]]


class _Nested(tuple):
    """A script passed as an argument of another, described."""


class _Undescribable(Exception):
    pass


def describe(gen: Any) -> Described | None:
    """(module, function, args, kwargs) that make ``gen`` again, or None (not a
    module-level generator function's, or already started)."""
    try:
        return _describe(gen)
    except _Undescribable:
        return None


def _describe(gen: Any) -> Described:
    frame = getattr(gen, "gi_frame", None)
    if not isinstance(gen, types.GeneratorType) or frame is None or gen.gi_suspended \
            or gen.gi_running:
        raise _Undescribable(f"{gen!r} has started")
    code = gen.gi_code
    func = frame.f_globals.get(code.co_name)
    if getattr(func, "__code__", None) is not code:
        # a nested function or a method: there is no name to make it again by
        raise _Undescribable(code.co_qualname)
    local = frame.f_locals
    names = code.co_varnames
    npos, nkw = code.co_argcount, code.co_kwonlyargcount
    args = [_wrap(local[n]) for n in names[:npos]]
    kwargs = {n: _wrap(local[n]) for n in names[npos:npos + nkw]}
    i = npos + nkw
    if code.co_flags & _CO_VARARGS:
        args.extend(_wrap(v) for v in local[names[i]])
        i += 1
    if code.co_flags & _CO_VARKEYWORDS:
        kwargs.update({k: _wrap(v) for k, v in local[names[i]].items()})
    return frame.f_globals["__name__"], code.co_name, tuple(args), kwargs


def _wrap(value: Any) -> Any:
    if isinstance(value, types.GeneratorType):
        return _Nested(_describe(value))
    return value


def rebuild(module: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    func = getattr(importlib.import_module(module), name)
    return func(*[_unwrap(a) for a in args], **{k: _unwrap(v) for k, v in kwargs.items()})


def _unwrap(value: Any) -> Any:
    return rebuild(*value) if isinstance(value, _Nested) else value


def close_described(gen: Any) -> None:
    """Close ``gen`` and the scripts nested in its arguments (never started: no side effect)."""
    frame = gen.gi_frame
    inner = [v for v in frame.f_locals.values() if isinstance(v, types.GeneratorType)]
    gen.close()
    for script in inner:
        close_described(script)


def _frame(body: bytes) -> bytes:
    return _HEAD.pack(len(body)) + body


def _frames(buf: bytearray) -> list[Any]:
    out = []
    while len(buf) >= 4:
        (size,) = _HEAD.unpack_from(buf)
        if len(buf) < 4 + size:
            break
        out.append(pickle.loads(bytes(buf[4:4 + size])))
        del buf[:4 + size]
    return out


# -- the writer process ----------------------------------------------------------------------
class _Job(Work):
    __slots__ = ("conn", "ident", "key")
    conn: socket.socket
    ident: int  # negative: posted content, whose caller only counts it done
    key: str | None  # posted content: its digest


def serve(database: Path, data_dir: Path, address: str, *, busy_timeout: float = 5.0) -> None:
    """Serve write scripts on the Unix socket ``address`` until killed; blocking, one thread.

    Each round takes every request that has arrived from every worker (up to
    :data:`MAX_BATCH`) into one transaction: the same executor, savepoints, commit and
    change broadcast as a worker's writer thread."""
    broadcaster = Broadcaster(notify_dir(database))
    executor = SqliteExecutor(database, BlobStore(data_dir / "blobs"),
                              busy_timeout=busy_timeout, on_change=broadcaster.send)
    with contextlib.suppress(OSError):
        os.unlink(address)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    buffers: dict[socket.socket, bytearray] = {}
    pending: list[_Job] = []
    stats = os.environ.get("MAILWING_EXPERIMENT_WRITER_STATS")
    #: how long a request waits for others to share its commit (0: none, commit at once)
    linger = float(os.environ.get("MAILWING_EXPERIMENT_WRITER_LINGER", "0"))
    gather_until = next_stats = 0.0
    while True:
        if stats and time.monotonic() >= next_stats:
            _write_stats(stats, executor)
            next_stats = time.monotonic() + 1.0
        only_posted = bool(pending) and all(job.key is not None for job in pending)
        if not pending:
            timeout: float | None = None
        elif only_posted:
            timeout = POST_WAIT
        else:
            if not gather_until:
                gather_until = time.monotonic() + linger
            timeout = max(0.0, gather_until - time.monotonic())
        events = selector.select(timeout)
        for key, _mask in events:
            if key.data is None:
                conn, _ = listener.accept()
                conn.setblocking(False)
                buffers[conn] = bytearray()
                selector.register(conn, selectors.EVENT_READ, conn)
                continue
            conn = key.data
            try:
                data = conn.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                selector.unregister(conn)
                del buffers[conn]
                conn.close()
                continue
            buf = buffers[conn]
            buf += data
            for ident, posted_key, write, described in _frames(buf):
                job = _Job(rebuild(*described), write)
                job.conn, job.ident, job.key = conn, ident, posted_key
                job.single = posted_key is not None
                pending.append(job)
        if not pending or (only_posted and events):
            continue  # posted content lingers for the request that links it
        if gather_until and time.monotonic() < gather_until and len(pending) < MAX_BATCH:
            continue  # lingering for more requests to share the commit
        gather_until = 0.0
        batch, pending = pending[:MAX_BATCH], pending[MAX_BATCH:]
        executor.run_batch(batch)  # committed (and broadcast) when it returns
        _reply(batch)


def _write_stats(path: str, executor: SqliteExecutor) -> None:
    """Transactions and requests so far, and the writers' lock counters, as one line in
    ``path`` (the caller rewrites it at most once a second), for comparing batch sizes."""
    now = time.monotonic()
    lock = executor.writers
    held = (lock.taken, lock.held_seconds, lock.held_cpu_seconds) if lock else (0, 0.0, 0.0)
    with contextlib.suppress(OSError), open(path, "w") as out:
        out.write(f"{now:.3f} {executor.transactions} {executor.requests} "
                  f"{held[0]} {held[1]:.3f} {held[2]:.3f}\n")


def _reply(batch: list[_Job]) -> None:
    out: dict[socket.socket, list[bytes]] = {}
    for job in batch:
        try:
            body = pickle.dumps((job.ident, job.error, job.result), 5)
        except Exception as exc:  # an unpicklable result
            body = pickle.dumps((job.ident, TemporaryStorageError(repr(exc)), None), 5)
        out.setdefault(job.conn, []).append(_frame(body))
    for conn, frames in out.items():
        if conn.fileno() < 0:
            continue  # that worker is gone
        conn.setblocking(True)
        with contextlib.suppress(OSError):
            conn.sendall(b"".join(frames))
        conn.setblocking(False)


# -- a worker's side -------------------------------------------------------------------------
class WriterClient(asyncio.Protocol):
    """One connection to the writer process, on the worker's event loop."""

    def __init__(self, address: str, on_posted: Callable[[str], None]) -> None:
        self._address = address
        self._on_posted = on_posted  # a posted content has committed (or failed)
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._futures: dict[int, asyncio.Future[Any]] = {}
        self._posted: dict[int, str] = {}
        self._next = 0

    @property
    def connected(self) -> bool:
        return self._transport is not None

    async def connect(self, *, tries: int = 100) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(tries):
            with contextlib.suppress(OSError):
                await loop.create_unix_connection(lambda: self, self._address)
                return
            await asyncio.sleep(0.05)
        raise TemporaryStorageError(f"no writer process at {self._address}")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        for key in self._posted.values():
            self._on_posted(key)
        self._posted.clear()
        for future in self._futures.values():
            if not future.done():
                future.set_exception(TemporaryStorageError("the writer process is gone"))
        self._futures.clear()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        for ident, error, result in _frames(self._buf):
            if ident < 0:
                self._on_posted(self._posted.pop(ident))
                continue
            future = self._futures.pop(ident, None)
            if future is None or future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    async def run(self, described: Described, write: bool) -> Any:
        if self._transport is None:
            raise TemporaryStorageError("the writer process is gone")
        self._next += 1
        ident = self._next
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._futures[ident] = future
        self._transport.write(_frame(pickle.dumps((ident, None, write, described), 5)))
        return await future

    def post(self, described: Described, key: str) -> None:
        if self._transport is None:
            raise TemporaryStorageError("the writer process is gone")
        self._next += 1
        ident = -self._next
        self._posted[ident] = key
        self._transport.write(_frame(pickle.dumps((ident, key, True, described), 5)))
