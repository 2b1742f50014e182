"""An IMAP4rev1 load generator that works against any IMAP server (mailwing, Dovecot, ...).

Why raw sockets and not :mod:`imaplib`: imaplib reads every response line by line in Python
and copies literals several times, which costs more CPU than a fast server spends producing
them, so the benchmark would measure the client. Here a response is scanned for line ends and
literals (RFC 3501 section 4.3: ``{n}`` CRLF then n octets) in one buffer, a large literal is
read with one ``readexactly``, and the clients are spread over several *processes* (each with
its own event loop, uvloop when installed).

Two workloads (:func:`set_workload`, before :func:`run_load` forks its processes):

- ``issue`` (the default of imap_bench.py, the workload of issue #9): LOGIN, SELECT INBOX,
  FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE), FETCH 1:* BODY.PEEK[], STORE 1:* +FLAGS (\\Seen),
  LOGOUT; the two FETCH 1:* answers must hold one FETCH per EXISTS;
- ``client``, described below.

Every ``client`` session is the day-to-day work of a mail client opening a folder (RFC 3501
section 6): LOGIN, SELECT INBOX, FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE), a few
FETCH n BODY.PEEK[] of random messages, STORE n +FLAGS (\\Flagged), SEARCH SUBJECT,
LOGOUT. Each command is timed on its own; the tagged answer must be OK, and the FETCH 1:*
answer must hold one FETCH per EXISTS.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import re
import signal
import statistics
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["COMMANDS", "ImapConn", "ImapError", "LoadResult", "body_throughput", "prime",
           "run_load", "set_workload", "warm_logins"]

#: A single command may take at most this long before the session counts as failed.
OP_TIMEOUT = 60.0
#: Stream buffer of the large-body client: with asyncio's default (64 KB) the transport is
#: paused and resumed every 128 KB of a 25 MB literal.
BIG_READ_LIMIT = 4 * 1024 * 1024
#: Random full-body fetches per session.
BODY_FETCHES = 3
#: Command labels, in session order (the report prints them in this order).
COMMANDS = ("LOGIN", "SELECT", "FETCH 1:*", "FETCH BODY[]", "FETCH 1:* BODY[]", "STORE",
            "STORE 1:*", "SEARCH", "LOGOUT")

T = TypeVar("T")
_LITERAL = re.compile(rb"\{(\d+)\+?\}$")
_EXISTS = re.compile(rb"^\* (\d+) EXISTS\r?$", re.M)


class ImapError(Exception):
    """The server answered NO/BAD/BYE, or something that is not IMAP."""


def quote(text: str) -> bytes:
    """An IMAP quoted string (RFC 3501 section 4.3)."""
    return b'"' + text.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'


class ImapConn:
    """One client connection: send a tagged command, read everything up to its tagged answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.counter = 0

    @classmethod
    async def open(cls, host: str, port: int, limit: int = 2 ** 16) -> ImapConn:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=limit), OP_TIMEOUT)
        conn = cls(reader, writer)
        greeting = await conn._line()
        if not greeting.startswith(b"* OK"):
            conn.close()
            raise ImapError(f"greeting: {greeting[:200]!r}")
        return conn

    async def _fill(self) -> None:
        data = await asyncio.wait_for(self.reader.read(1 << 18), OP_TIMEOUT)
        if not data:
            raise ImapError("connection closed by the server")
        self.buf += data

    async def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            await self._fill()
        line = bytes(self.buf[: end + 2])
        del self.buf[: end + 2]
        return line

    async def command(self, text: bytes) -> bytes:
        """Send ``TAG text`` and return the whole answer (untagged lines, literals, tagged line).

        Raises :class:`ImapError` unless the tagged status is OK."""
        self.counter += 1
        tag = b"A%04d" % self.counter
        self.writer.write(tag + b" " + text + b"\r\n")
        return await self.response(tag)

    async def response(self, tag: bytes) -> bytes:
        buf = self.buf
        prefix = tag + b" "
        # line_start: start of the logical line; seg: where its text after the last literal
        # starts; scan: where to look for the next CRLF.
        line_start = seg = scan = 0
        while True:
            end = buf.find(b"\r\n", scan)
            if end < 0:
                scan = max(scan, len(buf) - 1)
                await self._fill()
                continue
            literal = _LITERAL.search(buf, max(seg, end - 24), end)
            if literal:
                need = end + 2 + int(literal.group(1))
                if len(buf) < need:
                    buf += await asyncio.wait_for(
                        self.reader.readexactly(need - len(buf)), OP_TIMEOUT)
                seg = scan = need  # the same logical line goes on after the literal
                continue
            if buf.startswith(prefix, line_start):
                answer = bytes(buf[: end + 2])
                del buf[: end + 2]
                status = answer[line_start + len(prefix): line_start + len(prefix) + 3]
                if status != b"OK ":
                    raise ImapError(answer[line_start: line_start + 300].decode("latin-1")
                                    .rstrip())
                return answer
            line_start = seg = scan = end + 2

    async def fetch_literal(self, text: bytes) -> int:
        """Send ``TAG text`` whose answer starts with one literal (``FETCH n BODY[]``), read
        the literal in 1 MB pieces without keeping it (as a client that writes it to disk
        does), then the rest of the answer; return the literal's size.

        Why not :meth:`response`: it keeps the whole answer in one buffer and copies it
        several times, which for a 25 MB body measures this client's memory copies more
        than the server (issue #9's large-message target)."""
        self.counter += 1
        tag = b"A%04d" % self.counter
        self.writer.write(tag + b" " + text + b"\r\n")
        first = await self._line()
        found = _LITERAL.search(first, 0, len(first) - 2)
        if not found:
            raise ImapError(f"no literal in the answer: {first[:200]!r}")
        size = left = int(found.group(1))
        take = min(left, len(self.buf))
        del self.buf[:take]
        left -= take
        while left:
            piece = await asyncio.wait_for(self.reader.read(min(left, 1 << 20)), OP_TIMEOUT)
            if not piece:
                raise ImapError("connection closed by the server")
            left -= len(piece)
        await self.response(tag)
        return size

    def close(self) -> None:
        self.writer.close()


@dataclass
class LoadResult:
    """What one load run measured (summed over every client process)."""

    sessions: int = 0
    ops: int = 0
    octets: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    client_cpu: float = 0.0  # CPU seconds the load generator itself used
    first_error: str = ""

    def add(self, other: LoadResult) -> None:
        self.sessions += other.sessions
        self.ops += other.ops
        self.octets += other.octets
        self.errors += other.errors
        self.client_cpu += other.client_cpu
        self.elapsed = max(self.elapsed, other.elapsed)
        self.first_error = self.first_error or other.first_error
        for name, values in other.latencies.items():
            self.latencies.setdefault(name, []).extend(values)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.elapsed if self.elapsed else 0.0

    @property
    def sessions_per_s(self) -> float:
        return self.sessions / self.elapsed if self.elapsed else 0.0

    @property
    def client_cpu_share(self) -> float:
        cores = os.cpu_count() or 1
        return self.client_cpu / self.elapsed / cores if self.elapsed else 0.0

    def percentile(self, name: str, p: float) -> float:
        """Latency of command ``name`` in seconds at percentile ``p`` (0-100)."""
        values = self.latencies.get(name, [])
        if len(values) < 2:
            return values[0] if values else 0.0
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return cuts[min(98, max(0, round(p) - 1))]


async def imap_session(host: str, port: int, user: str, password: str, rng: random.Random,
                       out: LoadResult) -> None:
    """One full session; every command's latency goes into ``out`` as soon as it is answered,
    the session is counted by the caller only when all of it succeeded."""
    times: list[tuple[str, float]] = []
    octets = 0

    async def timed(name: str, text: bytes) -> bytes:
        t0 = time.perf_counter()
        answer = await conn.command(text)
        times.append((name, time.perf_counter() - t0))
        return answer

    conn = await ImapConn.open(host, port)
    try:
        await timed("LOGIN", b"LOGIN " + quote(user) + b" " + quote(password))
        selected = await timed("SELECT", b"SELECT INBOX")
        found = _EXISTS.search(selected)
        exists = int(found.group(1)) if found else 0
        if exists:
            listing = await timed("FETCH 1:*", b"FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE)")
            octets += len(listing)
            if listing.count(b" FETCH (") < exists:
                raise ImapError(f"FETCH 1:* answered {listing.count(b' FETCH (')} of "
                                f"{exists} messages")
            for _ in range(BODY_FETCHES):
                n = rng.randint(1, exists)
                octets += len(await timed("FETCH BODY[]", b"FETCH %d BODY.PEEK[]" % n))
            await timed("STORE", b"STORE %d +FLAGS (\\Flagged)" % rng.randint(1, exists))
        await timed("SEARCH", b'SEARCH SUBJECT "message %d"' % rng.randint(1, 999))
        await timed("LOGOUT", b"LOGOUT")
    finally:
        conn.close()
        with contextlib.suppress(Exception):
            await conn.writer.wait_closed()
    for name, seconds in times:
        out.latencies.setdefault(name, []).append(seconds)
    out.ops += len(times)
    out.octets += octets
    out.sessions += 1


async def issue_session(host: str, port: int, user: str, password: str, rng: random.Random,
                        out: LoadResult) -> None:
    """The session of issue #9 (module docstring); counted like :func:`imap_session`."""
    times: list[tuple[str, float]] = []
    octets = 0

    async def timed(name: str, text: bytes) -> bytes:
        t0 = time.perf_counter()
        answer = await conn.command(text)
        times.append((name, time.perf_counter() - t0))
        return answer

    conn = await ImapConn.open(host, port)
    try:
        await timed("LOGIN", b"LOGIN " + quote(user) + b" " + quote(password))
        found = _EXISTS.search(await timed("SELECT", b"SELECT INBOX"))
        exists = int(found.group(1)) if found else 0
        if exists:
            for name, text in (("FETCH 1:*", b"FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)"),
                               ("FETCH 1:* BODY[]", b"FETCH 1:* BODY.PEEK[]")):
                listing = await timed(name, text)
                octets += len(listing)
                if listing.count(b" FETCH (") < exists:
                    raise ImapError(f"{name} answered {listing.count(b' FETCH (')} of "
                                    f"{exists} messages")
            await timed("STORE 1:*", b"STORE 1:* +FLAGS (\\Seen)")
        await timed("LOGOUT", b"LOGOUT")
    finally:
        conn.close()
        with contextlib.suppress(Exception):
            await conn.writer.wait_closed()
    for name, seconds in times:
        out.latencies.setdefault(name, []).append(seconds)
    out.ops += len(times)
    out.octets += octets
    out.sessions += 1


_SESSIONS = {"client": imap_session, "issue": issue_session}
_session = imap_session


def set_workload(name: str) -> None:
    """``client`` or ``issue``; call before :func:`run_load` (its processes are forked)."""
    global _session
    _session = _SESSIONS[name]


_FAILURES = (TimeoutError, OSError, ImapError, asyncio.IncompleteReadError, ValueError)


async def _client(host: str, port: int, creds: tuple[str, str], deadline: float,
                  out: LoadResult, seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        try:
            await _session(host, port, *creds, rng, out)
        except _FAILURES as exc:
            out.errors += 1
            out.first_error = out.first_error or f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.05)  # a refused connection must not become a busy loop


async def _run_clients(host: str, port: int, creds: list[tuple[str, str]], start_at: float,
                       duration: float, seed: int) -> LoadResult:
    out = LoadResult()
    await asyncio.sleep(max(0.0, start_at - time.time()))  # all processes start together
    deadline = time.monotonic() + duration
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.gather(*(_client(host, port, c, deadline, out, seed * 1000 + i)
                           for i, c in enumerate(creds)))
    out.elapsed = time.perf_counter() - t0
    out.client_cpu = time.process_time() - cpu0
    return out


def _init_worker() -> None:
    """Ctrl-C is handled by the parent, which then terminates the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when installed (the generator must stay cheaper than servers)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _worker(args: tuple[str, int, list[tuple[str, str]], float, float, int]) -> LoadResult:
    return _run(_run_clients(*args))


def run_load(host: str, port: int, creds: list[tuple[str, str]], duration: float,
             processes: int = 2) -> LoadResult:
    """``len(creds)`` concurrent clients for ``duration`` seconds across ``processes``.

    Sessions running when the time is up are finished (each command bounded by
    :data:`OP_TIMEOUT`); the elapsed time runs to the end of the last one."""
    processes = max(1, min(processes, len(creds)))
    shares = [creds[i::processes] for i in range(processes)]
    start_at = time.time() + 0.5
    with multiprocessing.get_context("fork").Pool(processes, initializer=_init_worker) as pool:
        parts = pool.map(_worker, [(host, port, s, start_at, duration, i)
                                   for i, s in enumerate(shares)])
    total = LoadResult()
    for part in parts:
        total.add(part)
    return total


async def _prime(host: str, port: int, creds: list[tuple[str, str]]) -> LoadResult:
    out = LoadResult()
    rng = random.Random(0)

    async def one(user: str, password: str) -> None:
        try:
            await _session(host, port, user, password, rng, out)
        except _FAILURES as exc:
            out.errors += 1
            out.first_error = out.first_error or f"{type(exc).__name__}: {exc}"

    await asyncio.gather(*(one(*c) for c in creds))
    return out


def prime(host: str, port: int, creds: list[tuple[str, str]]) -> LoadResult:
    """One session per distinct user, all at once, untimed.

    Why: the first ``FETCH 1:* (... ENVELOPE ...)`` of a mailbox is when servers build what
    they cache (Dovecot's index and cache files, mailwing's per-content ENVELOPE cache); a
    short warm-up does not reach every mailbox at low client counts, and that one-off cost
    would then land in the first measured row only."""
    return _run(_prime(host, port, sorted(set(creds))))


async def _warm_logins(host: str, port: int, creds: list[tuple[str, str]], rounds: int,
                       concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)
    failures = 0

    async def one(user: str, password: str) -> None:
        nonlocal failures
        async with gate:
            try:
                conn = await ImapConn.open(host, port)
                try:
                    await conn.command(b"LOGIN " + quote(user) + b" " + quote(password))
                    await conn.command(b"LOGOUT")
                finally:
                    conn.close()
            except _FAILURES:
                failures += 1

    await asyncio.gather(*(one(*c) for _ in range(rounds) for c in creds))
    return failures


def warm_logins(host: str, port: int, creds: list[tuple[str, str]], rounds: int,
                concurrency: int = 16) -> int:
    """Log every user in ``rounds`` times; return the number of failures (see pop3load for
    why: one password cache per worker process, and the kernel picks the process)."""
    return _run(_warm_logins(host, port, sorted(set(creds)), rounds, concurrency))


async def _body_once(host: str, port: int, user: str, password: str) -> tuple[int, float]:
    conn = await ImapConn.open(host, port, limit=BIG_READ_LIMIT)
    try:
        await conn.command(b"LOGIN " + quote(user) + b" " + quote(password))
        await conn.command(b"SELECT INBOX")
        t0 = time.perf_counter()
        size = await conn.fetch_literal(b"FETCH 1 BODY[]")
        elapsed = time.perf_counter() - t0
        await conn.command(b"LOGOUT")
        return size, elapsed
    finally:
        conn.close()


def body_throughput(host: str, port: int, user: str, password: str, repeat: int = 3
                    ) -> tuple[int, float]:
    """Single client: FETCH 1 BODY[] ``repeat`` times; return (octets, best MB/s)."""
    best = 0.0
    size = 0
    for _ in range(max(1, repeat)):
        size, elapsed = _run(_body_once(host, port, user, password))
        best = max(best, size / elapsed / 1e6)
    return size, best
