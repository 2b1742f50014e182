"""SMTP's promise under crashes: a ``250`` after DATA means the message is stored, once.

RFC 5321 section 4.1.1.4 (and 6.1, "reliable delivery"): once the server has answered the end
of data with a 2yz reply it has taken responsibility for the message and must not lose it. The
converse matters too: a message the client saw no ``250`` for will be sent again by its queue,
so the server must never keep a *half* copy (a row without its full content, a truncated
content) that would be shown to the user next to the retry.

The test runs several client threads that send numbered messages (each number once, each with
a unique Message-ID, some of them a few hundred kilobytes so that kills also land in the middle
of DATA) to the MX listener while ``mailwing serve`` is SIGKILLed at random moments (seeded, so
a failure can be replayed with the same seed) and restarted. At the end every stored message is
read back through the storage API and checked:

* every number that got a ``250`` is stored exactly once, byte for byte below the trace fields;
* every other number is stored at most once, and if it is, completely;
* nothing else is stored.

SIGKILL tests atomicity of the commit (what a crash of the process can leave behind), not the
fsync itself: the kernel keeps written pages across a process kill, so losing power is out of
reach of a test. Bounded to 200 messages and about a minute.

IMAP's tagged ``OK`` to STORE and EXPUNGE makes the same promise against a crash of the
process. By default (``storage.fsync_flag_changes = false``) those commits do not wait for the
disk (SQLite ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit = off``): only a power
cut may lose them, so a SIGKILL right after the last ``OK`` must lose nothing.
"""

from __future__ import annotations

import asyncio
import imaplib
import random
import re
import signal
import smtplib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.interop.messages import split_trace
from tests.support import MailwingServer

SEED = 20261126
MESSAGES = 200
CLIENTS = 4
KILLS = 3
DEADLINE = 60.0  # seconds for the whole sending phase
USERS = ("ann@example.com", "ben@example.com")
SENDER = "sender@remote.example"

#: No SPF/DKIM/DMARC (DNS, and a held message instead of the streamed path) and no lookup
#: that leaves the machine: what is tested is the commit, not mail authentication.
TRANSPORT_ONLY = ("[auth]\ncheck_spf = false\ncheck_dkim = false\ncheck_dmarc = false\n"
                  '[outbound]\ndns_resolver = "127.0.0.1:9"\n')

_ID = re.compile(rb"^Message-ID: <durability-(\d+)@mailwing\.test>\r\n", re.MULTILINE)


def make_message(n: int) -> bytes:
    """Message number ``n``: unique Message-ID and subject; every 4th one is ~300 KB."""
    lines = 4000 if n % 4 == 0 else 3
    body = b"".join(f"message {n} line {i:05d} {'x' * 60}\r\n".encode() for i in range(lines))
    head = (f"From: <{SENDER}>\r\nTo: <{USERS[n % len(USERS)]}>\r\nSubject: durability {n}\r\n"
            f"Message-ID: <durability-{n}@mailwing.test>\r\n"
            f"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\n")
    return head.encode() + body


@dataclass
class Outcome:
    """What the clients saw, shared between their threads."""

    acked: set[int] = field(default_factory=set)  # got 250 after DATA
    attempted: set[int] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_number: int = 0

    def take(self) -> int | None:
        with self.lock:
            if self.next_number >= MESSAGES:
                return None
            self.next_number += 1
            self.attempted.add(self.next_number - 1)
            return self.next_number - 1

    def progress(self) -> int:
        with self.lock:
            return self.next_number


def client_loop(port: int, outcome: Outcome, stop_at: float) -> None:
    """Send numbers until none are left; never resend a number (see the module docstring)."""
    client: smtplib.SMTP | None = None
    while time.monotonic() < stop_at:
        if client is None:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=20)
                client.ehlo("client.remote.example")
            except (OSError, smtplib.SMTPException):
                client = None
                time.sleep(0.05)  # the server is being restarted
                continue
        n = outcome.take()
        if n is None:
            break
        try:
            refused = client.sendmail(SENDER, [USERS[n % len(USERS)]], make_message(n))
        except (OSError, smtplib.SMTPException) as exc:
            with outcome.lock:
                outcome.failures[type(exc).__name__] += 1
            client.close()
            client = None
            continue
        if not refused:
            with outcome.lock:
                outcome.acked.add(n)
    if client is not None:
        client.close()


def kill_and_restart(server: MailwingServer, outcome: Outcome, rng: random.Random,
                     stop_at: float) -> int:
    """SIGKILL the server at ``KILLS`` random points of the sending; return how many."""
    points = sorted(rng.sample(range(15, MESSAGES - 30), KILLS))
    kills = 0
    for point in points:
        while outcome.progress() < point and time.monotonic() < stop_at:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.08))
        if time.monotonic() >= stop_at:
            break
        server.stop(signal.SIGKILL)
        kills += 1
        server.start()
    return kills


async def stored_messages(server: MailwingServer, url: str) -> dict[int, list[bytes]]:
    """Number -> stored copies (whole contents), read with the storage API."""
    from mailwing.storage import open_storage

    store = await open_storage(url, data_dir=server.data_dir)
    found: dict[int, list[bytes]] = {}
    try:
        for address in USERS:
            user = await store.get_user(address)
            assert user is not None
            inbox = await store.get_mailbox(user.id, "INBOX")
            assert inbox is not None
            for entry in await store.list_mail(inbox.id):
                content = await store.read_content(entry.content.sha256)
                match = _ID.search(content)
                assert match, f"a stored message without our Message-ID: {content[:300]!r}"
                found.setdefault(int(match.group(1)), []).append(content)
    finally:
        await store.close()
    return found


def test_every_acknowledged_message_survives_sigkill_exactly_once(
        server_factory: type[MailwingServer], tmp_path: Path, database_url: str) -> None:
    rng = random.Random(SEED)
    server = server_factory(root=tmp_path / "srv", database_url=database_url, enable=("smtp",),
                            extra_config=TRANSPORT_ONLY)
    server.start()
    for address in USERS:
        server.add_user(address, "durability password")
    port = server.ports["smtp"]
    outcome = Outcome()
    stop_at = time.monotonic() + DEADLINE
    threads = [threading.Thread(target=client_loop, args=(port, outcome, stop_at), daemon=True)
               for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    kills = kill_and_restart(server, outcome, rng, stop_at)
    for t in threads:
        t.join(DEADLINE + 30)
    assert kills == KILLS, f"sending ended before every kill ({kills} of {KILLS})"

    # After the last restart the server still takes mail.
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        assert client.sendmail(SENDER, [USERS[0]], make_message(MESSAGES)) == {}
    outcome.acked.add(MESSAGES)
    outcome.attempted.add(MESSAGES)
    server.stop()

    found = asyncio.run(stored_messages(server, database_url))
    print(f"seed {SEED}: {len(outcome.attempted)} sent, {len(outcome.acked)} got 250, "
          f"{len(found)} stored, client errors {dict(outcome.failures)}")
    unknown = set(found) - outcome.attempted
    assert not unknown, f"numbers stored that were never sent: {unknown}"
    missing = sorted(n for n in outcome.acked if n not in found)
    twice = sorted(n for n, copies in found.items() if len(copies) > 1)
    assert not missing, f"got 250 but not stored: {missing} ({dict(outcome.failures)})"
    assert not twice, f"stored more than once: {twice}"
    for n, (content,) in found.items():
        trace, rest = split_trace(content)
        assert trace, f"message {n} has no trace fields"
        assert rest == make_message(n), f"message {n} stored incompletely ({len(rest)} octets)"
    # The kills must have hit something, or the test proved nothing.
    assert outcome.failures, "no client ever saw the server die"
    assert len(outcome.acked) >= MESSAGES // 4, f"only {len(outcome.acked)} messages acknowledged"



def _flags(imap: imaplib.IMAP4) -> dict[int, set[str]]:
    """UID -> flags of every message of the selected mailbox."""
    typ, data = imap.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK", data
    found: dict[int, set[str]] = {}
    for line in data:
        assert isinstance(line, bytes), line
        match = re.search(rb"UID (\d+).*FLAGS \(([^)]*)\)", line)
        assert match, line
        found[int(match.group(1))] = set(match.group(2).decode().split())
    return found


def test_store_and_expunge_survive_sigkill_after_their_tagged_ok(
        server_factory: type[MailwingServer], tmp_path: Path, database_url: str) -> None:
    server = server_factory(root=tmp_path / "srv", database_url=database_url, enable=("imap",),
                            extra_config=TRANSPORT_ONLY)
    server.start()
    address, password = USERS[0], "durability password"
    server.add_user(address, password)
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=20)
    imap.login(address, password)
    for n in range(8):  # numbers 0 and 4 are ~300 KB: content files on SQLite
        typ, data = imap.append("INBOX", None, None, make_message(n))
        assert typ == "OK", data
    imap.select("INBOX")
    uids = sorted(_flags(imap))
    assert len(uids) == 8
    for i, uid in enumerate(uids):
        typ, data = imap.uid("STORE", str(uid), "+FLAGS", f"(\\Flagged $Kept{i})")
        assert typ == "OK", data
    # Expunge one large and one small message, then one more flag change: its OK is the
    # last thing the server says before it is killed.
    typ, data = imap.uid("STORE", f"{uids[0]},{uids[1]}", "+FLAGS", "(\\Deleted)")
    assert typ == "OK", data
    typ, data = imap.expunge()
    assert typ == "OK", data
    typ, data = imap.uid("STORE", str(uids[-1]), "+FLAGS", "(\\Answered)")
    assert typ == "OK", data
    server.stop(signal.SIGKILL)
    imap.shutdown()

    server.start()
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=20)
    try:
        imap.login(address, password)
        imap.select("INBOX")
        after = _flags(imap)
        assert sorted(after) == uids[2:], "an expunge was lost (or a message)"
        for i, uid in enumerate(uids[2:], start=2):
            wanted = {"\\Flagged", f"$Kept{i}"} | ({"\\Answered"} if uid == uids[-1] else set())
            assert wanted <= after[uid], f"UID {uid} lost flags: {after[uid]}"
            typ, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[TEXT])")
            assert typ == "OK" and isinstance(data[0], tuple), data
            assert data[0][1] == make_message(i).split(b"\r\n\r\n", 1)[1]
        imap.logout()
    finally:
        server.stop()
