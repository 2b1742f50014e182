"""Concurrent model check (issue #9, "imaptest's errors"): several IMAP sessions on one
mailbox do random STORE (with new keywords), EXPUNGE, APPEND, FETCH and NOOP; every untagged
response each session sees is checked against that session's model of the mailbox.

What a session's model holds: its sequence-number -> UID map (UIDs learnt from FETCH), the
flags it was told of in ``* FLAGS``, and the flags of each message. What is checked, per
response (RFC 3501 sections 2.3.1.2, 5.2, 7.2.6, 7.3.1, 7.4.1):

- ``* n EXISTS`` never shrinks the mailbox; ``* n EXPUNGE`` names a message that exists and
  never comes during FETCH, STORE or SEARCH;
- ``* n FETCH`` names a message that exists; its FLAGS carry only flags the session was told
  of in ``* FLAGS`` (the keyword bug imaptest found); a UID in it matches what the session
  already knows for that number, and UIDs ascend with sequence numbers;
- at the end, after a NOOP, every session sees the same UIDs with the same flags.

Seeded (``MAILWING_MODEL_SEED`` to replay one), bounded in operations and in time; on both
backends.
"""

from __future__ import annotations

import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.differential.wire import Client, parse
from tests.protocol.test_imap_support import PASSWORD, USER, simple, start
from tests.support import MailwingServer

SESSIONS = 4
OPERATIONS = 160
TIME_BUDGET = 60.0  # seconds: the run stops early (and still checks) on a slow machine
SYSTEM = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
KEYWORDS = tuple(f"$kw{i}" for i in range(8))
_NO_EXPUNGE = re.compile(rb"^\S+ (FETCH|STORE|SEARCH)\b", re.IGNORECASE)  # UID forms may


@dataclass
class SessionModel:
    name: str
    client: Client
    seq_uids: list[int | None] = field(default_factory=list)  # index = seq - 1
    told: set[str] = field(default_factory=set)  # flags listed in * FLAGS
    flags: dict[int, frozenset[str]] = field(default_factory=dict)  # by UID
    errors: list[str] = field(default_factory=list)

    def fail(self, command: bytes, what: str) -> None:
        self.errors.append(f"{self.name} after {command[:80]!r}: {what}")

    def run(self, command: bytes) -> list[bytes]:
        tag = self.client.next_tag()
        responses = self.client.command(tag, command)
        for response in responses[:-1]:
            self.check(command, response)
        if not responses[-1].startswith(f"{tag} OK".encode()):
            self.fail(command, f"not OK: {responses[-1]!r}")
        return responses

    def check(self, command: bytes, response: bytes) -> None:
        tokens = parse(response)
        if len(tokens) < 2 or tokens[0] != "*":
            return
        word = str(tokens[1]).upper()
        if word == "FLAGS" and len(tokens) > 2 and isinstance(tokens[2], list):
            self.told = {str(f) for f in tokens[2]}
            missing = set(SYSTEM) - self.told
            if missing:
                self.fail(command, f"FLAGS without system flags {missing}")
            return
        if len(tokens) < 3 or not str(tokens[1]).isdigit():
            return
        n, kind = int(str(tokens[1])), str(tokens[2]).upper()
        if kind == "EXISTS":
            if n < len(self.seq_uids):
                self.fail(command, f"EXISTS {n} shrinks a mailbox of {len(self.seq_uids)}")
            self.seq_uids.extend([None] * (n - len(self.seq_uids)))
        elif kind == "EXPUNGE":
            if _NO_EXPUNGE.match(b"t " + command):
                self.fail(command, "EXPUNGE during FETCH/STORE/SEARCH (RFC 3501 7.4.1)")
            if not 1 <= n <= len(self.seq_uids):
                self.fail(command, f"EXPUNGE {n} of {len(self.seq_uids)} messages")
                return
            uid = self.seq_uids.pop(n - 1)
            if uid is not None:
                self.flags.pop(uid, None)
        elif kind == "FETCH" and len(tokens) > 3 and isinstance(tokens[3], list):
            self.fetched(command, n, tokens[3])

    def fetched(self, command: bytes, n: int, items: list[object]) -> None:
        if not 1 <= n <= len(self.seq_uids):
            self.fail(command, f"FETCH {n} of {len(self.seq_uids)} messages")
            return
        data = {str(k).upper(): v for k, v in zip(items[0::2], items[1::2], strict=False)}
        uid = self.seq_uids[n - 1]
        if "UID" in data:
            got = int(str(data["UID"]))
            if uid is not None and uid != got:
                self.fail(command, f"FETCH {n} has UID {got}, was {uid}")
            uid = self.seq_uids[n - 1] = got
            before = [u for u in self.seq_uids[: n - 1] if u is not None]
            after = [u for u in self.seq_uids[n:] if u is not None]
            if (before and before[-1] >= got) or (after and after[0] <= got):
                self.fail(command, f"UID {got} out of order at {n}: {self.seq_uids}")
        if "FLAGS" in data and isinstance(data["FLAGS"], list):
            flags = frozenset(str(f) for f in data["FLAGS"]) - {"\\Recent"}
            untold = flags - self.told
            if untold:
                self.fail(command, f"FETCH {n} carries {sorted(untold)} never listed in FLAGS "
                                   "(RFC 3501 7.2.6)")
            if uid is not None:
                self.flags[uid] = flags


def _random_flags(rng: random.Random) -> list[str]:
    pool = SYSTEM[:2] + SYSTEM[3:] + KEYWORDS  # \Deleted only through the expunge step
    return rng.sample(pool, rng.randint(1, 3))


def _step(rng: random.Random, s: SessionModel, counter: list[int]) -> None:
    exists = len(s.seq_uids)
    roll = rng.random()
    if roll < 0.15 or exists == 0:
        counter[0] += 1
        flags = " ".join(_random_flags(rng)) if rng.random() < 0.5 else ""
        message = simple(f"model {counter[0]}", "x" * rng.randint(1, 200))
        s.run(b"APPEND INBOX (%s) {%d+}\r\n" % (flags.encode(), len(message)) + message)
    elif roll < 0.45:
        seq = rng.randint(1, exists)
        mode = rng.choice(["+FLAGS", "-FLAGS", "FLAGS", "+FLAGS.SILENT"])
        s.run(f"STORE {seq} {mode} ({' '.join(_random_flags(rng))})".encode())
    elif roll < 0.55:
        seq = rng.randint(1, exists)
        s.run(f"STORE {seq} +FLAGS.SILENT (\\Deleted)".encode())
        s.run(b"EXPUNGE")
    elif roll < 0.75:
        s.run(b"FETCH 1:* (UID FLAGS)")
    elif roll < 0.85:
        s.run(b"UID FETCH 1:* FLAGS")
    elif roll < 0.92:
        s.run(b"SEARCH KEYWORD " + rng.choice(KEYWORDS).encode())
    else:
        s.run(b"NOOP")


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path,
        database_url: str) -> MailwingServer:
    return start(server_factory, tmp_path, database_url)


def test_concurrent_sessions_match_their_models(srv: MailwingServer) -> None:
    seed = int(os.environ.get("MAILWING_MODEL_SEED", "20261204"))
    rng = random.Random(seed)
    sessions = []
    for i in range(SESSIONS):
        client = Client.connect(srv.ports["imap"])
        model = SessionModel(f"session{i}", client)
        model.run(f'LOGIN {USER} "{PASSWORD}"'.encode())
        model.run(b"SELECT INBOX")
        sessions.append(model)
    counter = [0]
    deadline = time.monotonic() + TIME_BUDGET
    done = 0
    for done in range(1, OPERATIONS + 1):  # noqa: B007 - reported below
        _step(rng, rng.choice(sessions), counter)
        if time.monotonic() > deadline:
            break
    for s in sessions:  # converge: everyone catches up, then looks at everything
        s.run(b"NOOP")
        s.run(b"FETCH 1:* (UID FLAGS)")
    errors = [e for s in sessions for e in s.errors]
    assert not errors, f"seed {seed}, {done} operations:\n" + "\n".join(errors[:20])
    views = [(s.seq_uids, s.flags) for s in sessions]
    assert all(v == views[0] for v in views), f"seed {seed}: sessions disagree: {views}"
    assert None not in views[0][0]
    for s in sessions:
        s.client.close()
