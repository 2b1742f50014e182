"""The loopback DNS server answers real dnspython clients over UDP and TCP (RFC 1035 4.2)."""

from __future__ import annotations

import dns.asyncquery
import dns.asyncresolver
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from tests.dnsfixtures import DnsServer, dns_server  # noqa: F401


def _resolver(server: DnsServer) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = [server.host]
    r.port = server.port
    r.lifetime = 5
    return r


def test_records_reach_a_resolver(dns_server: DnsServer) -> None:  # noqa: F811
    dns_server.add("example.org", "MX", "10 mx.example.org.", "20 mx2.example.org.")
    dns_server.add("mx.example.org", "A", "127.0.0.1")
    dns_server.add("mx.example.org", "AAAA", "::1")
    dns_server.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_server.add("www.example.org", "CNAME", "mx.example.org.")
    r = _resolver(dns_server)
    mx = sorted((x.preference, x.exchange.to_text()) for x in r.resolve("example.org", "MX"))
    assert mx == [(10, "mx.example.org."), (20, "mx2.example.org.")]
    assert [a.to_text() for a in r.resolve("mx.example.org", "A")] == ["127.0.0.1"]
    assert [a.to_text() for a in r.resolve("mx.example.org", "AAAA")] == ["::1"]
    txt = r.resolve("example.org", "TXT")
    assert [b"".join(t.strings) for t in txt] == [b"v=spf1 ip4:127.0.0.1 -all"]
    assert [a.to_text() for a in r.resolve("www.example.org", "A")] == ["127.0.0.1"]
    with pytest.raises(dns.resolver.NXDOMAIN):
        r.resolve("nothing.example.org", "A")
    with pytest.raises(dns.resolver.NoAnswer):  # NODATA: the name exists
        r.resolve("example.org", "A")
    with pytest.raises(dns.resolver.NoAnswer):  # empty non-terminal
        r.resolve("mx.example.org", "MX")
    assert ("example.org", "MX") in dns_server.queries


def test_long_txt_is_split_and_reconfigurable(dns_server: DnsServer) -> None:  # noqa: F811
    key = "v=DKIM1; k=rsa; p=" + "A" * 400
    dns_server.add("sel._domainkey.example.org", "TXT", key)
    r = _resolver(dns_server)
    (rdata,) = r.resolve("sel._domainkey.example.org", "TXT")
    assert [len(s) for s in rdata.strings] == [255, len(key) - 255]
    dns_server.set("sel._domainkey.example.org", "TXT", "v=DKIM1; p=")
    (rdata,) = r.resolve("sel._domainkey.example.org", "TXT")
    assert rdata.strings == (b"v=DKIM1; p=",)
    dns_server.load("_dmarc.example.org. 60 IN TXT \"v=DMARC1; p=reject\"\n")
    (rdata,) = r.resolve("_dmarc.example.org", "TXT")
    assert rdata.strings == (b"v=DMARC1; p=reject",)


def test_tcp_and_truncation(dns_server: DnsServer) -> None:  # noqa: F811
    dns_server.add("big.example.org", "TXT", *[f"record {i} " + "x" * 200 for i in range(8)])
    query = dns.message.make_query("big.example.org", "TXT")
    response = dns.query.tcp(query, dns_server.host, port=dns_server.port, timeout=5)
    assert len(response.answer[0]) == 8
    dns_server.truncate("big.example.org")
    answer = _resolver(dns_server).resolve("big.example.org", "TXT")  # UDP: TC, then TCP
    assert len(answer) == 8


async def test_servfail_and_async_resolver(dns_server: DnsServer) -> None:  # noqa: F811
    dns_server.add("ok.example.org", "A", "192.0.2.1")
    dns_server.servfail("broken.example.org")
    r = dns.asyncresolver.Resolver(configure=False)
    r.nameservers = [dns_server.host]
    r.port = dns_server.port
    r.lifetime = 3
    assert [a.to_text() for a in await r.resolve("ok.example.org", "A")] == ["192.0.2.1"]
    query = dns.message.make_query("broken.example.org", "A")
    response = await dns.asyncquery.udp(query, dns_server.host, port=dns_server.port, timeout=3)
    assert response.rcode() == dns.rcode.SERVFAIL
