"""Fixtures for the message-authentication tests: the loopback DNS server and settings that
point ``outbound.dns_resolver`` at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwing.config import Settings
from mailwing.mailauth.dns import Lookup
from tests.dnsfixtures import DnsServer, dns_server

__all__ = ["dns_server", "lookup", "settings"]


@pytest.fixture
def settings(dns_server: DnsServer, tmp_path: Path) -> Settings:
    s = Settings()
    s.outbound.dns_resolver = dns_server.address
    s.server.data_dir = tmp_path / "data"
    s.server.hostname = "mx.test"
    return s


@pytest.fixture
def lookup(settings: Settings) -> Lookup:
    return Lookup.from_settings(settings)
