"""A throwaway Dovecot IMAP server for the import/export tests: the benchmarks' launcher
(benchmarks/imap_dovecot.py, which the differential tests use too), not a second one.

It adds what the tests need: plain passwords, RFC 6154 special-use attributes on two
folders, and helpers to APPEND through IMAP (so the Maildir is written by Dovecot itself) and
to read back what an IMAP client sees (UID, flags, INTERNALDATE, body SHA-256).
"""

from __future__ import annotations

import hashlib
import imaplib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import free_port, require_binary, skip_or_fail

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from imap_dovecot import DovecotImap

__all__ = ["TestDovecot", "dovecot", "imap_state"]

_LIST = re.compile(rb'\(([^)]*)\) "[^"]*" (.*)$')
_META = re.compile(rb'UID (\d+)|FLAGS \(([^)]*)\)|INTERNALDATE "([^"]+)"')


class TestDovecot(DovecotImap):
    __test__ = False

    def __init__(self, root: Path, port: int) -> None:
        # Dovecot's default Maildir++ layout (".Archive.2024"), plain passwords, and two
        # special-use folders: "Sent Messages" (a name mailwing also recognises) and
        # "Papierkorb" (\Trash only by its LIST attribute).
        super().__init__(root, port, clients=4, scheme="PLAIN", namespace_extra=(
            '  mailbox "Sent Messages" {\n    special_use = \\Sent\n  }\n'
            '  mailbox "Papierkorb" {\n    special_use = \\Trash\n  }'))

    def login(self, address: str, password: str = "secret") -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        client.login(address, password)
        return client

    def chown_tree(self, path: Path) -> None:
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), self.uid, self.gid)
        os.chown(path, self.uid, self.gid)


@contextmanager
def dovecot(root: Path, users: tuple[str, ...] = ("alice@example.org",)) -> Iterator[TestDovecot]:
    """A throwaway Dovecot. Its folder is a short one made here and linked from ``root``:
    Dovecot's UNIX sockets live in it, and under pytest's long temporary paths (xdist adds
    ``popen-gwN/``) their names pass the 108-byte limit ("File name too long")."""
    require_binary("dovecot")
    if os.geteuid() != 0:
        skip_or_fail("Dovecot must be started as root (it drops privileges itself)")
    short = Path(tempfile.mkdtemp(prefix="mw-dc-"))
    os.chmod(short, 0o755)  # Dovecot's unprivileged processes must reach the mail inside
    root.parent.mkdir(parents=True, exist_ok=True)
    root.symlink_to(short, target_is_directory=True)
    try:
        with _running(short, users) as server:
            yield server
    finally:
        shutil.rmtree(short, ignore_errors=True)


@contextmanager
def _running(root: Path, users: tuple[str, ...]) -> Iterator[TestDovecot]:
    server = TestDovecot(root, free_port())
    server.set_users({u: "secret" for u in users})
    for u in users:
        home = server.maildir(u)
        home.mkdir(parents=True, exist_ok=True)
        server.chown_tree(home.parent)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def imap_state(client: imaplib.IMAP4) -> dict[str, list[tuple[int, frozenset[str], str, str]]]:
    """{folder: [(uid, flags, INTERNALDATE, sha256 of BODY[])]} as an IMAP client sees it."""
    out = {}
    typ, listing = client.list()
    assert typ == "OK"
    for line in listing:
        assert isinstance(line, bytes)
        m = _LIST.match(line)
        assert m, line
        if b"\\noselect" in m.group(1).lower():
            continue
        name = m.group(2).strip(b'"').decode()
        typ, _ = client.select(f'"{name}"', readonly=True)
        assert typ == "OK", name
        typ, data = client.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        rows = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            uid = flags = date = None
            for m in _META.finditer(item[0]):
                uid = int(m.group(1)) if m.group(1) else uid
                flags = m.group(2) if m.group(2) is not None else flags
                date = m.group(3) if m.group(3) else date
            assert uid is not None and flags is not None and date is not None
            fl = frozenset(f for f in flags.decode().split() if f != "\\Recent")
            rows.append((uid, fl, date.decode(), hashlib.sha256(item[1]).hexdigest()))
        out[name] = sorted(rows)
    return out


def append(client: imaplib.IMAP4, folder: str, data: bytes, flags: str, when: float) -> None:
    typ, resp = client.append(f'"{folder}"', f"({flags})" if flags else None,
                              imaplib.Time2Internaldate(time.gmtime(when)), data)
    assert typ == "OK", resp
