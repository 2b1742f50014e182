"""LIST-EXTENDED (RFC 5258), its SPECIAL-USE options (RFC 6154) and LIST-STATUS (RFC 5819)
over real sockets on both backends."""

from __future__ import annotations

from pathlib import Path

import imapclient
import pytest

from tests.protocol.test_imap_support import PASSWORD, USER, Raw, connect, ok, simple, start
from tests.support import MailwingServer


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path,
        database_url: str) -> MailwingServer:
    srv = start(server_factory, tmp_path, database_url)
    c = connect(srv)
    # Fruit exists unsubscribed with a subscribed child (CREATE subscribes; undo it)
    for name in ("Fruit", "Fruit/Apple", "Fruit/Banana", "Veg/Leek"):
        ok(c.create(name))
    for name in ("Fruit", "Fruit/Apple", "Junk", "Veg", "Veg/Leek"):
        ok(c.unsubscribe(name))
    ok(c.append("Fruit/Apple", "", None, simple("one")))
    ok(c.append("Fruit/Apple", r"(\Seen)", None, simple("two")))
    c.logout()
    return srv


def session(srv: MailwingServer) -> Raw:
    r = Raw(srv.ports["imap"])
    r.command(f'l LOGIN {USER} "{PASSWORD}"'.encode())
    return r


def test_capabilities(srv: MailwingServer) -> None:
    caps = connect(srv).capabilities
    assert "LIST-EXTENDED" in caps and "LIST-STATUS" in caps


def test_subscribed_selection_and_recursivematch(srv: MailwingServer) -> None:
    r = session(srv)
    got = r.command(b'a LIST (SUBSCRIBED) "" "*"')
    assert b'* LIST (\\Subscribed) "/" Fruit/Banana' in got
    assert not any(b" Junk" in x or x.endswith(b" Fruit") for x in got)
    assert b'* LIST (\\Subscribed) "/" INBOX' in got
    # % stops at Fruit: without RECURSIVEMATCH it is not listed (not subscribed) ...
    assert not any(x.endswith(b" Fruit") for x in r.command(b'b LIST (SUBSCRIBED) "" "%"'))
    # ... with it, Fruit comes with CHILDINFO
    got = r.command(b'c LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)')
    assert b'* LIST (\\HasChildren) "/" Fruit ("CHILDINFO" ("SUBSCRIBED"))' in got
    assert not any(b"Veg" in x for x in got)
    assert r.command(b'd LIST (RECURSIVEMATCH) "" "*"')[-1].startswith(b"d BAD")
    assert r.command(b'e LIST (REMOTE RECURSIVEMATCH) "" "*"')[-1].startswith(b"e BAD")
    assert r.command(b'f LIST (BOGUS) "" "*"')[-1].startswith(b"f BAD")


def test_return_options(srv: MailwingServer) -> None:
    r = session(srv)
    got = r.command(b'a LIST "" ("Veg" "Fruit/%" "INBOX") RETURN (SUBSCRIBED CHILDREN)')
    assert got[:-1] == [
        b'* LIST (\\HasChildren) "/" Veg',
        b'* LIST (\\HasNoChildren) "/" Fruit/Apple',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Banana',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
    ]
    got = r.command(b'b LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE)')
    names = sorted(x.rsplit(b" ", 1)[1] for x in got[:-1])
    assert names == [b"Archive", b"Drafts", b"Junk", b"Sent", b"Trash"]
    assert b'* LIST (\\Sent) "/" Sent' in got  # neither \\Subscribed nor children: unasked
    assert r.command(b'c LIST "" "*" RETURN (BOGUS)')[-1].startswith(b"c BAD")


def test_list_status(srv: MailwingServer) -> None:
    r = session(srv)
    got = r.command(b'a LIST "" "Fruit/*" RETURN (STATUS (MESSAGES UNSEEN SIZE))')
    size = 2 * len(simple("one"))
    assert got[:-1] == [
        b'* LIST () "/" Fruit/Apple',
        b"* STATUS Fruit/Apple (MESSAGES 2 UNSEEN 1 SIZE %d)" % size,
        b'* LIST () "/" Fruit/Banana',
        b"* STATUS Fruit/Banana (MESSAGES 0 UNSEEN 0 SIZE 0)",
    ]
    assert r.command(b'c LIST "" "*" RETURN (STATUS (BOGUS))')[-1].startswith(b"c BAD")
    assert r.command(b'd LIST "" "*" RETURN (STATUS ())')[-1].startswith(b"d BAD")


def test_imapclient_list_calls(srv: MailwingServer) -> None:
    client = imapclient.IMAPClient("127.0.0.1", port=srv.ports["imap"], ssl=False, timeout=30)
    client.login(USER, PASSWORD)
    sub = client.list_sub_folders()
    assert any(name == "Fruit/Banana" for _, _, name in sub)
    found = client.find_special_folder(imapclient.imapclient.SENT)
    assert found == "Sent"
    client.logout()
