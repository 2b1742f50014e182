"""Helpers for the IMAP client tests: seeding a mailbox, reading the server's state with
:mod:`imaplib`, and reading a local Maildir the way the clients write it.

Why the server state is read with imaplib (UID, FLAGS, Message-ID per message) rather than
through mailwing's storage: the tests check what a user would see through any IMAP client,
and the same helpers then work against any IMAP server (the configurations were first tried
against Dovecot). Maildir flags are the ``:2,`` info letters of the Maildir specification
(D draft, F flagged, R replied, S seen, T trashed), which mbsync and offlineimap map to and
from the IMAP system flags (RFC 3501 section 2.3.2).
"""

from __future__ import annotations

import email.parser
import email.policy
import imaplib
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ImapTarget", "MessageState", "maildir_messages", "seed_message", "server_state"]

#: IMAP system flag -> Maildir info letter.
MAILDIR_LETTER = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S",
                  "\\Deleted": "T"}

_FETCH = re.compile(rb"UID (\d+)|FLAGS \(([^)]*)\)")
_HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)


@dataclass(frozen=True)
class ImapTarget:
    """Where and as whom an IMAP client connects."""

    host: str
    port: int  # STARTTLS / plain port
    tls_port: int  # implicit TLS port
    user: str
    password: str
    ca_file: Path

    def login(self, *, tls: bool = True) -> imaplib.IMAP4:
        """An authenticated imaplib client (STARTTLS with verification when ``tls``)."""
        client = imaplib.IMAP4(self.host, self.port, timeout=60)
        if tls:
            client.starttls(ssl.create_default_context(cafile=str(self.ca_file)))
        client.login(self.user, self.password)
        return client


def seed_message(n: int, size: int = 600) -> bytes:
    """A distinct message (CRLF endings) whose Message-ID says its number."""
    filler = b"".join(b"line %03d of message %d, padding text for size\r\n" % (i, n)
                      for i in range(max(1, size // 44)))
    return (b"From: Bob <bob@example.org>\r\nTo: Alice <alice@example.com>\r\n"
            b"Subject: sync test %d\r\nMessage-ID: <sync-%d@example.org>\r\n"
            b"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\n" % (n, n) + filler)


def seed_flags(n: int) -> tuple[str, ...]:
    """The flags message ``n`` is appended with: every 3rd seen, every 5th flagged."""
    return tuple(f for f, every in (("\\Seen", 3), ("\\Flagged", 5)) if n % every == 0)


def append_all(client: imaplib.IMAP4, mailbox: str,
               messages: Iterable[tuple[bytes, tuple[str, ...]]]) -> None:
    """APPEND every (message, flags) in one session."""
    for data, flags in messages:
        typ, answer = client.append(mailbox, f"({' '.join(flags)})" if flags else None,
                                    None, data)
        assert typ == "OK", answer


@dataclass(frozen=True)
class MessageState:
    uid: int
    flags: frozenset[str]


def server_state(target: ImapTarget, mailbox: str = "INBOX") -> dict[str, MessageState]:
    """Message-ID -> (UID, flags) of every message in ``mailbox`` (EXAMINE: nothing changes)."""
    client = target.login()
    try:
        typ, answer = client.select(mailbox, readonly=True)
        assert typ == "OK", answer
        if int(answer[0] or 0) == 0:
            return {}
        typ, data = client.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS "
                                              "(MESSAGE-ID)])")
        assert typ == "OK", data
        state: dict[str, MessageState] = {}
        for i, item in enumerate(data):
            if not isinstance(item, tuple):
                continue
            uid = flags = None
            for m in _FETCH.finditer(item[0]):
                if m.group(1):
                    uid = int(m.group(1))
                else:
                    flags = m.group(2)
            if flags is None:  # some servers put FLAGS after the literal
                trailer = data[i + 1] if i + 1 < len(data) else b""
                trailer = trailer if isinstance(trailer, bytes) else b""
                found = re.search(rb"FLAGS \(([^)]*)\)", trailer)
                flags = found.group(1) if found else b""
            msgid = _HEADERS.parsebytes(item[1]).get("Message-ID", "").strip()
            assert uid is not None, item[0]
            state[msgid] = MessageState(uid, frozenset(flags.decode().split()))
        return state
    finally:
        client.logout()


def message_ids(paths: Iterable[Path]) -> dict[str, Path]:
    """Message-ID -> file for Maildir files."""
    out = {}
    for path in paths:
        with path.open("rb") as fh:
            out[_HEADERS.parse(fh).get("Message-ID", "").strip()] = path
    return out


def maildir_messages(folder: Path) -> dict[str, tuple[Path, str]]:
    """Message-ID -> (file, info letters) of every message in a Maildir folder."""
    files = [p for sub in ("cur", "new") for p in (folder / sub).glob("*") if p.is_file()]
    return {mid: (p, p.name.partition(":2,")[2]) for mid, p in message_ids(files).items()}


def expected_letters(flags: Iterable[str]) -> str:
    """The Maildir info letters for a set of IMAP flags (keywords and \\Recent dropped)."""
    return "".join(sorted(MAILDIR_LETTER[f] for f in flags if f in MAILDIR_LETTER))


def set_letters(path: Path, letters: str) -> Path:
    """Give a Maildir file new info letters (moving it to cur/, as a mail reader does)."""
    base = path.name.partition(":2,")[0]
    target = path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(letters))}"
    path.rename(target)
    return target


def snapshot(folder: Path) -> list[str]:
    """Sorted ``sub/name`` of every file in a Maildir folder (changes if any flag changes)."""
    return sorted(f"{p.parent.name}/{p.name}" for sub in ("cur", "new", "tmp")
                  for p in (folder / sub).glob("*"))
