"""Client autoconfiguration documents, made from the running configuration.

* Thunderbird's autoconfig format (``clientConfig version="1.1"``), served at
  ``/.well-known/autoconfig/mail/config-v1.1.xml`` and ``/mail/config-v1.1.xml``;
* Outlook's Autodiscover (POX, the 2006 request/response schemas) for ``POST
  /autodiscover/autodiscover.xml``;
* an Apple configuration profile (``.mobileconfig``: a property list with one
  ``com.apple.mail.managed`` payload, unsigned);
* the MTA-STS policy (RFC 8461 section 3.2) at ``/.well-known/mta-sts.txt``.

Host names, ports and TLS modes come from :class:`~mailwing.config.Settings`: the server's
host name, and each enabled IMAP/POP3/submission listener, implicit TLS listed first (RFC
8314 recommends it). The Autodiscover request body is not fed to an XML parser: only the
``EMailAddress`` element is picked out of at most 64 KiB, so no entity tricks apply.
"""

from __future__ import annotations

import plistlib
import re
import uuid
from dataclasses import dataclass
from xml.sax.saxutils import escape

from mailwing.config import Settings

__all__ = [
    "Endpoint",
    "apple_profile",
    "autodiscover_address",
    "autodiscover_response",
    "endpoints",
    "thunderbird_config",
]


@dataclass(frozen=True, slots=True)
class Endpoint:
    kind: str  # "imap", "pop3", "smtp"
    host: str
    port: int
    security: str  # "SSL" (implicit TLS) or "STARTTLS"


def endpoints(settings: Settings) -> list[Endpoint]:
    """Every enabled client-facing listener, implicit TLS first within each kind."""
    host = settings.server.hostname.rstrip(".")
    out = []
    for kind, name, security in (("imap", "imaps", "SSL"), ("imap", "imap", "STARTTLS"),
                                 ("pop3", "pop3s", "SSL"), ("pop3", "pop3", "STARTTLS"),
                                 ("smtp", "smtps", "SSL"), ("smtp", "submission", "STARTTLS")):
        port = settings.listener(name).port
        if port:
            out.append(Endpoint(kind, host, port, security))
    return out


def _first(eps: list[Endpoint], kind: str) -> Endpoint | None:
    return next((e for e in eps if e.kind == kind), None)


def thunderbird_config(settings: Settings, domain: str) -> str:
    eps = endpoints(settings)
    d = escape(domain)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<clientConfig version="1.1">',
             f'  <emailProvider id="{d}">', f"    <domain>{d}</domain>",
             f"    <displayName>{d} mail</displayName>",
             f"    <displayShortName>{d}</displayShortName>"]
    for e in eps:
        tag = "outgoingServer" if e.kind == "smtp" else "incomingServer"
        lines += [f'    <{tag} type="{e.kind}">',
                  f"      <hostname>{escape(e.host)}</hostname>",
                  f"      <port>{e.port}</port>",
                  f"      <socketType>{e.security}</socketType>",
                  "      <authentication>password-cleartext</authentication>",
                  "      <username>%EMAILADDRESS%</username>",
                  f"    </{tag}>"]
    lines += ["  </emailProvider>", "</clientConfig>", ""]
    return "\n".join(lines)


_EMAIL_ELEMENT = re.compile(
    rb"<(?:\w+:)?EMailAddress>\s*([^<\s]{3,254})\s*</(?:\w+:)?EMailAddress>")
_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
_OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


def autodiscover_address(body: bytes) -> str | None:
    match = _EMAIL_ELEMENT.search(body[:65536])
    if match is None:
        return None
    address = match.group(1).decode("utf-8", "replace")
    return address if "@" in address else None


def autodiscover_response(settings: Settings, address: str) -> str:
    eps = endpoints(settings)
    protocols = []
    for kind in ("imap", "pop3", "smtp"):
        e = _first(eps, kind)
        if e is None:
            continue
        encryption = "SSL" if e.security == "SSL" else "TLS"
        protocols.append(
            "      <Protocol>\n"
            f"        <Type>{kind.upper()}</Type>\n"
            f"        <Server>{escape(e.host)}</Server>\n"
            f"        <Port>{e.port}</Port>\n"
            "        <DomainRequired>off</DomainRequired>\n"
            f"        <LoginName>{escape(address)}</LoginName>\n"
            "        <SPA>off</SPA>\n"
            f"        <Encryption>{encryption}</Encryption>\n"
            "        <AuthRequired>on</AuthRequired>\n"
            "      </Protocol>\n")
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f'<Autodiscover xmlns="{_RESPONSE_NS}">\n'
            f'  <Response xmlns="{_OUTLOOK_NS}">\n'
            "    <Account>\n"
            "      <AccountType>email</AccountType>\n"
            "      <Action>settings</Action>\n"
            + "".join(protocols) +
            "    </Account>\n"
            "  </Response>\n"
            "</Autodiscover>\n")


def apple_profile(settings: Settings, address: str) -> bytes:
    """An unsigned configuration profile with one mail account (IMAP, else POP3)."""
    eps = endpoints(settings)
    incoming = _first(eps, "imap") or _first(eps, "pop3")
    outgoing = _first(eps, "smtp")
    domain = address.rpartition("@")[2]
    reverse = ".".join(reversed(settings.server.hostname.rstrip(".").split(".")))
    ident = f"{reverse}.mailwing.{domain}"
    account: dict[str, object] = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{ident}.account",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailwing:{address}:account")),
        "PayloadDisplayName": address,
        "EmailAccountDescription": address,
        "EmailAccountName": address,
        "EmailAddress": address,
    }
    if incoming is not None:
        account.update({
            "EmailAccountType": "EmailTypeIMAP" if incoming.kind == "imap" else "EmailTypePOP",
            "IncomingMailServerHostName": incoming.host,
            "IncomingMailServerPortNumber": incoming.port,
            "IncomingMailServerUseSSL": True,
            "IncomingMailServerAuthentication": "EmailAuthPassword",
            "IncomingMailServerUsername": address,
        })
    if outgoing is not None:
        account.update({
            "OutgoingMailServerHostName": outgoing.host,
            "OutgoingMailServerPortNumber": outgoing.port,
            "OutgoingMailServerUseSSL": True,
            "OutgoingMailServerAuthentication": "EmailAuthPassword",
            "OutgoingMailServerUsername": address,
            "OutgoingPasswordSameAsIncomingPassword": True,
        })
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": ident,
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailwing:{address}")),
        "PayloadDisplayName": f"Mail for {address}",
        "PayloadDescription": f"Sets up {address} on {settings.server.hostname}",
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile)
