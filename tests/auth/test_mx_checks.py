"""SPF, DKIM and DMARC on a real ``mailwing serve`` MX, with the loopback DNS server as the
world's DNS: smtplib sends from 127.0.0.1, POP3/IMAP read the stored copy back."""

from __future__ import annotations

import base64
import imaplib
import smtplib
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.dnsserver import DnsServer
from tests.support import MailwingServer

BOB = "bob@example.test"
PASSWORD = "correct horse battery staple"
HELO = "client.example"
SENDER = "news@sender.example"


@pytest.fixture(scope="module")
def world() -> Iterator[DnsServer]:
    server = DnsServer().start()
    yield server
    server.stop()


def _start(root: Path, dns: DnsServer, checks: bool = True) -> MailwingServer:
    """A server asking ``dns``; the checks are set through the environment so that they
    win over any default the shared test support may give."""
    flag = "true" if checks else "false"
    env = {f"MAILWING_AUTH_CHECK_{name}": flag for name in ("SPF", "DKIM", "DMARC")}
    srv = MailwingServer(root=root, database_url=f"sqlite:///{root / 'm.db'}",
                         enable=("smtp", "submission", "pop3", "imap"), env=env,
                         extra_config=f'[outbound]\ndns_resolver = "{dns.address}"\n')
    srv.start()
    srv.add_user(BOB, PASSWORD)
    return srv


@pytest.fixture(scope="module")
def mx(tmp_path_factory: pytest.TempPathFactory, world: DnsServer) -> Iterator[MailwingServer]:
    srv = _start(tmp_path_factory.mktemp("mx"), world)
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def fresh(world: DnsServer, mx: MailwingServer) -> Iterator[None]:
    world.clear()
    yield
    _drain(mx, "INBOX")
    _drain(mx, "Junk")


def _imap(srv: MailwingServer) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", srv.ports["imap"], timeout=30)
    imap.login(BOB, PASSWORD)
    return imap


def stored(srv: MailwingServer, mailbox: str = "INBOX") -> list[bytes]:
    imap = _imap(srv)
    try:
        typ, count = imap.select(mailbox)
        if typ != "OK" or int(count[0] or 0) == 0:
            return []
        typ, data = imap.fetch("1:*", "(BODY.PEEK[])")
        return [item[1] for item in data if isinstance(item, tuple)]
    finally:
        imap.logout()


def _drain(srv: MailwingServer, mailbox: str) -> None:
    imap = _imap(srv)
    try:
        typ, count = imap.select(mailbox)
        if typ == "OK" and int(count[0] or 0):
            imap.store("1:*", "+FLAGS", "(\\Deleted)")
            imap.expunge()
    finally:
        imap.logout()


def message(subject: str = "hello", sender: str = SENDER) -> bytes:
    return (f"From: News <{sender}>\r\nTo: {BOB}\r\nSubject: {subject}\r\n"
            f"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@x>\r\n\r\n"
            f"Body of {subject}.\r\n").encode()


def send(srv: MailwingServer, data: bytes, mail_from: str = SENDER) -> None:
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], local_hostname=HELO, timeout=30) as s:
        s.sendmail(mail_from, [BOB], data)


def auth_results(data: bytes) -> str:
    """The unfolded Authentication-Results value of the stored copy (must be the first
    field after Return-Path)."""
    lines = data.split(b"\r\n")
    assert lines[0].startswith(b"Return-Path:")
    assert lines[1].startswith(b"Authentication-Results: mail.test;"), lines[:3]
    value = [lines[1].split(b":", 1)[1].strip()]
    for line in lines[2:]:
        if line[:1] not in (b" ", b"\t"):
            assert line.startswith(b"Received:")
            break
        value.append(line.strip())
    return b" ".join(value).decode()


def test_spf_results_in_the_header(world: DnsServer, mx: MailwingServer) -> None:
    for record, expected in (("v=spf1 ip4:127.0.0.1 -all", "pass"), ("v=spf1 -all", "fail"),
                             ("v=spf1 ~all", "softfail"),
                             ("v=spf1 include:_spf.relay.example -all", "pass")):
        world.set("sender.example", "TXT", record)
        world.set("_spf.relay.example", "TXT", "v=spf1 redirect=_net.relay.example")
        world.set("_net.relay.example", "TXT", "v=spf1 ip4:127.0.0.0/8 -all")
        send(mx, message(expected))
    world.set("sender.example", "TXT", "v=spf1 " + " ".join(
        f"a:h{i}.sender.example" for i in range(11)) + " -all")
    for i in range(11):
        world.set(f"h{i}.sender.example", "A", "192.0.2.1")
    send(mx, message("limit"))
    got = [auth_results(m) for m in stored(mx)]
    assert got == [
        f"mail.test; spf={r} smtp.mailfrom=sender.example; spf=none smtp.helo={HELO}; "
        f"dkim=none; dmarc=none header.from=sender.example"
        for r in ("pass", "fail", "softfail", "pass", "permerror")]


def test_temperror_keeps_mail_and_forgeries_go(world: DnsServer, mx: MailwingServer) -> None:
    world.servfail("sender.example")
    world.servfail("_dmarc.sender.example")
    forged = b"Authentication-Results: mail.test;\r\n\tdmarc=pass header.from=sender.example\r\n"
    send(mx, forged + message("servfail"))
    (data,) = stored(mx)
    assert data.count(b"Authentication-Results:") == 1  # the forged copy is gone
    assert auth_results(data).startswith("mail.test; spf=temperror smtp.mailfrom=sender.example")
    assert "dmarc=temperror header.from=sender.example" in auth_results(data)


def _test_key() -> tuple[bytes, str]:
    key = rsa.generate_private_key(65537, 2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def _signed(pem: bytes, data: bytes, domain: bytes = b"sender.example") -> bytes:
    sig = dkim.sign(data, b"sel", domain, pem, canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to", b"subject", b"date"])
    return sig + data


def test_dkim_pass_fail_and_dmarc_pass(world: DnsServer, mx: MailwingServer) -> None:
    pem, record = _test_key()
    world.add("sel._domainkey.sender.example", "TXT", record)
    world.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=reject")
    world.add("sender.example", "TXT", "v=spf1 -all")
    good = _signed(pem, message("signed"))
    send(mx, good, mail_from="bounces@other.example")  # SPF none; DKIM aligns
    world.set("_dmarc.sender.example", "TXT", "v=DMARC1; p=none")
    send(mx, good.replace(b"Body of", b"Tampered body of"), mail_from="x@sender.example")
    first, second = stored(mx)
    assert auth_results(first) == (
        f"mail.test; spf=none smtp.mailfrom=other.example; spf=none smtp.helo={HELO}; "
        "dkim=pass header.d=sender.example header.s=sel; "
        "dmarc=pass (p=reject dis=none) header.from=sender.example")
    assert first.endswith(good)  # the signed message is stored byte for byte
    assert auth_results(second) == (
        f"mail.test; spf=fail smtp.mailfrom=sender.example; spf=none smtp.helo={HELO}; "
        "dkim=fail header.d=sender.example header.s=sel; "
        "dmarc=fail (p=none dis=none) header.from=sender.example")


def test_dmarc_reject_refuses_and_stores_nothing(world: DnsServer, mx: MailwingServer) -> None:
    pem, record = _test_key()
    world.add("sel._domainkey.sender.example", "TXT", record)
    world.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=reject")
    world.add("sender.example", "TXT", "v=spf1 -all")
    tampered = _signed(pem, message("forged")).replace(b"Body of", b"Changed")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(mx, tampered)
    assert info.value.smtp_code == 550 and info.value.smtp_error.startswith(b"5.7.1 ")
    assert stored(mx) == [] and stored(mx, "Junk") == []


def test_dmarc_quarantine_goes_to_junk(world: DnsServer, mx: MailwingServer) -> None:
    world.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=quarantine")
    world.add("sender.example", "TXT", "v=spf1 ~all")
    send(mx, message("suspicious"))
    assert stored(mx) == []
    (data,) = stored(mx, "Junk")
    assert auth_results(data) == (
        f"mail.test; spf=softfail smtp.mailfrom=sender.example; spf=none smtp.helo={HELO}; "
        "dkim=none; dmarc=fail (p=quarantine dis=quarantine) header.from=sender.example")


def test_checks_switched_off(tmp_path: Path, world: DnsServer) -> None:
    srv = _start(tmp_path / "off", world, checks=False)
    try:
        world.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=reject")
        world.add("sender.example", "TXT", "v=spf1 -all")
        data = message("unchecked")
        send(srv, data)
        (got,) = stored(srv)
        assert b"Authentication-Results" not in got and got.endswith(data)
    finally:
        srv.stop()


def test_keygen_and_signing_on_submission(world: DnsServer, mx: MailwingServer) -> None:
    out = mx.cli("dkim", "keygen", "example.test", "--selector", "mw1").stdout.decode()
    record = next(line for line in out.splitlines() if "._domainkey." in line)
    assert record.startswith("mw1._domainkey.example.test. IN TXT \"v=DKIM1; k=rsa; p=")
    world.load(record + "\n")
    assert "example.test\tmw1\trsa\tactive" in mx.cli("dkim", "list").stdout.decode()
    mx.add_user("alice@example.test", PASSWORD)
    data = message("outbound", sender="alice@example.test").replace(
        f"To: {BOB}".encode(), f"To: {BOB}, carol@remote.example".encode())
    with smtplib.SMTP("127.0.0.1", mx.ports["submission"], timeout=30) as s:
        s.login("alice@example.test", PASSWORD)
        s.sendmail("alice@example.test", [BOB, "carol@remote.example"], data)
    (copy,) = stored(mx)  # Bob's copy is the same content as the queued one
    assert b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test;" in copy

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        import dns.resolver
        r = dns.resolver.Resolver(configure=False)
        r.nameservers, r.port = [world.host], world.port
        try:
            return b"".join(next(iter(r.resolve(name.decode(), "TXT"))).strings)
        except dns.resolver.NXDOMAIN:
            return None

    assert dkim.verify(copy, dnsfunc=dnsfunc)
