"""On a real MX session: SPF of MAIL FROM is asked before DATA, HELO once per session."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dnsserver import DnsServer
from tests.support import MailwingServer

BOB = "bob@example.test"


@pytest.fixture
def world() -> Iterator[DnsServer]:
    server = DnsServer().start()
    yield server
    server.stop()


@pytest.fixture
def mx(tmp_path: Path, world: DnsServer) -> Iterator[MailwingServer]:
    env = {f"MAILWING_AUTH_CHECK_{name}": "true" for name in ("SPF", "DKIM", "DMARC")}
    srv = MailwingServer(root=tmp_path, database_url=f"sqlite:///{tmp_path / 'm.db'}",
                         enable=("smtp",), env=env,
                         extra_config=f'[outbound]\ndns_resolver = "{world.address}"\n')
    srv.start()
    srv.add_user(BOB, "correct horse battery staple")
    yield srv
    srv.stop()


def _wait_for(world: DnsServer, question: tuple[str, str]) -> bool:
    for _ in range(500):
        if question in world.queries:
            return True
        time.sleep(0.01)
    return False


def test_spf_starts_at_mail_from_and_helo_is_checked_once(world: DnsServer,
                                                          mx: MailwingServer) -> None:
    world.load('sender.example. TXT "v=spf1 ip4:127.0.0.1 -all"\n'
               'client.example. TXT "v=spf1 ip4:127.0.0.1 -all"\n')
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], local_hostname="client.example",
                      timeout=30) as smtp:
        for i in range(3):
            smtp.ehlo_or_helo_if_needed()
            assert smtp.mail("news@sender.example")[0] == 250
            assert smtp.rcpt(BOB)[0] == 250
            # the lookup runs while the client is still to send DATA
            assert _wait_for(world, ("sender.example", "TXT"))
            assert _wait_for(world, ("client.example", "TXT"))
            message = (f"From: news@sender.example\r\nSubject: {i}\r\n\r\nhello\r\n").encode()
            code, _ = smtp.data(message)
            assert code == 250
            world.queries.remove(("sender.example", "TXT"))
    assert ("sender.example", "TXT") not in world.queries  # once per transaction (TTL 0)
    assert world.queries.count(("client.example", "TXT")) == 1  # once per session
