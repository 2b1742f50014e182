"""The session hook's pieces without a server: the resolver setting, the held message, the
quarantine mapping (over a real SQLite store)."""

from __future__ import annotations

from typing import Any

from mailwing.config import Settings
from mailwing.mailauth.dns import parse_resolver
from mailwing.mailauth.inbound import HeldMessage, finish_message, start_message
from mailwing.services.inbound import InboundMessage
from mailwing.services.policy import LocalRecipient, RemoteRecipient
from tests.dnsserver import DnsServer

TRACE = b"Return-Path: <a@sender.example>\r\nReceived: from x by y; now\r\n"
BODY = b"From: a@sender.example\r\nSubject: s\r\n\r\nbody\r\n"


def test_parse_resolver() -> None:
    assert parse_resolver("") is None
    assert parse_resolver("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_resolver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_resolver("::1") == ("::1", 53)
    assert parse_resolver("[::1]:5353") == ("::1", 5353)


def test_start_message_chooses(settings: Settings) -> None:
    local = LocalRecipient("b@x", 1, 1, 0)
    store: Any = object()
    held = start_message(store, settings, listener="smtp", user=None, recipients=[local])
    assert isinstance(held, HeldMessage) and held.mode == "check"
    plain = start_message(store, settings, listener="submission", user="a@x", recipients=[local])
    assert type(plain) is InboundMessage
    signing = start_message(store, settings, listener="submission", user="a@x",
                            recipients=[local, RemoteRecipient("c@y")])
    assert isinstance(signing, HeldMessage) and signing.mode == "sign"
    settings.auth.check_spf = settings.auth.check_dkim = settings.auth.check_dmarc = False
    assert type(start_message(store, settings, listener="smtp", user=None,
                              recipients=[local])) is InboundMessage


async def _user(store: Any) -> LocalRecipient:
    user, _ = await store.add_user("bob@example.test", "x", create_domain=True)
    inbox = await store.get_mailbox(user.id, "INBOX")
    return LocalRecipient(user.address, user.id, inbox.id, 0)


async def test_quarantine_and_header_placement(sqlite_store: Any, settings: Settings,
                                               dns_server: DnsServer) -> None:
    bob = await _user(sqlite_store)
    dns_server.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=quarantine")
    message = HeldMessage(sqlite_store, "check")
    await message.begin(TRACE)
    await message.write(BODY)
    targets = await finish_message(sqlite_store, settings, "mx.test", message, [bob],
                                   client_ip="127.0.0.1", helo="client.example",
                                   sender="a@sender.example")
    junk = await sqlite_store.get_mailbox(bob.user_id, "Junk")
    assert [t.mailbox_id for t in targets] == [junk.id]
    (entry,) = await message.commit(targets)
    stored = await sqlite_store.read_content(entry.content.sha256)
    return_path, received = TRACE.split(b"\r\n", 1)
    assert stored.startswith(return_path + b"\r\nAuthentication-Results: mx.test;")
    assert b"dmarc=fail (p=quarantine dis=quarantine)" in stored
    assert stored.endswith(received + BODY)


async def test_large_message_streams_unchanged(sqlite_store: Any, settings: Settings) -> None:
    bob = await _user(sqlite_store)
    message = HeldMessage(sqlite_store, "check", limit=16)
    await message.begin(TRACE)
    await message.write(BODY)  # over the limit: released at once, without a header
    assert message.held is None
    assert await finish_message(sqlite_store, settings, "mx.test", message, [bob],
                                client_ip="127.0.0.1", helo="h", sender="") == [bob]
    await message.commit([bob])
    assert message.header_block == b"From: a@sender.example\r\nSubject: s\r\n"
