"""What a QRESYNC resynchronisation (RFC 7162 section 3.2.5) costs, against a full resync.

Run ``.venv/bin/python benchmarks/imap_resync_bench.py --help``; benchmarks/README.md (section
"IMAP resync") says how to read the output.

A mailbox of ``--messages`` (10,000) messages is filled through mailwing's own storage code,
then the server is started and, for each of ``--rounds`` rounds:

1. a client selects the mailbox and remembers UIDVALIDITY and HIGHESTMODSEQ, as a disconnected
   client's cache would;
2. another session changes the flags of ``--flag-changes`` (10) messages and expunges
   ``--expunges`` (5) others;
3. a new client (``ENABLE QRESYNC``) selects with ``(QRESYNC (uidvalidity modseq))``: the
   octets the server sends for that SELECT and the time until its tagged OK are measured, and
   the answer is checked to hold exactly the expunged UIDs (``VANISHED (EARLIER)``) and one
   FETCH per changed message;
4. the same client does what a client without QRESYNC must do to learn the same (``FETCH 1:*
   (UID FLAGS)``), measured the same way.

The "changes" column is the octets of the QRESYNC answer beyond a plain SELECT of the same
mailbox (measured too), i.e. what the 15 changes cost on the wire. Everything started here
(server, temp folder, a PostgreSQL database) is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pop3_bench import Mailwing, free_port, postgres_database

PASSWORD = "bench-password"
USER = "resync@bench.test"
COPIES_PER_CONTENT = 100  # messages share contents in batches: filling stays fast


class ImapMailwing(Mailwing):
    """The POP3 benchmark's server wrapper with the IMAP listener on as well."""

    imap_port: int = 0

    def write_config(self, workers: int) -> None:
        super().write_config(workers)
        if not self.imap_port:
            self.imap_port = free_port()
        text = self.config.read_text().replace(
            "[imap]\nport = 0", f"[imap]\nport = {self.imap_port}")
        self.config.write_text(text)


async def fill(url: str, data_dir: Path, count: int) -> None:
    from mailwing.services.passwords import hash_password
    from mailwing.storage import Delivery, open_storage

    storage = await open_storage(url, data_dir=data_dir)
    try:
        user, _ = await storage.add_user(USER, hash_password(PASSWORD), create_domain=True)
        box = await storage.get_mailbox(user.id, "INBOX")
        assert box is not None
        made = 0
        while made < count:
            batch = min(COPIES_PER_CONTENT, count - made)
            body = (f"From: sender@bench.test\r\nTo: {USER}\r\nSubject: message {made}\r\n"
                    f"Date: Thu, 01 Jan 2026 12:00:00 +0000\r\n\r\nbody {made}\r\n").encode()
            content = await storage.store_content(body)
            await storage.append(content, [Delivery(box.id)] * batch)
            made += batch
    finally:
        await storage.close()


class Client:
    """A bare IMAP client that counts the octets it receives."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.file = self.sock.makefile("rb")
        self.file.readline()
        self.n = 0
        self.command(f'LOGIN {USER} "{PASSWORD}"')

    def command(self, text: str) -> tuple[list[bytes], int, float]:
        """(lines, octets received, seconds) of one command up to its tagged completion."""
        self.n += 1
        tag = b"t%d" % self.n
        started = time.perf_counter()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        lines, octets = [], 0
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            octets += len(line)
            lines.append(line.rstrip(b"\r\n"))
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text!r} failed: {line!r}")
                return lines, octets, time.perf_counter() - started

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.command("LOGOUT")
        self.file.close()
        self.sock.close()


def count_set(text: bytes) -> int:
    """How many numbers ``1:3,7`` holds."""
    total = 0
    for part in text.split(b","):
        first, _, last = part.partition(b":")
        total += abs(int(last or first) - int(first)) + 1
    return total


def code(lines: list[bytes], name: str) -> int:
    for line in lines:
        m = re.search(rb"\[" + name.encode() + rb" (\d+)\]", line)
        if m:
            return int(m.group(1))
    raise RuntimeError(f"no [{name}] in the answer")


def one_round(port: int, args: argparse.Namespace, round_no: int) -> dict[str, float]:
    cache = Client(port)
    lines, _, _ = cache.command("SELECT INBOX")
    uidvalidity, modseq = code(lines, "UIDVALIDITY"), code(lines, "HIGHESTMODSEQ")
    exists = next(int(x.split()[1]) for x in lines if x.endswith(b" EXISTS"))
    cache.close()

    changer = Client(port)
    changer.command("SELECT INBOX")
    step = max(1, exists // (args.flag_changes + args.expunges + 1))
    targets = [1 + i * step for i in range(args.flag_changes + args.expunges)]
    for seq in targets[:args.flag_changes]:
        changer.command(f"STORE {seq} +FLAGS.SILENT ($Round{round_no})")
    doomed = ",".join(str(s) for s in targets[args.flag_changes:])
    changer.command(f"STORE {doomed} +FLAGS.SILENT (\\Deleted)")
    changer.command("EXPUNGE")
    changer.close()

    other = Client(port)
    _, plain, _ = other.command("EXAMINE INBOX")
    other.close()
    client = Client(port)
    client.command("ENABLE QRESYNC")
    lines, octets, seconds = client.command(f"EXAMINE INBOX (QRESYNC ({uidvalidity} {modseq}))")
    vanished = [x for x in lines if x.startswith(b"* VANISHED (EARLIER) ")]
    fetches = [x for x in lines if b" FETCH (" in x]
    gone = count_set(vanished[0].split()[-1]) if vanished else 0
    if gone != args.expunges or len(fetches) != args.flag_changes:
        raise RuntimeError(f"unexpected resync answer: {gone} vanished, {len(fetches)} FETCHes")
    full_lines, full_octets, full_seconds = client.command("FETCH 1:* (UID FLAGS)")
    client.close()
    return {"qresync_octets": octets, "plain_select_octets": plain,
            "changes_octets": octets - plain, "qresync_ms": seconds * 1000,
            "full_octets": full_octets, "full_ms": full_seconds * 1000,
            "full_lines": len(full_lines) - 1}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--flag-changes", type=int, default=10)
    p.add_argument("--expunges", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mailwing-resync-"))
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, root, True)
        if args.backend == "postgresql":
            url = stack.enter_context(postgres_database(args.postgres_url))
        else:
            url = f"sqlite:///{root / 'data' / 'mailwing.db'}"
        server = ImapMailwing(root, url)
        server.write_config(1)
        server.cli("db", "upgrade")
        started = time.perf_counter()
        asyncio.run(fill(url, root / "data", args.messages))
        print(f"filled {args.messages} messages in {time.perf_counter() - started:.1f} s "
              f"({args.backend})")
        server.start(1)
        stack.callback(server.stop)
        rows = [one_round(server.imap_port, args, i) for i in range(args.rounds)]
    print(f"{'round':>5} {'QRESYNC SELECT':>15} {'plain SELECT':>13} {'changes':>8} "
          f"{'ms':>7} {'FETCH 1:* FLAGS':>16} {'ms':>7}")
    for i, r in enumerate(rows, 1):
        print(f"{i:>5} {r['qresync_octets']:>15.0f} {r['plain_select_octets']:>13.0f} "
              f"{r['changes_octets']:>8.0f} {r['qresync_ms']:>7.1f} {r['full_octets']:>16.0f} "
              f"{r['full_ms']:>7.1f}")
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"median: QRESYNC resync {med['qresync_octets']:.0f} octets "
          f"({med['changes_octets']:.0f} for the {args.flag_changes + args.expunges} changes) "
          f"in {med['qresync_ms']:.1f} ms; full resync {med['full_octets']:.0f} octets "
          f"in {med['full_ms']:.1f} ms ({med['full_octets'] / med['qresync_octets']:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
