"""Import speed: messages per second for a Maildir of 10,000 messages (``mailwing import``).

Why a Maildir of that shape: it is what Dovecot leaves behind (``cur/`` files named
``<time>.M<n>P<pid>.<host>,S=<size>:2,<flags>``, a ``dovecot-uidlist``, a few Maildir++
folders), and 10,000 is a typical mid-sized account. The import is timed end to end through
the same code path as the CLI (scan, read, hash, store and fsync each content, one append
transaction per batch of ready messages), then a second run is timed (everything is a
duplicate: it measures the check that makes imports resumable), then an export back to a
Maildir. With ``--source imap`` the same messages are imported over IMAP from a private
Dovecot on loopback (benchmarks/imap_dovecot.py) instead, INBOX only.

    .venv/bin/python benchmarks/import_bench.py [--messages 10000] [--size 4096]
        [--backend sqlite|postgresql] [--folders 5] [--source maildir|imap]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from imap_dovecot import DovecotImap, dovecot_available

from mailwing.portability.exporter import export_mail
from mailwing.portability.imapsource import ImapSource
from mailwing.portability.importer import import_mail
from mailwing.portability.maildir import MaildirSource
from mailwing.storage import open_storage

PG_ADMIN = os.environ.get("MAILWING_TEST_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")


def make_maildir(root: Path, count: int, size: int, folders: int) -> int:
    names = ["INBOX"] + [f"Folder{i}" for i in range(1, folders)]
    total = 0
    uidlists: dict[Path, list[str]] = {}
    for n in range(count):
        folder = names[n % len(names)]
        path = root if folder == "INBOX" else root / f".{folder}"
        if path not in uidlists:
            for sub in ("cur", "new", "tmp"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            uidlists[path] = []
        head = (f"From: sender{n}@example.net\nTo: user@example.org\nSubject: message {n}\n"
                f"Message-ID: <bench-{n}@example.net>\n"
                f"Date: Mon, 01 Jan 2024 10:00:00 +0000\n\n").encode()
        body = (f"line of message {n} " * 8 + "\n").encode()
        data = head + body * max(1, (size - len(head)) // len(body))
        base = f"{1_700_000_000 + n}.M{n}P1.bench,S={len(data)}"
        flags = "S" if n % 3 else "FS"
        (path / "cur" / f"{base}:2,{flags}").write_bytes(data)
        uidlists[path].append(f"{len(uidlists[path]) + 1} :{base}")
        total += len(data)
    for path, lines in uidlists.items():
        (path / "dovecot-uidlist").write_text("\n".join(["3 V1 N1", *lines]) + "\n")
    return total


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(args: argparse.Namespace, tmp: Path) -> None:
    maildir = tmp / "Maildir"
    dovecot = None
    if args.source == "imap":
        if not dovecot_available():
            raise SystemExit("--source imap needs Dovecot and root")
        dovecot = DovecotImap(tmp / "dovecot", free_port(), clients=2, scheme="PLAIN")
        dovecot.set_users({"user@example.org": "secret"})
        make_maildir(maildir, args.messages, args.size, 1)
        for path in sorted((maildir / "cur").iterdir()):
            dovecot.add_message("user@example.org", path.read_bytes())
        dovecot.start()
        print(f"Dovecot IMAP on port {dovecot.port}: {args.messages} messages in INBOX")
    else:
        size = make_maildir(maildir, args.messages, args.size, args.folders)
        print(f"Maildir: {args.messages} messages, {size / 1e6:.1f} MB, {args.folders} folders")
    db_name = None
    if args.backend == "sqlite":
        url = f"sqlite:///{tmp / 'mailwing.db'}"
    else:
        db_name = f"mailwing_bench_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'CREATE DATABASE "{db_name}"')
        await conn.close()
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db_name}"
    store = await open_storage(url, data_dir=tmp / "data")
    try:
        await store.upgrade()
        await store.add_user("user@example.org", "x", create_domain=True)
        for label in ("first import", "second import (all duplicates)"):
            start = time.perf_counter()
            source: MaildirSource | ImapSource = MaildirSource(maildir)
            if dovecot is not None:
                source = ImapSource(f"imap://user@example.org@127.0.0.1:{dovecot.port}",
                                    "secret")
            summary = await import_mail(store, "user@example.org", source)
            await source.close()
            elapsed = time.perf_counter() - start
            print(f"{label}: {summary.imported} imported, "
                  f"{sum(summary.skipped.values())} skipped in {elapsed:.2f} s = "
                  f"{args.messages / elapsed:.0f} messages/s")
        start = time.perf_counter()
        exported = await export_mail(store, "user@example.org", tmp / "export", "maildir")
        elapsed = time.perf_counter() - start
        print(f"export: {exported.messages} messages in {elapsed:.2f} s = "
              f"{exported.messages / elapsed:.0f} messages/s")
    finally:
        await store.close()
        if dovecot is not None:
            dovecot.stop()
        if db_name:
            conn = await asyncpg.connect(PG_ADMIN)
            await conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096, help="octets per message")
    parser.add_argument("--folders", type=int, default=5)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--source", choices=("maildir", "imap"), default="maildir")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mailwing-import-bench-"))
    os.chmod(tmp, 0o755)  # Dovecot's unprivileged processes must reach their folders
    try:
        asyncio.run(run(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
