"""An SMTP load generator for any SMTP server (mailwing, aiosmtpd, ...): raw asyncio sockets.

Why not smtplib or aiosmtplib: both send MAIL, RCPT and DATA one round trip at a time and cost
more CPU per message than the server being measured. Here each client keeps one connection for
``per_connection`` messages and sends every transaction as RFC 2920 groups: ``MAIL FROM`` /
``RCPT TO`` / ``DATA`` in one write (DATA last in the group, as section 3.1 requires), then the
body after the 354, so one transaction costs two round trips. The clients are spread over
several processes (uvloop when installed), like :mod:`pop3load`.

Latency is what a sending MTA waits for: from writing the final ``.`` (after the body has been
handed to the kernel) to the ``250`` (RFC 5321 4.1.1.4), the time during which the server
makes the message durable. Every message gets a distinct Message-ID, so content
de-duplication cannot make a run cheaper.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import re
import signal
import time
import uuid
from dataclasses import dataclass

from pop3_bench import make_message
from pop3load import LoadResult

__all__ = ["LoadSpec", "SmtpError", "make_body", "run_load"]

OP_TIMEOUT = 60.0


class SmtpError(Exception):
    """The server answered with something other than the expected reply."""


@dataclass(frozen=True)
class LoadSpec:
    """One configuration of load: who sends what, how much and for how long."""

    host: str
    port: int
    recipients: tuple[str, ...]
    size: int
    duration: float
    max_messages: int  # over all clients of one process: the bound when the server is fast
    per_connection: int = 10
    sender: str = "load@sender.example"


def make_body(size: int, seed: int = 1) -> tuple[bytes, bytes]:
    """A text message of ``size`` octets (CRLF endings, no line starting with '.', so no
    dot-stuffing is needed) made by :func:`pop3_bench.make_message`, and its Message-ID's
    unique part, to be replaced per message."""
    body = make_message(random.Random(seed), "bench@bench.test", 0, size)
    match = re.search(rb"^Message-ID: <([0-9a-f]{32})@", body, re.MULTILINE)
    assert match is not None
    return body, match.group(1)


async def _reply(reader: asyncio.StreamReader, expect: int) -> None:
    """Read one (possibly multi-line) reply; raise unless its code is ``expect``."""
    while True:
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), OP_TIMEOUT)
        if line[3:4] != b"-":
            break
    if not line[:3].isdigit() or int(line[:3]) != expect:
        raise SmtpError(f"expected {expect}, got {line[:200].decode('latin-1').rstrip()}")


async def _connection(spec: LoadSpec, body: tuple[bytes, bytes], count: int,
                      out: LoadResult, deadline: float, rng: random.Random) -> int:
    """One connection sending up to ``count`` messages; returns how many were accepted."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(spec.host, spec.port), OP_TIMEOUT)
    sent = 0
    try:
        await _reply(reader, 220)
        writer.write(b"EHLO load.sender.example\r\n")
        await _reply(reader, 250)
        while sent < count and time.monotonic() < deadline:
            data = body[0].replace(body[1], uuid.uuid4().hex.encode(), 1)
            rcpt = rng.choice(spec.recipients)
            writer.write(f"MAIL FROM:<{spec.sender}> SIZE={len(data)}\r\n"
                         f"RCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
            await _reply(reader, 250)
            await _reply(reader, 250)
            await _reply(reader, 354)
            writer.write(data)
            await writer.drain()
            t0 = time.perf_counter()
            writer.write(b".\r\n")
            await _reply(reader, 250)
            out.latencies.append(time.perf_counter() - t0)
            out.messages += 1
            out.octets += len(data)
            sent += 1
        writer.write(b"QUIT\r\n")
        with contextlib.suppress(SmtpError, TimeoutError, OSError, asyncio.IncompleteReadError):
            await _reply(reader, 221)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return sent


async def _client(spec: LoadSpec, body: tuple[bytes, bytes], deadline: float,
                  budget: list[int], out: LoadResult, seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline and budget[0] > 0:
        count = min(spec.per_connection, budget[0])
        budget[0] -= count
        try:
            sent = await _connection(spec, body, count, out, deadline, rng)
        except (TimeoutError, OSError, SmtpError, asyncio.IncompleteReadError) as exc:
            out.errors += 1
            out.first_error = out.first_error or f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.05)  # a refused connection must not become a busy loop
            continue
        out.sessions += 1
        budget[0] += count - sent


async def _run_clients(spec: LoadSpec, clients: int, start_at: float, seed: int) -> LoadResult:
    out = LoadResult()
    body = make_body(spec.size)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + spec.duration
    budget = [spec.max_messages]
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.gather(*(_client(spec, body, deadline, budget, out, seed * 1000 + i)
                           for i in range(clients)))
    out.elapsed = time.perf_counter() - t0
    out.client_cpu = time.process_time() - cpu0
    return out


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _worker(args: tuple[LoadSpec, int, float, int]) -> LoadResult:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return asyncio.run(_run_clients(*args))
    return uvloop.run(_run_clients(*args))


def run_load(spec: LoadSpec, clients: int, processes: int = 2) -> LoadResult:
    """``clients`` concurrent senders over ``processes`` processes for ``spec.duration`` s
    or ``spec.max_messages`` messages in total, whichever comes first."""
    processes = max(1, min(processes, clients))
    shares = [len(range(i, clients, processes)) for i in range(processes)]
    per_proc = max(1, spec.max_messages // processes)
    part_spec = LoadSpec(**{**spec.__dict__, "max_messages": per_proc})
    start_at = time.time() + 0.5
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes, initializer=_init_worker) as pool:
        parts = pool.map(_worker, [(part_spec, n, start_at, i + 1)
                                   for i, n in enumerate(shares)])
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
