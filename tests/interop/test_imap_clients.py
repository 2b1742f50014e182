"""Real IMAP clients (mbsync, offlineimap, curl) against a real ``mailwing serve``.

What each test proves is what a user would see: a 500-message mailbox synchronised both ways
with its flags (mbsync over STARTTLS, offlineimap over implicit TLS, RFC 3501 sections 6.4.5,
6.4.6, 6.3.11 and RFC 4315 UIDPLUS, which both use to learn the UIDs of what they upload), a
third run that finds nothing to do (UIDVALIDITY and UIDs stable, RFC 3501 section 2.3.1.1),
and curl's LIST (with the RFC 6154 special-use attributes), byte-exact UID FETCH and APPEND.
The server's state is read back with :mod:`imaplib`; certificates are verified throughout (a
private CA from the interop conftest).

A missing client skips the test on a laptop and fails it in CI (``MAILWING_REQUIRE_CLIENTS=1``).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.interop.conftest import TlsFiles
from tests.interop.imap_support import (
    ImapTarget,
    append_all,
    expected_letters,
    maildir_messages,
    seed_flags,
    seed_message,
    server_state,
    set_letters,
    snapshot,
)
from tests.interop.messages import BIG, DOTS, PLAIN, UTF8, comparable, split_trace
from tests.support import MailwingServer, require_binary

pytestmark = pytest.mark.interop

ADDRESS = "alice@example.com"
PASSWORD = "correct horse battery staple"
COUNT = 500
TIMEOUT = 300
SPECIAL_USE = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk",
               "Archive": "\\Archive"}


@dataclass
class ImapEnv:
    server: MailwingServer
    target: ImapTarget


def _start(factory: type[MailwingServer], root: Path, url: str, tls: TlsFiles) -> ImapEnv:
    extra = f'[tls]\ncert_file = "{tls.cert}"\nkey_file = "{tls.key}"\n'
    server = factory(root=root, database_url=url, enable=("imap", "imaps"), extra_config=extra)
    server.start()
    server.add_user(ADDRESS, PASSWORD)
    return ImapEnv(server, ImapTarget("127.0.0.1", server.ports["imap"], server.ports["imaps"],
                                      ADDRESS, PASSWORD, tls.ca))


@pytest.fixture
def imap_env(server_factory: type[MailwingServer], tmp_path: Path,
             tls_files: TlsFiles) -> ImapEnv:
    """A server on SQLite."""
    return _start(server_factory, tmp_path / "server", f"sqlite:///{tmp_path / 'mw.db'}",
                  tls_files)


@pytest.fixture
def imap_env_any(server_factory: type[MailwingServer], tmp_path: Path, tls_files: TlsFiles,
                 database_url: str) -> ImapEnv:
    """The same, once per storage backend (SQLite and PostgreSQL)."""
    return _start(server_factory, tmp_path / "server", database_url, tls_files)


def run(*cmd: str, check: bool = True, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, cwd=cwd,
                            env={**os.environ, "HOME": str(cwd or os.environ.get("HOME", "/"))})
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd[0]} exited {result.returncode}:\n"
                             f"{result.stdout.decode(errors='replace')[-4000:]}\n"
                             f"{result.stderr.decode(errors='replace')[-4000:]}")
    return result


def seed_inbox(target: ImapTarget) -> None:
    """500 distinct messages with mixed flags, APPENDed in one session."""
    client = target.login()
    try:
        append_all(client, "INBOX", ((seed_message(n), seed_flags(n))
                                     for n in range(1, COUNT + 1)))
    finally:
        client.logout()


def without_tuid(data: bytes) -> bytes:
    """mbsync adds an ``X-TUID`` field to the header of what it stores (its own bookkeeping,
    documented in mbsync(1)); nothing else may differ."""
    head, sep, body = data.partition(b"\n\n")
    return re.sub(rb"^X-TUID: [^\n]*\n", b"", head + b"\n", flags=re.M)[:-1] + sep + body


def assert_downloaded(folder: Path) -> dict[str, tuple[Path, str]]:
    """All 500 messages arrived, with their flags as Maildir letters and their bytes intact."""
    local = maildir_messages(folder)
    assert len(local) == COUNT
    for n in range(1, COUNT + 1):
        path, letters = local[f"<sync-{n}@example.org>"]
        assert letters == expected_letters(seed_flags(n)), (n, path.name)
        assert without_tuid(comparable(path.read_bytes())) == comparable(seed_message(n)), n
    return local


NEW_MESSAGE = seed_message(9999)


def change_locally(folder: Path, local: dict[str, tuple[Path, str]]) -> dict[int, set[str]]:
    """What a user does in a local mail reader; returns the flags now expected for the
    messages it touched (everything else keeps :func:`seed_flags`)."""
    def path(n: int) -> Path:
        return local[f"<sync-{n}@example.org>"][0]

    set_letters(path(1), "S")  # read
    set_letters(path(2), "F")  # flagged
    set_letters(path(3), "")  # marked unread again
    set_letters(path(15), "")  # was seen and flagged
    path(4).unlink()  # deleted
    (folder / "new" / f"{int(time.time())}.interop1.localhost").write_bytes(
        NEW_MESSAGE.replace(b"\r\n", b"\n"))
    return {1: {"\\Seen"}, 2: {"\\Flagged"}, 3: set(), 15: set()}


def assert_uploaded(target: ImapTarget, changed: dict[int, set[str]]) -> None:
    state = server_state(target)
    expected = {f"<sync-{n}@example.org>": changed.get(n, set(seed_flags(n)))
                for n in range(1, COUNT + 1) if n != 4}
    expected["<sync-9999@example.org>"] = set()
    assert set(state) == set(expected)
    wrong = {mid: (set(s.flags) - {"\\Recent"}, expected[mid]) for mid, s in state.items()
             if set(s.flags) - {"\\Recent"} != expected[mid]}
    assert not wrong


def round_trip(target: ImapTarget, folder: Path, sync: Callable[[], str]) -> None:
    """Seed 500 messages, sync down and check them, change the Maildir, sync up and check
    the server."""
    seed_inbox(target)
    sync()
    local = assert_downloaded(folder)
    changed = change_locally(folder, local)
    sync()
    assert_uploaded(target, changed)


# -- mbsync ---------------------------------------------------------------------------------

def mbsync_config(home: Path, target: ImapTarget) -> Path:
    """``Host localhost``: mbsync 1.4 checks the certificate against DNS names only, not
    against IP address entries (the server listens on 127.0.0.1, which localhost reaches)."""
    rc = home / "mbsyncrc"
    (home / "mail").mkdir(exist_ok=True)  # mbsync creates folders, not the store's root
    rc.write_text(f"""\
IMAPAccount mailwing
Host localhost
Port {target.port}
User {target.user}
Pass "{target.password}"
SSLType STARTTLS
SystemCertificates no
CertificateFile {target.ca_file}
AuthMechs PLAIN

IMAPStore remote
Account mailwing

MaildirStore local
Path {home}/mail/
Inbox {home}/mail/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX
Sync All
Create Both
Expunge Both
SyncState *
""")
    return rc


#: Commands that would transfer or change something (a no-op sync sends none of them).
_WRITES = re.compile(r"APPEND|STORE|EXPUNGE|COPY|MOVE|BODY|RFC822|CREATE|DELETE", re.I)


def mbsync(home: Path, rc: Path, *extra: str) -> str:
    out = run(require_binary("mbsync"), "-V", *extra, "-c", str(rc), "sync", cwd=home)
    return out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")


def test_mbsync_two_way(imap_env_any: ImapEnv, tmp_path: Path) -> None:
    """On both backends, over STARTTLS: server to Maildir with flags, local changes back to the
    server, then a run that sends no command that transfers or changes anything."""
    home = tmp_path / "mbsync"
    home.mkdir()
    rc = mbsync_config(home, imap_env_any.target)
    round_trip(imap_env_any.target, home / "mail" / "INBOX", lambda: mbsync(home, rc))
    folder = home / "mail" / "INBOX"
    before = (server_state(imap_env_any.target), snapshot(folder))
    output = mbsync(home, rc, "-Dn")  # -Dn: log the IMAP commands it sends (">>> tag ...")
    assert (server_state(imap_env_any.target), snapshot(folder)) == before
    sent = re.findall(r"^>>> \d+ (.*)$", output, re.M)
    assert any(c.startswith("UID FETCH") for c in sent), output[-3000:]
    assert not [c for c in sent if _WRITES.search(c)], sent


# -- offlineimap ----------------------------------------------------------------------------

def offlineimap_config(home: Path, target: ImapTarget) -> Path:
    """Implicit TLS, verified against the test CA; ``auth_mechanisms = LOGIN`` is the IMAP
    LOGIN command (mbsync uses AUTHENTICATE PLAIN, so both ways of logging in are covered)."""
    rc = home / "offlineimaprc"
    rc.write_text(f"""\
[general]
accounts = mailwing
metadata = {home}/metadata
ui = quiet

[Account mailwing]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {home}/mail

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = {target.tls_port}
remoteuser = {target.user}
remotepass = {target.password}
ssl = yes
sslcacertfile = {target.ca_file}
auth_mechanisms = LOGIN
folderfilter = lambda name: name == 'INBOX'
createfolders = False
maxconnections = 1
""")
    return rc


def offlineimap(home: Path, rc: Path) -> str:
    out = run(require_binary("offlineimap"), "-c", str(rc), "-o", "-u", "basic", cwd=home)
    text = out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")
    assert "ERROR" not in text, text[-4000:]
    return text


def test_offlineimap_two_way(imap_env: ImapEnv, tmp_path: Path) -> None:
    """The same round trip with offlineimap over implicit TLS (``imaps`` listener)."""
    home = tmp_path / "offlineimap"
    home.mkdir()
    rc = offlineimap_config(home, imap_env.target)
    folder = home / "mail" / "INBOX"
    round_trip(imap_env.target, folder, lambda: offlineimap(home, rc))
    # offlineimap renames an uploaded file to record its new UID; settle that first.
    offlineimap(home, rc)
    before = (server_state(imap_env.target), snapshot(folder))
    output = offlineimap(home, rc)
    assert (server_state(imap_env.target), snapshot(folder)) == before
    assert not re.search(r"Copy message|Deleting \d+ messages|Adding flag|Deleting flag",
                         output), output[-2000:]


# -- curl -----------------------------------------------------------------------------------

def curl(env: ImapEnv, url: str, *extra: str, check: bool = True
         ) -> subprocess.CompletedProcess[bytes]:
    exe = require_binary("curl")
    return run(exe, "--silent", "--show-error", "--max-time", "120",
               "--cacert", str(env.target.ca_file),
               "--user", f"{env.target.user}:{env.target.password}", *extra, url, check=check)


def assert_wire_exact(got: bytes, delivered: bytes) -> None:
    """``got`` is the wire form: the trace fields added by delivery, then ``delivered``."""
    trace, rest = split_trace(got)
    assert [t.split(b":")[0] for t in trace] == [b"Return-Path", b"Delivered-To"]
    assert rest == delivered, f"{len(rest)} octets back for {len(delivered)} delivered"


def list_attributes(listing: str) -> dict[str, str]:
    """Mailbox name -> attribute text of each ``* LIST`` line with the "/" delimiter."""
    return {m.group(2).strip('"'): m.group(1) for m in
            re.finditer(r'^\* LIST \(([^)]*)\) "/" (.+?)\r?$', listing, re.M)}


def test_curl_starttls_list_fetch_append(imap_env_any: ImapEnv, tmp_path: Path) -> None:
    """On both backends, over STARTTLS (``--ssl-reqd``): LIST shows the six standard mailboxes
    with their special-use attributes, UID FETCH returns each delivered message byte for byte
    (logged in with AUTHENTICATE PLAIN), as do its TEXT and HEADER sections, SEARCH finds by
    subject, an upload APPENDs to Sent, and a wrong password is refused.
    (The LOGIN command is what offlineimap uses below; curl 7.88 cannot be told to use it.)"""
    env = imap_env_any
    for data in (PLAIN, DOTS, UTF8):
        env.server.deliver(ADDRESS, data)
    base = f"imap://127.0.0.1:{env.target.port}/"
    listing = curl(env, base, "--ssl-reqd").stdout.decode()
    names = list_attributes(listing)
    assert set(names) >= {"INBOX", *SPECIAL_USE}, listing
    if not all(attr in names[name] for name, attr in SPECIAL_USE.items()):
        # RFC 6154 section 2: the attributes MAY be left out of a plain LIST; then they must
        # come with the RETURN (SPECIAL-USE) option.
        special = curl(env, base, "--ssl-reqd", "--request",
                       'LIST "" "*" RETURN (SPECIAL-USE)').stdout.decode()
        names = list_attributes(special)
    assert {n: a for n, a in SPECIAL_USE.items() if a not in names.get(n, "")} == {}, names

    for uid, data in ((1, PLAIN), (2, DOTS), (3, UTF8)):
        got = curl(env, f"{base}INBOX;UID={uid}", "--ssl-reqd",
                   "--login-options", "AUTH=PLAIN").stdout
        assert_wire_exact(got, data)
    # BODY[TEXT] and BODY[HEADER] sections (RFC 3501 section 6.4.5), and SEARCH via the URL.
    text = curl(env, f"{base}INBOX;UID=3;SECTION=TEXT", "--ssl-reqd").stdout
    assert text == UTF8.split(b"\r\n\r\n", 1)[1]
    header = curl(env, f"{base}INBOX;UID=2;SECTION=HEADER", "--ssl-reqd").stdout
    assert split_trace(header)[1] == DOTS.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    found = curl(env, f"{base}INBOX?SUBJECT%20dots", "--ssl-reqd").stdout
    assert found.split() == [b"*", b"SEARCH", b"2"], found

    upload = tmp_path / "upload.eml"
    upload.write_bytes(PLAIN.replace(b"Subject: plain", b"Subject: uploaded"))
    curl(env, f"{base}Sent", "--ssl-reqd", "--upload-file", str(upload))
    client = env.target.login()
    try:
        typ, exists = client.select("Sent", readonly=True)
        assert typ == "OK" and exists == [b"1"], exists
        typ, fetched = client.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK" and isinstance(fetched[0], tuple), fetched
        assert fetched[0][1] == upload.read_bytes()
    finally:
        client.logout()

    denied = curl(env, base, "--ssl-reqd", "--user", f"{ADDRESS}:wrong", check=False)
    assert denied.returncode == 67, denied  # CURLE_LOGIN_DENIED


def test_curl_imaps_big_message(imap_env: ImapEnv) -> None:
    """Implicit TLS (``imaps://``): a 10 MB message comes back byte for byte."""
    env = imap_env
    env.server.deliver(ADDRESS, BIG)
    got = curl(env, f"imaps://127.0.0.1:{env.target.tls_port}/INBOX;UID=1").stdout
    assert_wire_exact(got, BIG)
