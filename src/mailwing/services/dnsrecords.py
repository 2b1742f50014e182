"""The DNS records an operator publishes for a mail domain, from the running configuration.

For each domain: MX (RFC 5321 section 5), SPF (RFC 7208), DKIM (RFC 6376, from the domain's
active key made by ``mailwing dkim keygen``), DMARC (RFC 7489), MTA-STS (RFC 8461: the
``_mta-sts`` TXT record whose ``id`` is derived from the policy text, so it changes exactly
when the policy does, and the ``mta-sts.<domain>`` host serving the policy), TLS-RPT
(RFC 8460), and RFC 6186 SRV records for imap/imaps/submission/pop3s (plus RFC 8314's
submissions and pop3). Ports are the configured listener ports; a disabled listener gets the
RFC 6186 "not offered" form (target ``.``). The MTA-STS policy file itself is made here too,
so the record and the policy served at ``/.well-known/mta-sts.txt`` can never disagree.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mailwing.config import Settings
from mailwing.mailauth.dkimkeys import active_key

__all__ = ["DnsRecord", "domain_records", "mta_sts_id", "mta_sts_policy"]


@dataclass(frozen=True, slots=True)
class DnsRecord:
    kind: str  # "MX", "SPF", "DKIM", ... (what it is for)
    name: str  # fully qualified, with the trailing dot
    type: str  # the DNS type: MX, TXT, SRV, CNAME
    value: str  # the RDATA as written in a zone file

    @property
    def zone_line(self) -> str:
        return f"{self.name} IN {self.type} {self.value}"


def _fqdn(name: str) -> str:
    return name.rstrip(".") + "."


def _txt(text: str) -> str:
    parts = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join(f'"{p}"' for p in parts)


def mta_sts_policy(settings: Settings) -> str:
    """The policy file (RFC 8461 section 3.2): CRLF-separated ``key: value`` lines."""
    a = settings.admin
    lines = ["version: STSv1", f"mode: {a.mta_sts_mode}"]
    if a.mta_sts_mode != "none":
        lines.append(f"mx: {settings.server.hostname.rstrip('.')}")
    lines.append(f"max_age: {a.mta_sts_max_age}")
    return "\r\n".join(lines) + "\r\n"


def mta_sts_id(settings: Settings) -> str:
    """1-32 alphanumerics (RFC 8461 section 3.1) that change whenever the policy does."""
    return hashlib.sha256(mta_sts_policy(settings).encode()).hexdigest()[:20]


def _srv(settings: Settings, domain: str, service: str, listener: str) -> DnsRecord:
    port = settings.listener(listener).port
    host = _fqdn(settings.server.hostname)
    value = f"0 1 {port} {host}" if port else "0 0 0 ."
    return DnsRecord("SRV", f"_{service}._tcp.{domain}.", "SRV", value)


def domain_records(settings: Settings, domain: str) -> list[DnsRecord]:
    domain = domain.rstrip(".").lower()
    host = _fqdn(settings.server.hostname)
    report_to = settings.admin.tlsrpt_address or f"postmaster@{domain}"
    records = [
        DnsRecord("MX", f"{domain}.", "MX", f"10 {host}"),
        DnsRecord("SPF", f"{domain}.", "TXT", _txt("v=spf1 mx -all")),
    ]
    key = active_key(settings.server.data_dir, domain)
    if key is not None:
        records.append(DnsRecord("DKIM", f"{key.selector}._domainkey.{domain}.", "TXT",
                                 _txt(key.txt_value())))
    records += [
        DnsRecord("DMARC", f"_dmarc.{domain}.", "TXT",
                  _txt(f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}")),
        DnsRecord("MTA-STS", f"_mta-sts.{domain}.", "TXT",
                  _txt(f"v=STSv1; id={mta_sts_id(settings)}")),
        DnsRecord("MTA-STS", f"mta-sts.{domain}.", "CNAME", host),
        DnsRecord("TLS-RPT", f"_smtp._tls.{domain}.", "TXT",
                  _txt(f"v=TLSRPTv1; rua=mailto:{report_to}")),
    ]
    for service, listener in (("imap", "imap"), ("imaps", "imaps"),
                              ("submission", "submission"), ("submissions", "smtps"),
                              ("pop3", "pop3"), ("pop3s", "pop3s")):
        records.append(_srv(settings, domain, service, listener))
    return records
