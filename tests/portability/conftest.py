"""Fixtures for the import/export tests: a user on each backend, sample messages, a
hand-written Dovecot-style Maildir."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mailwing.model import User
from mailwing.storage import Storage

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def message(n: int, *, crlf: bool = False, extra: bytes = b"") -> bytes:
    text = (f"From: sender{n}@example.net\nTo: alice@example.org\nSubject: message {n}\n"
            f"Message-ID: <m{n}@example.net>\nDate: Mon, 01 Jan 2024 10:00:{n % 60:02d} +0000\n"
            f"\nBody of message {n}\n").encode() + extra
    return text.replace(b"\n", b"\r\n") if crlf else text


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
async def alice(store: Storage) -> User:
    user, _ = await store.add_user("alice@example.org", HASH, create_domain=True)
    return user


def write_maildir_file(folder: Path, name: str, data: bytes, mtime: float,
                       sub: str = "cur") -> Path:
    for d in ("cur", "new", "tmp"):
        (folder / d).mkdir(parents=True, exist_ok=True)
    path = folder / sub / name
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


async def mailbox_state(store: Storage, user: User) -> dict[str, list[tuple[str, frozenset[str],
                                                                            int]]]:
    """{mailbox: [(sha256, flags, internal date as UNIX seconds)] by UID}."""
    out = {}
    for box in await store.list_mailboxes(user.id):
        out[box.name] = [(e.content.sha256, e.flags, int(e.internal_date.timestamp()))
                         for e in await store.list_mail(box.id)]
    return out
