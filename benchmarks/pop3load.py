"""A POP3 load generator that works against any POP3 server (mailwing, Dovecot, ...).

Why raw sockets and not :mod:`poplib`: poplib reads a RETR line by line in Python, which costs
more CPU than a fast server spends sending it, so the benchmark would measure the client. Here
each multi-line answer is read with one ``readuntil`` per terminator, and the clients are spread
over several *processes* (each with its own event loop, uvloop when installed) so that on a
small machine the generator is not what saturates first.

Every session is: connect, USER/PASS, LIST, RETR each listed message, QUIT (never DELE), so the
mailboxes stay as they were and repeated sessions see the same work.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import statistics
import time
from dataclasses import dataclass, field

__all__ = ["LoadResult", "Pop3Error", "pop3_session", "retr_throughput", "run_load",
           "warm_logins"]

#: Largest answer the client accepts in one read (the 25 MB message plus slack).
READ_LIMIT = 64 * 1024 * 1024
#: A single command may take at most this long before the session counts as failed.
OP_TIMEOUT = 60.0


class Pop3Error(Exception):
    """The server answered -ERR or something that is not POP3."""


@dataclass
class LoadResult:
    """What one load run measured (summed over every client process)."""

    sessions: int = 0
    messages: int = 0
    octets: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    client_cpu: float = 0.0  # CPU seconds the load generator itself used
    first_error: str = ""

    @property
    def client_cpu_share(self) -> float:
        """Load generator CPU as a share of the machine (1.0 = every core busy)."""
        cores = os.cpu_count() or 1
        return self.client_cpu / self.elapsed / cores if self.elapsed else 0.0

    @property
    def sessions_per_s(self) -> float:
        return self.sessions / self.elapsed if self.elapsed else 0.0

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.elapsed if self.elapsed else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.octets / self.elapsed / 1e6 if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        """Session latency in seconds at percentile ``p`` (0-100); 0 when nothing ran."""
        if not self.latencies:
            return 0.0
        if len(self.latencies) == 1:
            return self.latencies[0]
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[min(98, max(0, round(p) - 1))]


async def _status(reader: asyncio.StreamReader) -> bytes:
    line = await asyncio.wait_for(reader.readuntil(b"\r\n"), OP_TIMEOUT)
    if not line.startswith(b"+OK"):
        raise Pop3Error(line[:200].decode("latin-1").rstrip())
    return line


async def _multiline(reader: asyncio.StreamReader) -> bytes:
    """Read a multi-line answer after its status line, up to and including CRLF.CRLF.

    ``.\\r\\n`` is searched rather than ``\\r\\n.\\r\\n`` so that an empty body (terminator
    directly after the status line) is also recognised; a ``.\\r\\n`` that merely ends a text
    line is kept and the search goes on.
    """
    parts: list[bytes] = []
    while True:
        chunk = await asyncio.wait_for(reader.readuntil(b".\r\n"), OP_TIMEOUT)
        if not parts and chunk == b".\r\n":
            return chunk
        parts.append(chunk)
        if chunk.endswith(b"\r\n.\r\n") or (len(chunk) == 3 and parts[-2].endswith(b"\r\n")):
            return b"".join(parts)


async def pop3_session(host: str, port: int, user: str, password: str) -> tuple[int, int]:
    """One full session; returns (messages retrieved, octets received for them)."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, limit=READ_LIMIT), OP_TIMEOUT
    )
    try:
        await _status(reader)
        writer.write(b"USER " + user.encode() + b"\r\n")
        await _status(reader)
        writer.write(b"PASS " + password.encode() + b"\r\n")
        await _status(reader)
        writer.write(b"LIST\r\n")
        await _status(reader)
        listing = await _multiline(reader)
        numbers = [ln.split(b" ", 1)[0] for ln in listing.split(b"\r\n")[:-2] if ln]
        octets = 0
        for num in numbers:
            writer.write(b"RETR " + num + b"\r\n")
            await _status(reader)
            octets += len(await _multiline(reader))
        writer.write(b"QUIT\r\n")
        await _status(reader)
        return len(numbers), octets
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _client(host: str, port: int, creds: tuple[str, str], deadline: float,
                  max_sessions: int, out: LoadResult) -> None:
    """Repeat sessions until ``deadline`` (monotonic) or ``max_sessions``, whichever first."""
    for _ in range(max_sessions):
        if time.monotonic() >= deadline:
            return
        t0 = time.perf_counter()
        try:
            msgs, octets = await pop3_session(host, port, *creds)
        except (TimeoutError, OSError, Pop3Error, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as exc:
            out.errors += 1
            out.first_error = out.first_error or f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.05)  # a refused connection must not become a busy loop
            continue
        out.latencies.append(time.perf_counter() - t0)
        out.sessions += 1
        out.messages += msgs
        out.octets += octets


async def _run_clients(host: str, port: int, creds: list[tuple[str, str]], start_at: float,
                       duration: float, max_sessions: int) -> LoadResult:
    out = LoadResult()
    # Every process waits for the same wall-clock instant so that they load the server together.
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + duration
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.gather(*(_client(host, port, c, deadline, max_sessions, out) for c in creds))
    out.elapsed = time.perf_counter() - t0
    out.client_cpu = time.process_time() - cpu0
    return out


def _init_worker() -> None:
    """Ctrl-C is handled by the parent, which then terminates the pool with SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _worker(args: tuple[str, int, list[tuple[str, str]], float, float, int]) -> LoadResult:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return asyncio.run(_run_clients(*args))
    return uvloop.run(_run_clients(*args))


def run_load(host: str, port: int, creds: list[tuple[str, str]], duration: float,
             processes: int = 2, max_sessions: int = 1_000_000) -> LoadResult:
    """Run ``len(creds)`` concurrent clients for ``duration`` seconds across ``processes``.

    Clients in progress when the time is up finish their session (each command is bounded by
    :data:`OP_TIMEOUT`), so elapsed time is measured to the end of the last one.
    """
    processes = max(1, min(processes, len(creds)))
    shares = [creds[i::processes] for i in range(processes)]
    start_at = time.time() + 0.5
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes, initializer=_init_worker) as pool:
        parts = pool.map(
            _worker, [(host, port, s, start_at, duration, max_sessions) for s in shares]
        )
    total = LoadResult()
    for part in parts:
        total.sessions += part.sessions
        total.messages += part.messages
        total.octets += part.octets
        total.errors += part.errors
        total.client_cpu += part.client_cpu
        total.latencies.extend(part.latencies)
        total.elapsed = max(total.elapsed, part.elapsed)
        total.first_error = total.first_error or part.first_error
    return total


async def _login_once(host: str, port: int, user: str, password: str) -> None:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), OP_TIMEOUT)
    try:
        await _status(reader)
        for cmd in (b"USER " + user.encode(), b"PASS " + password.encode(), b"QUIT"):
            writer.write(cmd + b"\r\n")
            await _status(reader)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _warm_logins(host: str, port: int, creds: list[tuple[str, str]], rounds: int,
                       concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)
    failures = 0

    async def one(user: str, password: str) -> None:
        nonlocal failures
        async with gate:
            try:
                await _login_once(host, port, user, password)
            except (OSError, TimeoutError, Pop3Error, asyncio.IncompleteReadError):
                failures += 1

    await asyncio.gather(*(one(*c) for _ in range(rounds) for c in creds))
    return failures


def warm_logins(host: str, port: int, creds: list[tuple[str, str]], rounds: int,
                concurrency: int = 16) -> int:
    """Log every user in ``rounds`` times (USER, PASS, QUIT); return the number of failures.

    Why: a server with several worker processes has one password cache per process, and the
    kernel picks the process per connection, so a few timed seconds of load do not warm every
    (user, process) pair. With ``rounds`` = 8 x workers, the chance that a user never reached
    one of two workers is 2 x 2^-16."""
    return asyncio.run(_warm_logins(host, port, sorted(set(creds)), rounds, concurrency))


async def _retr_once(host: str, port: int, user: str, password: str) -> tuple[int, float]:
    reader, writer = await asyncio.open_connection(host, port, limit=READ_LIMIT)
    try:
        await _status(reader)
        for cmd in (b"USER " + user.encode(), b"PASS " + password.encode()):
            writer.write(cmd + b"\r\n")
            await _status(reader)
        t0 = time.perf_counter()
        writer.write(b"RETR 1\r\n")
        await _status(reader)
        size = len(await _multiline(reader))
        elapsed = time.perf_counter() - t0
        writer.write(b"QUIT\r\n")
        await _status(reader)
        return size, elapsed
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def retr_throughput(host: str, port: int, user: str, password: str, repeat: int = 3
                    ) -> tuple[int, float]:
    """Single client: RETR message 1 ``repeat`` times; return (octets, best MB/s)."""
    best = 0.0
    size = 0
    for _ in range(max(1, repeat)):
        size, elapsed = asyncio.run(_retr_once(host, port, user, password))
        best = max(best, size / elapsed / 1e6)
    return size, best
