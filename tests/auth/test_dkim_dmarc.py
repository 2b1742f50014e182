"""DKIM signing/verification and DMARC evaluation with keys from ``mailwing dkim keygen``'s
library and records published in the loopback DNS server."""

from __future__ import annotations

import dkim
import pytest

from mailwing.config import Settings
from mailwing.mailauth.dkim import from_domain, sign, sign_outbound, verify_message
from mailwing.mailauth.dkimkeys import dns_record, generate_key
from mailwing.mailauth.dmarc import evaluate, organizational_domain, parse_record
from mailwing.mailauth.dns import Lookup, txt_lookup_sync
from mailwing.mailauth.results import authentication_results
from mailwing.mailauth.spf import SpfResult
from tests.dnsserver import DnsServer

MESSAGE = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hello\r\n"
           b"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\n"
           b"Hello Bob.\r\n")


def publish(dns_server: DnsServer, record_line: str) -> None:
    """Load the TXT record line exactly as ``dkim keygen`` prints it."""
    dns_server.load(record_line + "\n")


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
async def test_signature_verifies_with_the_printed_record(
        dns_server: DnsServer, settings: Settings, algorithm: str) -> None:
    key = generate_key(settings.server.data_dir, "example.org", "sel", algorithm)
    publish(dns_server, dns_record(key))
    field = sign(MESSAGE, "example.org", settings.server.data_dir, settings)
    assert field.startswith(b"DKIM-Signature: v=1; a=") and field.endswith(b"\r\n")
    assert b"c=relaxed/relaxed" in field and b"d=example.org" in field
    tags = dict(t.strip().split(b"=", 1) for t in field.split(b":", 1)[1].split(b";"))
    assert b"".join(tags[b"h"].split()) == b"from:to:subject:date:message-id"
    signed = field + MESSAGE
    # dkimpy on its own (its dnsfunc pointed at the loopback server) agrees
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: txt_lookup_sync(settings, name))
    results = await verify_message(signed, settings)
    assert [(r.result, r.domain, r.selector) for r in results] == [
        ("pass", "example.org", "sel")]
    tampered = signed.replace(b"Hello Bob.", b"Hello Eve.")
    assert [r.result for r in await verify_message(tampered, settings)] == ["fail"]


async def test_verify_results(dns_server: DnsServer, settings: Settings) -> None:
    assert await verify_message(MESSAGE, settings) == []
    key = generate_key(settings.server.data_dir, "example.org", "sel")
    signed = sign(MESSAGE, "example.org", settings.server.data_dir, settings) + MESSAGE
    assert [r.result for r in await verify_message(signed, settings)] == ["permerror"]  # no key
    dns_server.servfail("sel._domainkey.example.org")
    assert [r.result for r in await verify_message(signed, settings)] == ["temperror"]
    dns_server.clear()
    publish(dns_server, dns_record(key))
    broken = signed.replace(b"a=rsa-sha256", b"a=rsa-sha999")
    assert [r.result for r in await verify_message(broken, settings)] == ["permerror"]


def test_signing_picks_the_domain(settings: Settings) -> None:
    assert sign_outbound(MESSAGE, "alice@example.org", settings) == b""  # no key yet
    generate_key(settings.server.data_dir, "example.net", "s1")
    header = sign_outbound(MESSAGE, "bounce@example.net", settings)  # envelope domain
    assert b"d=example.net" in header
    generate_key(settings.server.data_dir, "example.org", "s1")
    assert b"d=example.org" in sign_outbound(MESSAGE, "bounce@example.net", settings)
    settings.dkim.sign = False
    assert sign_outbound(MESSAGE, "alice@example.org", settings) == b""


def test_from_domain_and_org_domain() -> None:
    assert from_domain(b"From: A <a@Mail.Example.ORG>\r\n") == "mail.example.org"
    assert from_domain(b"From: a@x.org, b@y.org\r\n") is None
    assert from_domain(b"Subject: x\r\n") is None
    assert organizational_domain("a.b.example.org") == "example.org"
    assert organizational_domain("mail.example.co.uk") == "example.co.uk"


def test_parse_record() -> None:
    p = parse_record("v=DMARC1; p=reject; sp=quarantine; adkim=s; pct=50")
    assert p is not None and (p.p, p.sp, p.adkim, p.aspf, p.pct) == (
        "reject", "quarantine", "s", "r", 50)
    assert parse_record("p=reject; v=DMARC1") is None
    assert parse_record("v=DMARC1; p=bogus") is None
    assert parse_record("v=DMARC1; rua=mailto:x@example.org").p == "none"  # type: ignore[union-attr]


async def test_dmarc_alignment_and_policies(dns_server: DnsServer, lookup: Lookup) -> None:
    from mailwing.mailauth.dkim import DkimResult
    spf_pass = SpfResult("pass", "bounces.example.org")
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; sp=quarantine")
    r = await evaluate(lookup, "example.org", spf_pass, [])
    assert (r.result, r.disposition) == ("pass", "none")  # relaxed SPF alignment
    dns_server.set("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; aspf=s")
    r = await evaluate(lookup, "example.org", spf_pass, [])
    assert (r.result, r.policy, r.disposition) == ("fail", "reject", "reject")
    r = await evaluate(lookup, "example.org", spf_pass, [DkimResult("pass", "example.org", "s")])
    assert r.result == "pass"
    r = await evaluate(lookup, "example.org", None, [DkimResult("pass", "example.com", "s")])
    assert r.result == "fail"  # a pass for another domain does not align
    dns_server.set("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; sp=quarantine")
    r = await evaluate(lookup, "news.example.org", None, [])  # organisational fallback: sp
    assert (r.result, r.policy, r.disposition) == ("fail", "quarantine", "quarantine")
    dns_server.set("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; pct=0")
    r = await evaluate(lookup, "example.org", None, [])
    assert (r.result, r.disposition) == ("fail", "quarantine")  # outside the sample
    assert (await evaluate(lookup, "example.net", None, [])).result == "none"
    dns_server.servfail("_dmarc.example.com")
    assert (await evaluate(lookup, "example.com", None, [])).result == "temperror"


def test_authentication_results_header() -> None:
    from mailwing.mailauth.dkim import DkimResult
    from mailwing.mailauth.dmarc import DmarcResult
    field = authentication_results(
        "mx.test", spf=SpfResult("pass", "example.org"),
        dkim=[DkimResult("fail", "example.org", "sel")],
        dmarc=DmarcResult("pass", "example.org", "reject", "none"))
    assert field == (b"Authentication-Results: mx.test;\r\n\tspf=pass smtp.mailfrom=example.org;"
                     b"\r\n\tdkim=fail header.d=example.org header.s=sel;\r\n\tdmarc=pass "
                     b"(p=reject dis=none) header.from=example.org\r\n")
    assert authentication_results("mx.test") == b""
    assert b"dkim=none" in authentication_results("mx.test", dkim=[])


def test_forged_results_are_removed() -> None:
    from mailwing.mailauth.results import strip_forged
    message = (b"Authentication-Results: MX.test;\r\n\tdmarc=pass header.from=bank.example\r\n"
               b"Authentication-Results: other.example; spf=pass\r\n"
               b"From: a@b.example\r\n\r\nAuthentication-Results: mx.test; body text\r\n")
    assert strip_forged(message, "mx.test") == (
        b"Authentication-Results: other.example; spf=pass\r\nFrom: a@b.example\r\n\r\n"
        b"Authentication-Results: mx.test; body text\r\n")
    assert strip_forged(b"From: x\r\n\r\nbody", "mx.test") == b"From: x\r\n\r\nbody"
