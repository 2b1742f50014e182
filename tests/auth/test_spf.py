"""The RFC 7208 evaluator against the loopback DNS server (client IP 127.0.0.1 / ::1)."""

from __future__ import annotations

import ipaddress

import pytest

from mailwing.mailauth.dns import Lookup
from mailwing.mailauth.spf import check_helo, check_host, check_mailfrom
from mailwing.mailauth.spfmacro import MacroContext, expand
from tests.dnsserver import DnsServer

IP = "127.0.0.1"


async def _result(lookup: Lookup, domain: str = "example.org", ip: str = IP) -> str:
    return (await check_host(lookup, ip, domain, f"alice@{domain}", "client.example.net")).result


@pytest.mark.parametrize(("record", "expected"), [
    ("v=spf1 ip4:127.0.0.1 -all", "pass"),
    ("v=spf1 ip4:127.0.0.0/8 -all", "pass"),
    ("v=spf1 ip4:192.0.2.1 -all", "fail"),
    ("v=spf1 -all", "fail"),
    ("v=spf1 ~all", "softfail"),
    ("v=spf1 ?all", "neutral"),
    ("v=spf1", "neutral"),
    ("v=spf1 ip6:::1 -all", "fail"),
    ("v=spf1 a -all", "pass"),
    ("v=spf1 a:other.example.org/24 -all", "pass"),
    ("v=spf1 mx -all", "pass"),
    ("v=spf1 mx:nomx.example.org -all", "fail"),
    ("v=spf1 exists:%{i}.allow.example.org -all", "pass"),
    ("v=spf1 exists:%{l}.users.example.org -all", "pass"),
    ("v=spf1 foo=bar ip4:127.0.0.1 -all", "pass"),  # unknown modifier ignored
    ("v=spf1 frobnicate -all", "permerror"),
    ("v=spf1 ip4:300.1.1.1 -all", "permerror"),
    ("v=spf1 redirect=a.example.org redirect=b.example.org", "permerror"),
])
async def test_mechanisms(dns_server: DnsServer, lookup: Lookup, record: str,
                          expected: str) -> None:
    dns_server.add("example.org", "TXT", record)
    dns_server.add("example.org", "A", "127.0.0.1")
    dns_server.add("example.org", "MX", "10 mx.example.org.")
    dns_server.add("mx.example.org", "A", "127.0.0.1")
    dns_server.add("other.example.org", "A", "127.0.0.77")
    dns_server.add("nomx.example.org", "MX", "10 far.example.net.")
    dns_server.add("far.example.net", "A", "192.0.2.9")
    dns_server.add("127.0.0.1.allow.example.org", "A", "127.0.0.2")
    dns_server.add("alice.users.example.org", "A", "127.0.0.2")
    assert await _result(lookup) == expected


async def test_none_and_multiple_records(dns_server: DnsServer, lookup: Lookup) -> None:
    assert await _result(lookup) == "none"  # NXDOMAIN
    dns_server.add("example.org", "TXT", "some other text")
    assert await _result(lookup) == "none"
    dns_server.add("example.org", "TXT", "v=spf1 -all", "v=spf1 +all")
    assert await _result(lookup) == "permerror"
    assert await _result(lookup, "localhost") == "none"  # not an FQDN: no lookup at all


async def test_include_and_redirect_chains(dns_server: DnsServer, lookup: Lookup) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 include:_spf.example.org -all")
    dns_server.add("_spf.example.org", "TXT", "v=spf1 redirect=_net.example.net")
    dns_server.add("_net.example.net", "TXT", "v=spf1 ip4:127.0.0.0/24 ~all")
    assert await _result(lookup) == "pass"
    dns_server.set("_net.example.net", "TXT", "v=spf1 ip4:192.0.2.0/24 ~all")
    assert await _result(lookup) == "fail"  # softfail inside include = no match
    dns_server.set("_net.example.net", "TXT")  # redirect target without a record
    assert await _result(lookup) == "permerror"
    dns_server.set("example.org", "TXT", "v=spf1 include:missing.example.org -all")
    assert await _result(lookup) == "permerror"  # include of "none"


async def test_ten_lookup_limit(dns_server: DnsServer, lookup: Lookup) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 include:l1.example.org -all")
    for i in range(1, 12):
        dns_server.add(f"l{i}.example.org", "TXT", f"v=spf1 a:h.example.org "
                       f"include:l{i + 1}.example.org ?all")
    dns_server.add("h.example.org", "A", "192.0.2.1")
    dns_server.add("l12.example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    assert await _result(lookup) == "permerror"
    dns_server.set("l4.example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")  # 7 lookups
    assert await _result(lookup) == "pass"


async def test_void_lookup_limit(dns_server: DnsServer, lookup: Lookup) -> None:
    dns_server.add("example.org", "TXT",
                   "v=spf1 a:v1.example.org a:v2.example.org a:v3.example.org +all")
    assert await _result(lookup) == "permerror"
    dns_server.set("example.org", "TXT", "v=spf1 a:v1.example.org a:v2.example.org +all")
    assert await _result(lookup) == "pass"


async def test_dns_failures_are_temperror(dns_server: DnsServer, lookup: Lookup) -> None:
    dns_server.servfail("example.org")
    assert await _result(lookup) == "temperror"
    dns_server.add("example.net", "TXT", "v=spf1 a:broken.example.org -all")
    dns_server.servfail("broken.example.org")
    assert await _result(lookup, "example.net") == "temperror"


async def test_ipv6_client(dns_server: DnsServer, lookup: Lookup) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 a -all")
    dns_server.add("example.org", "AAAA", "2001:db8::5")
    assert await _result(lookup, ip="2001:db8::5") == "pass"
    assert await _result(lookup, ip="2001:db8::6") == "fail"
    assert await _result(lookup, ip="::ffff:127.0.0.1") == "pass"  # IPv4-mapped


async def test_mailfrom_and_helo_identities(dns_server: DnsServer, lookup: Lookup) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_server.add("client.example.org", "TXT", "v=spf1 -all")
    r = await check_mailfrom(lookup, IP, "bob@example.org", "client.example.org")
    assert (r.result, r.domain) == ("pass", "example.org")
    r = await check_mailfrom(lookup, IP, "", "client.example.org")  # <>: the HELO name
    assert (r.result, r.domain) == ("fail", "client.example.org")
    assert (await check_helo(lookup, IP, "client.example.org")).result == "fail"
    assert (await check_helo(lookup, IP, "[127.0.0.1]")).result == "none"


_RFC_EXAMPLES = {  # RFC 7208 section 7.4, sender strong-bad@email.example.com, IP 192.0.2.3
    "%{s}": "strong-bad@email.example.com", "%{o}": "email.example.com",
    "%{d4}": "email.example.com", "%{d2}": "example.com", "%{dr}": "com.example.email",
    "%{d2r}": "example.email", "%{l}": "strong-bad", "%{l-}": "strong.bad",
    "%{lr-}": "bad.strong", "%{l1r-}": "strong", "%{h}": "mx.example.org",
    "%{ir}.%{v}._spf.%{d2}": "3.2.0.192.in-addr._spf.example.com", "%%%_%-": "% %20",
}


@pytest.mark.parametrize(("spec", "expected"), _RFC_EXAMPLES.items())
def test_macro_expansion(spec: str, expected: str) -> None:
    ctx = MacroContext("strong-bad@email.example.com", "email.example.com",
                       ipaddress.ip_address("192.0.2.3"), "mx.example.org")
    assert expand(spec, ctx) == expected


def test_macro_ipv6() -> None:
    v6 = MacroContext("a@b.example", "b.example", ipaddress.ip_address("2001:db8::cb01"), "h")
    assert expand("%{ir}.%{v}", v6) == ("1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
                                          "8.b.d.0.1.0.0.2.ip6")
