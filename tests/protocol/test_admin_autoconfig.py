"""Client autoconfiguration over real HTTP: each document is checked against its format
(Thunderbird clientConfig 1.1, Outlook Autodiscover POX response, an Apple configuration
profile property list, the RFC 8461 section 3.2 MTA-STS policy), and the values read from it
are used to log in to the IMAP and submission listeners, as a client would."""

from __future__ import annotations

import imaplib
import plistlib
import re
import smtplib
import ssl
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from tests.adminkit import ALICE, PASSWORD, client, start_admin
from tests.support import MailwingServer, free_port

AD_RESPONSE = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"
AD_OUTLOOK = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


@pytest.fixture
def server(server_factory: type[MailwingServer], tmp_path: Path) -> tuple[MailwingServer, str]:
    extra = f"""
[server]
hostname = "localhost"
[admin]
autoconfig_port = {free_port()}
"""
    srv, token = start_admin(server_factory, tmp_path / "srv",
                             enable=("admin", "imap", "imaps", "submission", "smtps"),
                             extra=extra)
    srv.add_user(ALICE, PASSWORD)
    return srv, token


def _tls(srv: MailwingServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(srv.cert_path))  # verifies "localhost"


def _login_imap(srv: MailwingServer, host: str, port: int, security: str, user: str) -> None:
    if security == "SSL":
        imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(host, port, ssl_context=_tls(srv), timeout=30)
    else:
        imap = imaplib.IMAP4(host, port, timeout=30)
        imap.starttls(_tls(srv))
    assert imap.login(user, PASSWORD)[0] == "OK"
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()


def _login_smtp(srv: MailwingServer, host: str, port: int, security: str, user: str) -> None:
    if security == "SSL":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, context=_tls(srv), timeout=30)
    else:
        smtp = smtplib.SMTP(host, port, timeout=30)
        smtp.starttls(context=_tls(srv))
    assert smtp.login(user, PASSWORD)[0] == 235
    smtp.quit()


def test_thunderbird_config_on_both_urls_and_ports(server: tuple[MailwingServer, str]) -> None:
    srv, _ = server
    found = re.search(r"autoconfig_port = (\d+)", srv.config_path.read_text())
    assert found
    bases = [f"http://127.0.0.1:{srv.ports['admin']}", f"http://127.0.0.1:{found[1]}"]
    for base in bases:
        for path in ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"):
            r = httpx.get(base + path, params={"emailaddress": ALICE}, timeout=30)
            assert r.status_code == 200 and "xml" in r.headers["content-type"]
            root = ET.fromstring(r.content)
            assert root.tag == "clientConfig" and root.get("version") == "1.1"
            provider = root.find("emailProvider")
            assert provider is not None and provider.get("id") == "example.org"
            assert provider.findtext("domain") == "example.org"
            servers = provider.findall("incomingServer") + provider.findall("outgoingServer")
            assert {(s.get("type"), s.findtext("socketType")) for s in servers} == {
                ("imap", "SSL"), ("imap", "STARTTLS"), ("smtp", "SSL"), ("smtp", "STARTTLS")}
            for s in servers:
                assert s.findtext("authentication") == "password-cleartext"
                assert s.findtext("username") == "%EMAILADDRESS%"
    for s in servers:  # a client fills in the address and connects with these values
        host, port, security = s.findtext("hostname"), int(s.findtext("port") or 0), \
            s.findtext("socketType")
        assert host == "localhost" and port
        login = _login_imap if s.get("type") == "imap" else _login_smtp
        login(srv, host, port, security or "", ALICE)
    unknown = httpx.get(bases[0] + "/mail/config-v1.1.xml",
                        params={"emailaddress": "x@elsewhere.test"}, timeout=30)
    assert unknown.status_code == 404


def test_outlook_autodiscover(server: tuple[MailwingServer, str]) -> None:
    srv, _ = server
    request = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
        'requestschema/2006"><Request>'
        f"<EMailAddress>{ALICE}</EMailAddress>"
        "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/"
        "outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>")
    with client(srv) as c:
        r = c.post("/autodiscover/autodiscover.xml", content=request,
                   headers={"Content-Type": "text/xml"})
        assert r.status_code == 200
        assert c.post("/autodiscover/autodiscover.xml", content=b"<x/>").status_code == 400
    root = ET.fromstring(r.content)
    assert root.tag == f"{AD_RESPONSE}Autodiscover"
    account = root.find(f"{AD_OUTLOOK}Response/{AD_OUTLOOK}Account")
    assert account is not None
    assert account.findtext(f"{AD_OUTLOOK}AccountType") == "email"
    assert account.findtext(f"{AD_OUTLOOK}Action") == "settings"
    protocols = {p.findtext(f"{AD_OUTLOOK}Type"): p
                 for p in account.findall(f"{AD_OUTLOOK}Protocol")}
    assert set(protocols) == {"IMAP", "SMTP"}
    for kind, p in protocols.items():
        host = p.findtext(f"{AD_OUTLOOK}Server") or ""
        port = int(p.findtext(f"{AD_OUTLOOK}Port") or 0)
        user = p.findtext(f"{AD_OUTLOOK}LoginName") or ""
        security = "SSL" if p.findtext(f"{AD_OUTLOOK}Encryption") == "SSL" else "STARTTLS"
        assert user == ALICE and p.findtext(f"{AD_OUTLOOK}AuthRequired") == "on"
        (_login_imap if kind == "IMAP" else _login_smtp)(srv, host, port, security, user)


def test_apple_mobileconfig(server: tuple[MailwingServer, str]) -> None:
    srv, _ = server
    with client(srv) as c:
        r = c.get("/apple/mail.mobileconfig", params={"emailaddress": ALICE})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(r.content)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    assert profile["PayloadIdentifier"] and len(profile["PayloadUUID"]) == 36
    [mail] = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAccountType"] == "EmailTypeIMAP" and mail["EmailAddress"] == ALICE
    assert mail["IncomingMailServerUseSSL"] is True
    _login_imap(srv, mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"],
                "SSL", mail["IncomingMailServerUsername"])
    _login_smtp(srv, mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"],
                "SSL", mail["OutgoingMailServerUsername"])


def test_mta_sts_policy_format(server: tuple[MailwingServer, str]) -> None:
    srv, _ = server
    with client(srv) as c:
        r = c.get("/.well-known/mta-sts.txt")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    # RFC 8461 section 3.2: "key: value" lines separated by CRLF, version first
    lines = r.text.split("\r\n")
    assert lines[-1] == "" and all(re.fullmatch(r"[a-z_]+: \S+", ln) for ln in lines[:-1])
    fields = [ln.split(": ", 1) for ln in lines[:-1]]
    assert fields[0] == ["version", "STSv1"]
    policy = dict(fields)
    assert policy["mode"] in ("enforce", "testing", "none")
    assert 0 <= int(policy["max_age"]) <= 31557600
    assert policy["mx"] == "localhost"
    # the TXT record's id follows the policy (1-32 alphanumerics)
    with client(srv, server[1]) as c:
        records = c.get("/api/v1/domains/example.org/dns").json()
    sts = next(x for x in records if x["name"] == "_mta-sts.example.org.")
    assert re.fullmatch(r'"v=STSv1; id=[A-Za-z0-9]{1,32}"', sts["value"])
