"""Contract tests of the outbound queue (Storage.enqueue / claim_queued / settle_queued ...),
run on every backend, including a claim race between two real processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mailwing.model import User
from mailwing.storage import Delivery, Storage
from mailwing.storage.errors import AlreadyExists, NotFound
from mailwing.storage.interface import Bounce, Outbound, RecipientOutcome
from tests.storage.conftest import inbox_id

BODY = b"From: a@example.org\r\nSubject: queued\r\n\r\nhello\r\n"
T0 = 1_000_000.0


def _out(qid: str, *rcpts: str, sender: str = "alice@example.org", at: float = T0) -> Outbound:
    return Outbound(qid, sender, tuple(rcpts), at)


async def test_enqueue_list_show(storage: Storage) -> None:
    content = await storage.store_content(BODY)
    await storage.enqueue(content, _out("Q1", "b@remote.test", "a@remote.test"))
    [m] = await storage.list_queued()
    assert m.queue_id == "Q1" and m.sender == "alice@example.org"
    assert m.content.sha256 == content.sha256 and m.next_attempt == T0 and m.attempts == 0
    assert [(r.address, r.status) for r in m.recipients] == [
        ("a@remote.test", "pending"), ("b@remote.test", "pending")]
    assert await storage.get_queued("Q1") == m
    assert await storage.get_queued("nope") is None
    with pytest.raises(AlreadyExists):
        await storage.enqueue(content, _out("Q1", "c@remote.test"))


async def test_append_with_outbound_is_one_transaction(storage: Storage, user: User) -> None:
    box = await inbox_id(storage, user)
    content = await storage.store_content(BODY)
    entries = await storage.append(content, [Delivery(box)],
                                   outbound=_out("Q1", "x@remote.test"))
    assert len(entries) == 1 and (await storage.get_queued("Q1")) is not None
    other = await storage.store_content(BODY + b"2")
    with pytest.raises(AlreadyExists):  # the queue insert fails: the local copy goes too
        await storage.append(other, [Delivery(box)], outbound=_out("Q1", "y@remote.test"))
    assert len(await storage.list_mail(box)) == 1
    only_remote = await storage.store_content(BODY + b"3")
    assert await storage.append(only_remote, [], outbound=_out("Q2", "z@remote.test")) == []
    assert (await storage.get_queued("Q2")) is not None


async def test_content_kept_while_queued(storage: Storage, user: User) -> None:
    box = await inbox_id(storage, user)
    content = await storage.store_content(BODY)
    [entry] = await storage.append(content, [Delivery(box)], outbound=_out("Q1", "x@r.test"))
    assert await storage.expunge(box, [entry.uid]) == [entry.uid]
    assert await storage.read_content(content.sha256) == BODY  # the queue still needs it
    [_m] = await storage.claim_queued("w1", T0, T0 + 60, 10)
    assert await storage.settle_queued(
        "Q1", "w1", [RecipientOutcome("x@r.test", "delivered", "250 ok")], next_attempt=T0)
    assert await storage.list_queued() == []
    with pytest.raises(NotFound):  # last user gone: the content is removed
        await storage.read_content(content.sha256)


async def test_claim_due_and_leases(storage: Storage) -> None:
    content = await storage.store_content(BODY)
    await storage.enqueue(content, _out("NOW", "x@r.test"))
    await storage.enqueue(content, Outbound("LATER", "s@l.test", ("y@r.test",), T0, T0 + 100))
    [m] = await storage.claim_queued("w1", T0, T0 + 30, 10)
    assert m.queue_id == "NOW" and m.lease_owner == "w1" and m.attempts == 1
    assert await storage.claim_queued("w2", T0 + 10, T0 + 40, 10) == []  # lease alive
    assert await storage.renew_lease("NOW", "w1", T0 + 60)
    assert not await storage.renew_lease("NOW", "w2", T0 + 60)
    assert await storage.claim_queued("w2", T0 + 50, T0 + 90, 10) == []
    # w1 died: its lease expires; "LATER" is not due before T0 + 100
    [m2] = await storage.claim_queued("w2", T0 + 61, T0 + 200, 10)
    assert m2.queue_id == "NOW" and m2.lease_owner == "w2" and m2.attempts == 2
    assert not await storage.settle_queued("NOW", "w1", [], next_attempt=T0)  # too late
    ids = [m.queue_id for m in await storage.claim_queued("w3", T0 + 100, T0 + 130, 10)]
    assert ids == ["LATER"]


async def test_settle_defers_fails_and_bounces(storage: Storage, user: User) -> None:
    box = await inbox_id(storage, user)
    content = await storage.store_content(BODY)
    await storage.enqueue(content, _out("Q1", "a@r.test", "b@r.test", "c@r.test"))
    await storage.claim_queued("w1", T0, T0 + 30, 10)
    dsn = await storage.store_content(b"Subject: dsn\r\n\r\nfailed\r\n")
    bounce = Bounce(dsn, deliveries=(Delivery(box),),
                    outbound=Outbound("DSN1", "", ("alice@elsewhere.test",), T0))
    assert await storage.settle_queued("Q1", "w1", [
        RecipientOutcome("a@r.test", "delivered", "250 ok", "mx.r.test"),
        RecipientOutcome("b@r.test", "deferred", "451 4.3.0 later", "mx.r.test"),
        RecipientOutcome("c@r.test", "failed", "550 5.1.1 unknown", "mx.r.test"),
    ], next_attempt=T0 + 300, bounce=bounce)
    m = await storage.get_queued("Q1")
    assert m is not None and m.lease_owner is None and m.next_attempt == T0 + 300
    assert {r.address: (r.status, r.last_reply) for r in m.recipients} == {
        "a@r.test": ("delivered", "250 ok"), "b@r.test": ("deferred", "451 4.3.0 later"),
        "c@r.test": ("failed", "550 5.1.1 unknown")}
    assert [e.content.sha256 for e in await storage.list_mail(box)] == [dsn.sha256]
    d = await storage.get_queued("DSN1")
    assert d is not None and d.sender == "" and d.content.sha256 == dsn.sha256
    claimed = await storage.claim_queued("w1", T0 + 100, T0 + 130, 10)
    assert [m.queue_id for m in claimed] == ["DSN1"]  # Q1 is due at T0 + 300 only


async def test_retry_and_delete(storage: Storage) -> None:
    content = await storage.store_content(BODY)
    await storage.enqueue(content, Outbound("Q1", "s@l.test", ("x@r.test",), T0, T0 + 999))
    assert await storage.claim_queued("w", T0, T0 + 1, 5) == []
    assert await storage.retry_queued("Q1", T0)
    assert [m.queue_id for m in await storage.claim_queued("w", T0, T0 + 1, 5)] == ["Q1"]
    assert await storage.delete_queued("Q1")
    assert not await storage.delete_queued("Q1") and not await storage.retry_queued("Q1", T0)
    with pytest.raises(NotFound):
        await storage.read_content(content.sha256)


_CLAIMER = """
import asyncio, json, sys
from pathlib import Path
from mailwing.storage import open_storage

async def main(url, data_dir, name):
    store = await open_storage(url, data_dir=Path(data_dir))
    got = []
    try:
        while True:
            claimed = await store.claim_queued(name, 2e9, 2e9 + 600, 3)
            if not claimed:
                break
            got += [m.queue_id for m in claimed]
    finally:
        await store.close()
    print(json.dumps(got))

asyncio.run(main(*sys.argv[1:]))
"""


async def test_two_processes_never_claim_the_same_message(
        storage: Storage, database_url: str, data_dir: Path) -> None:
    content = await storage.store_content(BODY)
    ids = [f"M{i:03d}" for i in range(60)]
    for qid in ids:
        await storage.enqueue(content, _out(qid, "x@r.test"))
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CLAIMER, database_url, str(data_dir), f"w{i}",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(2)
    ]
    outputs = [await p.communicate() for p in procs]
    claims = []
    for (out, err), p in zip(outputs, procs, strict=True):
        assert p.returncode == 0, err.decode()
        claims.append(json.loads(out))
    everything = claims[0] + claims[1]
    assert sorted(everything) == ids  # each exactly once
