"""mutt (Debian's 2.2) with a header cache resynchronises a large mailbox through QRESYNC.

mutt is run twice, non-interactively in a pseudo-terminal (``-e 'push <quit>'``), over
implicit TLS with certificate verification (the interop CA). The first run downloads every
header and stores UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and its UID list in the header cache.
Between the runs another client changes a few flags and expunges a few messages. The second
run must learn exactly those changes through RFC 7162 and nothing more, which its debug log
(``-d 2``, every line on the wire) shows:

- ``ENABLE QRESYNC`` answered ``* ENABLED QRESYNC``; ``SELECT ... (CONDSTORE)`` answered with
  ``[HIGHESTMODSEQ n]``;
- mutt 2.2 does not send the ``(QRESYNC (...))`` SELECT parameter: it resynchronises with the
  QRESYNC form of UID FETCH, ``UID FETCH 1:N (FLAGS) (CHANGEDSINCE m VANISHED)`` (section
  3.2.6), which must be answered with ``* VANISHED (EARLIER)`` of the expunged UIDs and one
  FETCH (with MODSEQ) per changed message;
- no header is downloaded again.

If the server advertises COMPRESS=DEFLATE (RFC 4978), mutt (``imap_deflate``) must have used it;
otherwise that check is skipped.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.interop.conftest import TlsFiles
from tests.interop.imap_support import ImapTarget, append_all, seed_message
from tests.support import MailwingServer, require_binary

pytestmark = pytest.mark.interop

ADDRESS = "alice@example.com"
PASSWORD = "correct horse battery staple"
COUNT = 400
CHANGED = (17, 150, 399)  # UIDs whose flags change between the runs
EXPUNGED = (3, 4, 200)  # UIDs expunged between the runs


def run_mutt(home: Path, muttrc: Path, timeout: float = 120.0) -> str:
    """One mutt session that opens the spool mailbox and quits; returns its debug log."""
    master, slave = pty.openpty()
    env = {**os.environ, "HOME": str(home), "TERM": "xterm", "LC_ALL": "C.UTF-8"}
    proc = subprocess.Popen(["mutt", "-n", "-F", str(muttrc), "-d", "2", "-e", "push <quit>"],
                            stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
                            cwd=home)
    os.close(slave)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    os.read(master, 65536)  # keep the terminal drained
                except OSError:
                    break
        proc.wait(max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode == 0, f"mutt exited {proc.returncode}"
    log = home / ".muttdebug0"
    text = log.read_text(errors="replace")
    log.unlink()
    return text


def sent(log: str) -> list[str]:
    """The commands mutt sent (``4> tag ...`` and the pipelined lines that follow)."""
    out = []
    for line in log.splitlines():
        m = re.match(r"\[[^]]*\] \d+> (.*)", line)
        if m:
            out.append(m.group(1))
        elif re.match(r"[a-z]\d{4} ", line):
            out.append(line)
    return out


def received(log: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\[[^]]*\] \d+< (.*)$", log, re.M)]


@pytest.fixture
def target(server_factory: type[MailwingServer], tmp_path: Path,
           tls_files: TlsFiles) -> ImapTarget:
    extra = (f'[tls]\ncert_file = "{tls_files.cert}"\nkey_file = "{tls_files.key}"\n')
    server = server_factory(root=tmp_path / "server",
                            database_url=f"sqlite:///{tmp_path / 'mw.db'}",
                            enable=("imap", "imaps"), extra_config=extra)
    server.start()
    server.add_user(ADDRESS, PASSWORD)
    return ImapTarget("127.0.0.1", server.ports["imap"], server.ports["imaps"], ADDRESS,
                      PASSWORD, tls_files.ca)


def test_mutt_second_open_uses_qresync(target: ImapTarget, tmp_path: Path) -> None:
    require_binary("mutt")
    client = target.login()
    try:
        append_all(client, "INBOX", ((seed_message(n), ()) for n in range(1, COUNT + 1)))
        _, caps = client.capability()
        compress = b"COMPRESS=DEFLATE" in caps[0]
    finally:
        client.logout()
    home = tmp_path / "home"
    home.mkdir()
    url = f"imaps://{ADDRESS.replace('@', '%40')}@127.0.0.1:{target.tls_port}"
    muttrc = home / "muttrc"
    muttrc.write_text(f"""\
set folder="{url}/"
set spoolfile="{url}/INBOX"
set imap_pass="{PASSWORD}"
set ssl_force_tls=yes
set ssl_ca_certificates_file="{target.ca_file}"
set certificate_file="{home}/certificates"
set header_cache="{home}/hcache"
set imap_condstore=yes
set imap_qresync=yes
set imap_deflate=yes
set imap_passive=yes
set mark_old=no
set move=no
set quit=yes
set mail_check=3600
""")
    first = run_mutt(home, muttrc)
    assert any("ENABLE QRESYNC" in c for c in sent(first)), sent(first)
    assert "* ENABLED QRESYNC" in received(first)
    assert sum("BODY.PEEK[HEADER.FIELDS" in c for c in sent(first)) >= 1
    highest = int(re.findall(r"\[HIGHESTMODSEQ (\d+)\]", first)[-1])

    other = target.login()
    try:
        assert other.select("INBOX")[0] == "OK"
        for uid in CHANGED:
            assert other.uid("STORE", str(uid), "+FLAGS", "(\\Flagged)")[0] == "OK"
        deleted = ",".join(str(u) for u in EXPUNGED)
        assert other.uid("STORE", deleted, "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert other.expunge()[0] == "OK"
    finally:
        other.logout()

    second = run_mutt(home, muttrc)
    commands, answers = sent(second), received(second)
    assert not any("BODY.PEEK[HEADER" in c for c in commands), commands  # all from cache
    resync = [c for c in commands if "VANISHED" in c]
    assert len(resync) == 1, commands
    assert re.search(rf"UID FETCH 1:{COUNT} \(FLAGS\) \(CHANGEDSINCE {highest} VANISHED\)",
                     resync[0]), resync
    assert "* VANISHED (EARLIER) 3:4,200" in answers, answers
    fetched = [a for a in answers if re.match(r"\* \d+ FETCH \(", a)]
    assert len(fetched) == len(CHANGED), fetched  # the changes, nothing else
    assert all("MODSEQ (" in a and "\\Flagged" in a for a in fetched), fetched
    if compress:  # another branch may add COMPRESS=DEFLATE; mutt then must use it
        assert any(c.endswith("COMPRESS DEFLATE") for c in commands + sent(first)), commands
