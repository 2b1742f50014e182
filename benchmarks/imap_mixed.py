"""An imaptest-style mixed IMAP load that also counts protocol errors (imaptest is not in Debian).

Why our own: Dovecot's imaptest, which found the keyword bug of issue #9, is not packaged in
Debian. This is a smaller relative of its default profile: several clients per mailbox
(``per_mailbox``), each connecting, LOGIN, SELECT INBOX, then a random mix of FETCH (FLAGS),
STORE +FLAGS/-FLAGS (system flags and keywords), STORE \\Deleted plus EXPUNGE, APPEND (LITERAL+,
RFC 7888) and NOOP, and LOGOUT after ``COMMANDS_PER_SESSION`` commands; then again.

Each session keeps what the server told it, as a client must (RFC 3501 section 7): the
message count (``EXISTS`` up, ``EXPUNGE`` down) and the flags announced by untagged ``FLAGS``.
A protocol error is an answer that contradicts it:

- an untagged ``FETCH`` whose FLAGS hold a keyword never announced in ``FLAGS`` (7.2.6: the
  client must be told of a new keyword before it sees one);
- an ``EXPUNGE`` or ``FETCH`` of a sequence number beyond the count the session knows;
- ``EXISTS`` smaller than that count (only EXPUNGE may lower it, 7.3.1);
- a ``BAD`` answer to any command we send (they are all valid), or a ``NO`` to LOGIN, SELECT,
  APPEND, STORE, NOOP or EXPUNGE. A ``NO`` to a FETCH is allowed (RFC 3501 section 7.4.1
  lets a server refuse a FETCH of a message another session expunged) and counted apart.

Figures: commands per second (every tagged answer counts), errors, NO answers.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import re
import signal
import time
from dataclasses import dataclass, field

from imap_load import ImapConn, ImapError, quote

__all__ = ["MixedResult", "run_mixed"]

COMMANDS_PER_SESSION = 40
KEYWORDS = ("$Bench1", "$Bench2", "$Bench3", "$Bench4")
SYSTEM = ("\\Seen", "\\Flagged", "\\Answered", "\\Draft")
_UNTAGGED = re.compile(
    rb"^\* (\d+) (EXISTS|EXPUNGE|RECENT)\r?$|^\* (\d+) FETCH \(|^\* FLAGS \(([^)]*)\)", re.M)
_FETCH_FLAGS = re.compile(rb"^\* (\d+) FETCH \(.*?FLAGS \(([^)]*)\)", re.M)
_SYSTEM_FLAGS = {b"\\seen", b"\\answered", b"\\flagged", b"\\deleted", b"\\draft", b"\\recent"}


@dataclass
class MixedResult:
    commands: int = 0
    errors: int = 0
    fetch_no: int = 0
    sessions: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # the first few errors, for the report

    def add(self, other: MixedResult) -> None:
        self.commands += other.commands
        self.errors += other.errors
        self.fetch_no += other.fetch_no
        self.sessions += other.sessions
        self.elapsed = max(self.elapsed, other.elapsed)
        self.latencies += other.latencies
        self.examples += other.examples[: max(0, 5 - len(self.examples))]

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.examples) < 5:
            self.examples.append(text[:200])


class _Session:
    """What one session knows of its selected mailbox (see the module docstring)."""

    def __init__(self, out: MixedResult) -> None:
        self.out = out
        self.exists = 0
        self.flags: set[bytes] = set()

    def absorb(self, answer: bytes) -> None:
        """Update the model from the untagged lines of ``answer``; count contradictions."""
        for m in _UNTAGGED.finditer(answer):
            if m.group(4) is not None:  # * FLAGS (...)
                self.flags = {f.lower() for f in m.group(4).split()}
            elif m.group(3) is not None:  # * n FETCH (
                if int(m.group(3)) > self.exists:
                    self.out.error(f"FETCH of {m.group(3).decode()} > EXISTS {self.exists}")
            elif m.group(2) == b"EXISTS":
                n = int(m.group(1))
                if n < self.exists:
                    self.out.error(f"EXISTS {n} below the known {self.exists}")
                self.exists = n
            elif m.group(2) == b"EXPUNGE":
                n = int(m.group(1))
                if not 1 <= n <= self.exists:
                    self.out.error(f"EXPUNGE {n} of {self.exists} messages")
                else:
                    self.exists -= 1
        for m in _FETCH_FLAGS.finditer(answer):
            for flag in m.group(2).split():
                f = flag.lower()
                if f not in _SYSTEM_FLAGS and f not in self.flags:
                    self.out.error(f"FETCH shows keyword {flag.decode()} not announced in FLAGS")


def _message(rng: random.Random) -> bytes:
    body = b"".join(b"line %d of a mixed-load message %d\r\n" % (i, rng.randrange(10**9))
                    for i in range(rng.randint(3, 40)))
    return (b"From: mixed@bench.test\r\nTo: user@bench.test\r\nSubject: mixed %d\r\n\r\n"
            % rng.randrange(10**6) + body)


async def _command(conn: ImapConn, s: _Session, text: bytes, *, fetch: bool = False) -> None:
    t0 = time.perf_counter()
    try:
        answer = await conn.command(text)
    except ImapError as exc:
        s.out.commands += 1
        message = str(exc)
        status = message.split(" ", 2)[1:2]
        if status == ["NO"] and fetch:
            s.out.fetch_no += 1
        elif status in (["NO"], ["BAD"]):
            s.out.error(f"{text[:40]!r} -> {message[:120]}")
        else:
            raise
        # the untagged part before a NO/BAD is lost here; resynchronise with a NOOP
        s.absorb(await conn.command(b"NOOP"))
        s.out.commands += 1
        return
    s.out.latencies.append(time.perf_counter() - t0)
    s.out.commands += 1
    s.absorb(answer)


async def _session(host: str, port: int, user: str, password: str, rng: random.Random,
                   out: MixedResult) -> None:
    conn = await ImapConn.open(host, port)
    s = _Session(out)
    try:
        await _command(conn, s, b"LOGIN " + quote(user) + b" " + quote(password))
        await _command(conn, s, b"SELECT INBOX")
        for _ in range(COMMANDS_PER_SESSION):
            roll = rng.random()
            n = s.exists
            if roll < 0.30 and n:
                a = rng.randint(1, n)
                b = min(n, a + rng.randint(0, 20))
                await _command(conn, s, b"FETCH %d:%d (FLAGS)" % (a, b), fetch=True)
            elif roll < 0.55 and n:
                flag = rng.choice(KEYWORDS if rng.random() < 0.5 else SYSTEM)
                sign = b"+" if rng.random() < 0.6 else b"-"
                await _command(conn, s, b"STORE %d %sFLAGS (%s)"
                               % (rng.randint(1, n), sign, flag.encode()))
            elif roll < 0.70 and n > 5:
                await _command(conn, s, b"STORE %d +FLAGS (\\Deleted)" % rng.randint(1, n))
                await _command(conn, s, b"EXPUNGE")
            elif roll < 0.85:
                data = _message(rng)
                await _command(conn, s, b"APPEND INBOX {%d+}\r\n" % len(data) + data)
            else:
                await _command(conn, s, b"NOOP")
        await _command(conn, s, b"LOGOUT")
        out.sessions += 1
    finally:
        conn.close()


async def _client(host: str, port: int, creds: tuple[str, str], deadline: float,
                  out: MixedResult, seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        try:
            await _session(host, port, *creds, rng, out)
        except (TimeoutError, OSError, ImapError, asyncio.IncompleteReadError) as exc:
            out.error(f"session failed: {type(exc).__name__}: {exc}")
            await asyncio.sleep(0.05)


async def _run(host: str, port: int, creds: list[tuple[str, str]], start_at: float,
               duration: float, seed: int) -> MixedResult:
    out = MixedResult()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + duration
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(host, port, c, deadline, out, seed * 1000 + i)
                           for i, c in enumerate(creds)))
    out.elapsed = time.perf_counter() - t0
    return out


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _worker(args: tuple[str, int, list[tuple[str, str]], float, float, int]) -> MixedResult:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_run(*args))
    return uvloop.run(_run(*args))


def run_mixed(host: str, port: int, creds: list[tuple[str, str]], duration: float,
              processes: int = 2) -> MixedResult:
    """``len(creds)`` clients (several per mailbox when users repeat) for ``duration`` s."""
    processes = max(1, min(processes, len(creds)))
    shares = [creds[i::processes] for i in range(processes)]
    start_at = time.time() + 0.5
    with multiprocessing.get_context("fork").Pool(processes, initializer=_init_worker) as pool:
        parts = pool.map(_worker, [(host, port, share, start_at, duration, i)
                                   for i, share in enumerate(shares)])
    total = MixedResult()
    for part in parts:
        total.add(part)
    return total
