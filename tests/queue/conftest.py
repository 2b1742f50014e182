"""Fixtures for in-process worker tests: a storage on each backend, a loopback DNS zone, a
recording sink, and a :class:`Worker` whose clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mailwing.config import Settings
from mailwing.queue.worker import Worker
from mailwing.storage.interface import Outbound
from tests.dnsfixtures import DnsServer, dns_server  # noqa: F401
from tests.queue.sinks import Sink

T0 = 1_800_000_000.0
ALICE = "alice@example.org"


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as s:
        yield s


@pytest.fixture
def zone(dns_server: DnsServer, sink: Sink) -> DnsServer:  # noqa: F811
    """remote.test and other.test have one MX each on 127.0.0.1."""
    dns_server.add("remote.test", "MX", "10 mx.remote.test.")
    dns_server.add("mx.remote.test", "A", "127.0.0.1")
    dns_server.add("other.test", "MX", "10 mx.other.test.")
    dns_server.add("mx.other.test", "A", "127.0.0.1")
    return dns_server


def make_settings(zone: DnsServer, port: int, **outbound: Any) -> Settings:
    settings = Settings()
    settings.server.hostname = "mail.example.org"
    o = settings.outbound
    o.dns_resolver, o.mx_port = zone.address, port
    o.retry_schedule, o.lifetime = ["1m", "10m"], "1h"
    o.connect_timeout, o.command_timeout = 5.0, 10.0
    for key, value in outbound.items():
        setattr(o, key, value)
    return settings


@pytest.fixture
async def alice(store: Any) -> Any:
    user, _ = await store.add_user(ALICE, "x", create_domain=True)
    return user


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def worker(store: Any, zone: DnsServer, sink: Sink, clock: Clock, alice: Any) -> Worker:
    return Worker(store, make_settings(zone, sink.port), clock=clock, worker_id="test-worker")


async def enqueue(store: Any, clock: Clock, *recipients: str, sender: str = ALICE,
                  body: bytes | None = None, queue_id: str = "Q1") -> None:
    data = body or (f"From: {sender}\r\nTo: {', '.join(recipients)}\r\n"
                    f"Subject: outbound {queue_id}\r\nMessage-ID: <{queue_id}@example.org>"
                    "\r\n\r\nhello\r\n.leading dot\r\n").encode()
    content = await store.store_content(data)
    await store.enqueue(content, Outbound(queue_id, sender, tuple(recipients), clock()))


async def inbox(store: Any, user: Any) -> list[bytes]:
    box = await store.get_mailbox(user.id, "INBOX")
    return [await store.read_content(e.content.sha256) for e in await store.list_mail(box.id)]
