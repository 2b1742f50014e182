"""CONDSTORE and QRESYNC over real sockets (RFC 7162), on SQLite and PostgreSQL: ENABLE and
the commands that enable CONDSTORE implicitly, HIGHESTMODSEQ, MODSEQ in FETCH, CHANGEDSINCE,
UNCHANGEDSINCE with [MODIFIED], SEARCH MODSEQ, QRESYNC SELECT with VANISHED (EARLIER), VANISHED
instead of EXPUNGE (also at NOOP and in IDLE), [CLOSED], the error cases, the retention bound
and imapclient's condstore calls."""

from __future__ import annotations

import re
from pathlib import Path

import imapclient
import pytest

from tests.protocol.test_imap_support import PASSWORD, USER, Raw, connect, ok, simple, start
from tests.support import MailwingServer

LOGIN = f'l LOGIN {USER} "{PASSWORD}"'.encode()


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path,
        database_url: str) -> MailwingServer:
    return start(server_factory, tmp_path, database_url)


def fill(srv: MailwingServer, count: int, mailbox: str = "INBOX") -> None:
    c = connect(srv)
    for i in range(count):
        ok(c.append(mailbox, "", None, simple(f"message {i + 1}")))
    c.logout()


def session(srv: MailwingServer, *enable: str) -> Raw:
    r = Raw(srv.ports["imap"])
    assert r.command(LOGIN)[-1].startswith(b"l OK")
    if enable:
        assert r.command(b"e ENABLE " + " ".join(enable).encode())[-1] == b"e OK Enabled"
    return r


def code(lines: list[bytes], name: bytes) -> int:
    for line in lines:
        m = re.search(rb"\[" + name + rb" (\d+)\]", line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"no [{name.decode()}] in {lines!r}")


def seq_modseqs(lines: list[bytes]) -> dict[int, int]:
    """message number -> modseq of every untagged FETCH carrying MODSEQ."""
    out = {}
    for line in lines:
        m = re.match(rb"\* (\d+) FETCH \(.*MODSEQ \((\d+)\)", line)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


def modseqs(lines: list[bytes]) -> dict[int, int]:
    """uid -> modseq of every untagged FETCH carrying both."""
    out = {}
    for line in lines:
        m = re.match(rb"\* \d+ FETCH \(.*UID (\d+).*MODSEQ \((\d+)\)", line)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


def test_condstore_commands(srv: MailwingServer) -> None:
    fill(srv, 5)
    r = session(srv)
    assert r.command(b"e ENABLE CONDSTORE X-UNKNOWN") == [b"* ENABLED CONDSTORE",
                                                         b"e OK Enabled"]
    lines = r.command(b"s SELECT INBOX")
    top = code(lines, b"HIGHESTMODSEQ")
    assert r.command(b"t STATUS INBOX (HIGHESTMODSEQ MESSAGES)")[0] == (
        b'* STATUS INBOX (HIGHESTMODSEQ %d MESSAGES 5)' % top)
    lines = r.command(b"f FETCH 1:* (MODSEQ)")
    assert len(lines) == 6 and lines[4] == b"* 5 FETCH (MODSEQ (%d))" % top
    # A STORE reports MODSEQ once CONDSTORE is on (RFC 7162 3.1.4); UID only with QRESYNC.
    assert r.command(b"a STORE 2 +FLAGS (\\Seen)") == [
        b"* 2 FETCH (FLAGS (\\Recent \\Seen) MODSEQ (%d))" % (top + 1),
        b"a OK STORE completed"]
    lines = r.command(b"b FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % top)
    assert lines == [b"* 2 FETCH (FLAGS (\\Recent \\Seen) MODSEQ (%d))" % (top + 1),
                     b"b OK FETCH completed"]
    assert r.command(b"b2 UID FETCH 1:* (UID) (CHANGEDSINCE %d)" % (top + 1)) == [
        b"b2 OK UID FETCH completed"]
    # UNCHANGEDSINCE: message 2 changed after `top`, so it is left alone and reported.
    lines = r.command(b"c STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % top)
    assert lines[-1] == b"c OK [MODIFIED 2] Conditional STORE failed"
    assert seq_modseqs(lines) == {1: top + 2, 3: top + 2}
    lines = r.command(b"d UID STORE 2:4 (UNCHANGEDSINCE %d) +FLAGS.SILENT ($Done)" % (top + 1))
    assert lines[-1] == b"d OK [MODIFIED 3] Conditional STORE failed"
    # .SILENT still reports the new MODSEQ, without FLAGS (RFC 7162 3.1.3)
    assert [x for x in lines if b"FETCH" in x] == [
        b"* 2 FETCH (UID 2 MODSEQ (%d))" % (top + 3), b"* 4 FETCH (UID 4 MODSEQ (%d))" % (top + 3)]
    assert r.command(b"d2 STORE 1 (UNCHANGEDSINCE 0) -FLAGS (\\Flagged)")[-1] == (
        b"d2 OK [MODIFIED 1] Conditional STORE failed")
    # SEARCH MODSEQ (both forms), with the highest mod-sequence of what matched.
    assert r.command(b"g SEARCH MODSEQ %d" % (top + 2)) == [
        b"* SEARCH 1 2 3 4 (MODSEQ %d)" % (top + 3), b"g OK SEARCH completed"]
    assert r.command(b'h UID SEARCH MODSEQ "/flags/\\\\flagged" all %d UNSEEN' % (top + 3)) == [
        b"* SEARCH 4 (MODSEQ %d)" % (top + 3), b"h OK UID SEARCH completed"]
    assert r.command(b"i SEARCH MODSEQ 999999") == [b"* SEARCH", b"i OK SEARCH completed"]
    assert r.command(b"j STATUS INBOX (HIGHESTMODSEQ)")[0] == (
        b"* STATUS INBOX (HIGHESTMODSEQ %d)" % (top + 3))
    # QRESYNC things without ENABLE QRESYNC are BAD (RFC 7162 3.2.5, 3.2.6).
    assert r.command(b"k UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)")[-1].startswith(b"k BAD")
    assert r.command(b"m SELECT INBOX (QRESYNC (1 1))")[-1].startswith(b"m BAD")
    assert r.command(b"n FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)")[-1].startswith(b"n BAD")
    r.close()


def test_condstore_enabled_implicitly(srv: MailwingServer) -> None:
    fill(srv, 2)
    r = session(srv)
    r.command(b"s SELECT INBOX")
    assert r.command(b"a STORE 1 +FLAGS (\\Seen)")[0] == b"* 1 FETCH (FLAGS (\\Recent \\Seen))"
    assert r.command(b"b FETCH 1 (MODSEQ)")[0].startswith(b"* 1 FETCH (MODSEQ (")
    assert b"MODSEQ" in r.command(b"c STORE 1 -FLAGS (\\Seen)")[0]
    r.close()
    for enabler in (b"s SELECT INBOX (CONDSTORE)", b"s STATUS INBOX (HIGHESTMODSEQ)",
                    b"s SEARCH MODSEQ 1", b"s FETCH 1 FLAGS (CHANGEDSINCE 1)",
                    b"s STORE 2 (UNCHANGEDSINCE 1000) +FLAGS ($Y)"):
        r = session(srv)
        r.command(b"x EXAMINE INBOX" if enabler.startswith(b"s SELECT") else b"x SELECT INBOX")
        assert r.command(enabler)[-1].startswith(b"s OK"), enabler
        if not enabler.startswith(b"s SELECT"):
            r.command(b"y SELECT INBOX")
        # a FETCH that sets \Seen reports MODSEQ too
        text = b" ".join(r.command(b"z FETCH 2 (BODY[TEXT])"))
        assert b"MODSEQ (" in text and b"UID" not in text, (enabler, text)
        r.command(b"z2 STORE 2 -FLAGS (\\Seen)")
        r.close()


def test_qresync_select_fetch_and_vanished(srv: MailwingServer) -> None:
    fill(srv, 8)
    a = session(srv, "QRESYNC")
    lines = a.command(b"s SELECT INBOX")
    uidvalidity, since = code(lines, b"UIDVALIDITY"), code(lines, b"HIGHESTMODSEQ")
    b = session(srv, "QRESYNC")
    b.command(b"s SELECT INBOX")
    # Session A changes: two flag changes, then an expunge of 3 and 5.
    a.command(b"a STORE 2,6 +FLAGS ($Seen2)")
    a.command(b"a2 STORE 3,5 +FLAGS (\\Deleted)")
    lines = a.command(b"a3 EXPUNGE")
    assert lines[0] == b"* VANISHED 3,5"  # not EXPUNGE, once QRESYNC is on (3.2.10)
    assert b"[HIGHESTMODSEQ" in lines[-1]
    top = code(lines, b"HIGHESTMODSEQ")
    # Session B learns it at NOOP as VANISHED plus the flag changes.
    lines = b.command(b"n NOOP")
    assert lines[0] == b"* VANISHED 3,5"
    # the new keyword is announced first (RFC 3501 7.2.6), then the flag change with its MODSEQ
    fetch = next(i for i, x in enumerate(lines)
                 if x.startswith(b"* 2 FETCH (UID 2 FLAGS ($Seen2) MODSEQ"))
    assert any(x.startswith(b"* FLAGS (") and b"$Seen2" in x for x in lines[1:fetch])
    # A third client resyncs from `since`: only the changes, nothing else.
    c = session(srv, "QRESYNC")
    lines = c.command(b"s SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity, since))
    assert lines[-1] == b"s OK [READ-WRITE] SELECT completed"
    assert code(lines, b"HIGHESTMODSEQ") == top
    tail = lines[lines.index(next(x for x in lines if b"[HIGHESTMODSEQ" in x)) + 1:-1]
    assert tail[0] == b"* VANISHED (EARLIER) 3,5"
    assert sorted(modseqs(tail)) == [2, 6] and len(tail) == 3
    # known-uids limits both lists; a wrong UIDVALIDITY gives a plain SELECT; [CLOSED] first.
    lines = c.command(b"t EXAMINE INBOX (QRESYNC (%d %d 1:4))" % (uidvalidity, since))
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed"
    assert b"* VANISHED (EARLIER) 3" in lines and sorted(modseqs(lines)) == [2]
    lines = c.command(b"u SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity + 1, since))
    assert not any(x.startswith(b"* VANISHED") for x in lines) and not modseqs(lines)
    # UID FETCH ... (CHANGEDSINCE n VANISHED)
    lines = c.command(b"v UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % since)
    assert lines[0] == b"* VANISHED (EARLIER) 3,5" and sorted(modseqs(lines)) == [2, 6]
    lines = c.command(b"w UID FETCH 4:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % since)
    assert lines[0] == b"* VANISHED (EARLIER) 5" and sorted(modseqs(lines)) == [6]
    assert c.command(b"x UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % top) == [
        b"x OK UID FETCH completed"]
    # CLOSE expunges silently; UNSELECT too is quiet; MOVE reports VANISHED.
    c.command(b"y SELECT INBOX")
    lines = c.command(b"z MOVE 1 Archive")
    assert lines[1] == b"* VANISHED 1", lines
    a.close()
    b.close()
    c.close()


def test_vanished_in_idle(srv: MailwingServer) -> None:
    fill(srv, 3)
    watcher = session(srv, "QRESYNC")
    watcher.command(b"s SELECT INBOX")
    watcher.send(b"i IDLE\r\n")
    assert watcher.line().startswith(b"+ ")
    other = connect(srv)
    ok(other.select("INBOX"))
    ok(other.store("2", "+FLAGS", "\\Deleted"))
    ok(other.expunge())
    other.logout()
    seen = [watcher.line().rstrip(b"\r\n")]
    while seen[-1] != b"* VANISHED 2":  # the \Deleted flag change may come first
        assert len(seen) < 3 and seen[-1].startswith(b"* 2 FETCH (UID 2 FLAGS"), seen
        seen.append(watcher.line().rstrip(b"\r\n"))
    assert watcher.line().startswith(b"* OK [HIGHESTMODSEQ ")
    watcher.send(b"DONE\r\n")
    assert watcher.until(b"i")[-1] == b"i OK IDLE completed"
    watcher.close()


def test_resync_beyond_the_retention_bound(server_factory: type[MailwingServer],
                                           tmp_path: Path, database_url: str) -> None:
    srv = start(server_factory, tmp_path, database_url,
                extra_config="[limits]\nexpunged_retention = 1\n")
    fill(srv, 9)
    a = session(srv, "QRESYNC")
    lines = a.command(b"s SELECT INBOX")
    uidvalidity, since = code(lines, b"UIDVALIDITY"), code(lines, b"HIGHESTMODSEQ")
    for uid in (2, 4, 7):
        a.command(b"a UID STORE %d +FLAGS (\\Deleted)" % uid)
        lines = a.command(b"b UID EXPUNGE %d" % uid)
    last = code(lines, b"HIGHESTMODSEQ")  # the tagged OK of UID EXPUNGE says it
    # From before the remembered window: every UID of known-uids that is gone (3.2.5.2).
    lines = a.command(b"d SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity, since))
    assert b"* VANISHED (EARLIER) 2,4,7" in lines
    lines = a.command(b"e SELECT INBOX (QRESYNC (%d %d 3:6))" % (uidvalidity, since))
    assert b"* VANISHED (EARLIER) 4" in lines
    # Within the window the exact answer is still given.
    lines = a.command(b"f UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % (last - 1))
    assert lines[0] == b"* VANISHED (EARLIER) 7"
    a.close()


def test_imapclient_condstore_calls(srv: MailwingServer) -> None:
    fill(srv, 4)
    client = imapclient.IMAPClient("127.0.0.1", port=srv.ports["imap"], ssl=False, timeout=30)
    client.login(USER, PASSWORD)
    assert client.has_capability("CONDSTORE") and client.has_capability("QRESYNC")
    assert client.enable("CONDSTORE") == [b"CONDSTORE"]
    info = client.select_folder("INBOX")
    top = info[b"HIGHESTMODSEQ"]
    assert client.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"] == top
    client.add_flags([2, 3], [b"$Important"])
    got = client.fetch([1, 2, 3, 4], ["FLAGS"], modifiers=[f"CHANGEDSINCE {top}"])
    assert sorted(got) == [2, 3] and got[2][b"MODSEQ"] == (top + 1,)
    assert client.search(["MODSEQ", str(top + 1)]) == [2, 3]
    client.logout()
