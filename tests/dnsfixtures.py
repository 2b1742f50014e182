"""Pytest fixtures around the loopback DNS server (:mod:`tests.dnsserver`).

Import the fixture into a test module (``from tests.dnsfixtures import dns_server``) or a
``conftest.py``; ``dns_server.address`` is ``"127.0.0.1:PORT"`` for
``[outbound] dns_resolver``, and the test edits the zone with ``add``/``set``/``load``.
"""

from __future__ import annotations

from tests.dnsserver import DnsServer, dns_server

__all__ = ["DnsServer", "dns_server"]
