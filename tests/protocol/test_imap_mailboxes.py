"""IMAP mailbox management on SQLite: CREATE (parents, USE), DELETE, RENAME (incl. INBOX),
SUBSCRIBE, LIST/LSUB patterns and attributes, STATUS, NAMESPACE, ID, ENABLE, UNSELECT,
CLOSE; imaplib and imapclient."""

from __future__ import annotations

from pathlib import Path

import imapclient
import pytest

from tests.protocol.test_imap_support import PASSWORD, USER, Raw, connect, ok, simple, start
from tests.support import MailwingServer


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path) -> MailwingServer:
    return start(server_factory, tmp_path)


def test_create_list_delete_rename(srv: MailwingServer) -> None:
    c = connect(srv)
    assert ok(c.list('""', '""')) == [b'(\\Noselect) "/" ""']
    ok(c.create("Projects/2026/Q1"))  # parents made on the way (RFC 3501 6.3.3)
    typ, data = c.create("Projects")
    assert typ == "NO" and b"[ALREADYEXISTS]" in data[0]
    assert ok(c.list('""', "Projects/%")) == [b'(\\HasChildren) "/" Projects/2026']
    assert ok(c.list('"Projects/"', "*")) == [
        b'(\\HasChildren) "/" Projects/2026', b'(\\HasNoChildren) "/" Projects/2026/Q1']
    top = ok(c.list('""', "%"))
    assert b'(\\HasNoChildren) "/" INBOX' in top
    assert b'(\\HasNoChildren \\Sent) "/" Sent' in top
    assert b'(\\HasChildren) "/" Projects' in top
    assert ok(c.list('""', "inbox")) == [b'(\\HasNoChildren) "/" INBOX']
    ok(c.create("Other/x"))
    ok(c.delete("Other"))  # children stay; the name becomes \Noselect (RFC 3501 6.3.4)
    typ, data = c.delete("Other")
    assert typ == "NO" and b"[INUSE]" in data[0]
    typ, data = c.delete("INBOX")
    assert typ == "NO"
    ok(c.rename("Projects", "Work"))
    assert ok(c.list('""', "Work/*")) == [
        b'(\\HasChildren) "/" Work/2026', b'(\\HasNoChildren) "/" Work/2026/Q1']
    ok(c.delete("Work/2026/Q1"))
    ok(c.delete("Work/2026"))
    typ, _ = c.select("Work/2026")
    assert typ == "NO"
    # RENAME INBOX moves its mail and leaves INBOX empty (RFC 3501 6.3.5)
    ok(c.append("INBOX", "", None, simple("keep me")))
    ok(c.rename("INBOX", "Old"))
    assert ok(c.status("INBOX", "(MESSAGES)")) == [b"INBOX (MESSAGES 0)"]
    assert ok(c.status("Old", "(MESSAGES UNSEEN RECENT)")) == [
        b"Old (MESSAGES 1 UNSEEN 1 RECENT 1)"]
    c.logout()


def test_subscriptions_and_lsub(srv: MailwingServer) -> None:
    c = connect(srv)
    ok(c.create("a/b"))
    ok(c.subscribe("a/b"))
    ok(c.unsubscribe("a"))  # storage subscribes new mailboxes, the parent made too
    assert ok(c.lsub('""', "a/b")) == [b'() "/" a/b']
    top = ok(c.lsub('""', "%"))  # the default mailboxes are subscribed at creation
    assert b'() "/" INBOX' in top
    assert b'(\\Noselect) "/" a' in top  # only its child is subscribed
    ok(c.unsubscribe("a/b"))
    assert ok(c.lsub('""', "a/*")) == [None]
    c.logout()


def test_imapclient_special_use_namespace_id_status(srv: MailwingServer) -> None:
    client = imapclient.IMAPClient("127.0.0.1", port=srv.ports["imap"], ssl=False, timeout=30)
    client.login(USER, PASSWORD)
    assert client.namespace().personal == (("", "/"),)
    ident = client.id_({"name": "test"})
    assert b"mailwing" in repr(ident).encode(), ident
    assert client.find_special_folder(imapclient.imapclient.SENT) == "Sent"
    assert client.find_special_folder(imapclient.imapclient.TRASH) == "Trash"
    assert client._imap._simple_command("CREATE", "Spam2", "(USE (\\Junk))")[0] == "OK"
    flags = {name: f for f, _, name in client.list_folders()}
    assert b"\\Junk" in flags["Spam2"]
    client.append("INBOX", simple("one"), flags=[imapclient.SEEN])
    client.append("INBOX", simple("two"))
    st = client.folder_status("INBOX", ["MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY"])
    assert st[b"MESSAGES"] == 2 and st[b"UNSEEN"] == 1 and st[b"UIDNEXT"] == 3
    info = client.select_folder("INBOX")
    assert info[b"UIDVALIDITY"] == st[b"UIDVALIDITY"]
    assert info[b"EXISTS"] == 2 and info[b"UIDNEXT"] == 3
    client.set_flags([1, 2], [imapclient.DELETED])
    client.unselect_folder()  # UNSELECT: nothing is expunged
    client.select_folder("INBOX")
    assert client.search("ALL") == [1, 2]
    client.close_folder()  # CLOSE: \Deleted messages go, silently
    assert client.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 0
    client.logout()


def test_enable_noop_check_and_state_rules(srv: MailwingServer) -> None:
    r = Raw(srv.ports["imap"])
    assert r.command(b"a1 SELECT INBOX")[-1].startswith(b"a1 BAD")
    assert r.command(b"a2 FETCH 1 FLAGS")[-1].startswith(b"a2 BAD")
    assert r.command(f'a3 LOGIN {USER} "{PASSWORD}"'.encode())[-1].startswith(b"a3 OK")
    assert r.command(b"a4 ENABLE CONDSTORE") == [b"* ENABLED CONDSTORE", b"a4 OK Enabled"]
    assert r.command(b"a5 FETCH 1 FLAGS")[-1].startswith(b"a5 BAD")
    assert r.command(b"a6 SELECT INBOX")[-1] == b"a6 OK [READ-WRITE] SELECT completed"
    assert r.command(b"a7 CHECK") == [b"a7 OK CHECK completed"]
    assert r.command(b"a8 ENABLE CONDSTORE")[-1].startswith(b"a8 BAD")  # before SELECT only
    assert r.command(b"a9 LOGIN x y")[-1].startswith(b"a9 BAD")
    assert r.command(b"b1 UNSELECT") == [b"b1 OK UNSELECT completed"]
    assert r.command(b"b2 LOGOUT") == [b"* BYE Logging out", b"b2 OK LOGOUT completed"]
    r.close()
