"""Accepting a message for local recipients: policy decisions, trace fields, one content in
one transaction, nothing stored when aborted (real SQLite storage)."""

from __future__ import annotations

from typing import Any

import pytest

from mailwing.config import Settings
from mailwing.proto.smtp.commands import Address, Mail
from mailwing.proto.smtp.replies import R, SmtpError
from mailwing.services import policy
from mailwing.services.delivery import QuotaExceeded
from mailwing.services.inbound import InboundMessage, Trace, received_header, return_path_header
from mailwing.services.passwords import hash_password


@pytest.fixture
async def store(sqlite_store: Any) -> Any:
    pw = hash_password("x")
    await sqlite_store.add_user("alice@example.test", pw, create_domain=True)
    await sqlite_store.add_user("bob@example.test", pw)
    await sqlite_store.add_user("tiny@example.test", pw, quota_bytes=100)
    return sqlite_store


async def refusal(store: Any, settings: Settings, address: str, *, auth: bool = False
                  ) -> object:
    try:
        await policy.check_recipient(store, settings, Address(address), authenticated=auth)
    except SmtpError as exc:
        return exc.reply
    return None


async def test_recipient_policy(store: Any) -> None:
    s = Settings()
    s.mail.local_domains = ["alias.test"]
    assert await refusal(store, s, "alice@example.test") is None
    assert await refusal(store, s, "ALICE@Example.Test") is None
    assert await refusal(store, s, "nobody@example.test") == R.UNKNOWN_USER
    assert await refusal(store, s, "alice@alias.test") == R.UNKNOWN_USER
    assert await refusal(store, s, "x@remote.test") == R.RELAY_DENIED
    assert await refusal(store, s, "x@remote.test", auth=True) is None  # queued (outbound)
    s.outbound.enabled = False
    assert await refusal(store, s, "x@remote.test", auth=True) == R.OUTBOUND_UNAVAILABLE
    assert await refusal(store, s, "postmaster") == R.RELAY_DENIED  # hostname not local


async def test_sender_policy() -> None:
    s = Settings()
    policy.check_sender(s, Mail(Address("anyone@x.test")), None)
    policy.check_sender(s, Mail(Address("Alice@Example.test")), "alice@example.test")
    for sender, reply in (("", R.NULL_SENDER_REFUSED), ("eve@x.test", R.SENDER_NOT_OWNED)):
        with pytest.raises(SmtpError) as info:
            policy.check_sender(s, Mail(Address(sender)), "alice@example.test")
        assert info.value.reply == reply
    policy.check_from_header(s, b"From: Alice <alice@example.test>\r\n", "alice@example.test")
    with pytest.raises(SmtpError):
        policy.check_from_header(s, b"From: a@example.test, Eve <eve@x.test>\r\n",
                                 "a@example.test")
    s.mail.enforce_sender = False
    policy.check_sender(s, Mail(Address("eve@x.test")), "alice@example.test")


def test_received_header_clauses() -> None:
    t = Trace(client_name="client.test", client_ip="192.0.2.7", hostname="mail.test",
              queue_id="ABC", tls="TLSv1.3:TLS_AES_128_GCM_SHA256", user="alice@example.test",
              recipient="bob@example.test")
    text = received_header(t, date="Thu, 1 Jan 2026 00:00:00 +0000").decode()
    assert text == ("Received: from client.test ([192.0.2.7])\r\n"
                    "\tby mail.test (mailwing) with ESMTPSA\r\n"
                    "\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)\r\n"
                    "\t(authenticated as alice@example.test)\r\n"
                    "\tid ABC\r\n\tfor <bob@example.test>; Thu, 1 Jan 2026 00:00:00 +0000\r\n")
    plain = Trace("c(x)", "::1", "mail.test", "Q", esmtp=False)
    assert "from cx ([IPv6:::1])" in received_header(plain).decode()
    assert "with SMTP\r\n" in received_header(plain).decode()
    assert "with UTF8SMTPS" in received_header(Trace("c", "1.2.3.4", "h", "Q", tls="TLSv1.3",
                                                     smtputf8=True)).decode()
    assert return_path_header("") == b"Return-Path: <>\r\n"


async def test_one_content_one_transaction_for_all_recipients(store: Any) -> None:
    s = Settings()
    targets = [await policy.check_recipient(store, s, Address(a), authenticated=False)
               for a in ("alice@example.test", "bob@example.test", "alice@example.test")]
    msg = InboundMessage(store)
    await msg.begin(b"Return-Path: <x@y.test>\r\n")
    await msg.write(b"From: x@y.test\r\nSubject: s\r\n\r\nbody\r\n")
    assert msg.header_block == b"From: x@y.test\r\nSubject: s\r\n"
    entries = await msg.commit(targets)
    assert len(entries) == 2  # the duplicate recipient gets one copy
    assert entries[0].content.sha256 == entries[1].content.sha256
    data = await store.read_content(entries[0].content.sha256)
    assert data == b"Return-Path: <x@y.test>\r\nFrom: x@y.test\r\nSubject: s\r\n\r\nbody\r\n"


async def test_abort_and_quota_store_nothing(store: Any) -> None:
    s = Settings()
    tiny = await policy.check_recipient(store, s, Address("tiny@example.test"),
                                        authenticated=False)
    msg = InboundMessage(store)
    await msg.begin(b"")
    await msg.write(b"x" * 200)
    with pytest.raises(QuotaExceeded):
        await msg.commit([tiny])
    msg2 = InboundMessage(store)
    await msg2.begin(b"Subject: y\r\n\r\n")
    await msg2.abort()
    inbox = await store.get_mailbox(tiny.user_id, "INBOX")
    assert await store.list_mail(inbox.id) == []


def test_received_date_is_formatted_once_per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """The date of the Received field is the one formatdate gives, made once per second
    (formatting it per message was ~3 % of a worker's time at SMTP intake, issue #9)."""
    from email import utils

    from mailwing.services import inbound

    calls: list[float | None] = []
    real = utils.formatdate

    def counted(timeval: float | None = None, localtime: bool = False,
                usegmt: bool = False) -> str:
        calls.append(timeval)
        return real(timeval, localtime, usegmt)

    monkeypatch.setattr(inbound, "formatdate", counted)
    monkeypatch.setattr(inbound, "_date", (-1, ""))
    clock = [1_700_000_000.2]
    monkeypatch.setattr(inbound.time, "time", lambda: clock[0])
    t = Trace("client.test", "192.0.2.1", "mx.test", "Q1")
    first = received_header(t)
    clock[0] += 0.5
    assert received_header(t) == first and len(calls) == 1  # same second: formatted once
    clock[0] += 1
    later = received_header(t).decode()
    assert len(calls) == 2
    assert later.endswith(f"; {real(1_700_000_001, localtime=True)}\r\n")
