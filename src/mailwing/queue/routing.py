"""Where a domain's mail goes: MX resolution (RFC 5321 section 5.1), null MX (RFC 7505), or the
configured smarthost.

- ``outbound.relay_host`` ("HOST" or "HOST:PORT", port 25 when none is given) overrides
  routing: every message goes there.
- Otherwise the domain's MX records are looked up with dnspython's async resolver at
  ``outbound.dns_resolver`` (empty: the system's ``resolv.conf``), sorted by preference
  (equal preferences shuffled, RFC 5321 5.1), and each exchange's A and AAAA addresses are
  tried in turn on ``outbound.mx_port``. No MX records (NODATA) means the domain itself is the
  implicit MX (its A/AAAA, RFC 5321 5.1). A domain literal ``[192.0.2.1]`` is used as is.
- Permanent: NXDOMAIN (``5.1.2``), a null MX ``0 .`` (``556 5.1.10``, RFC 7505 section 4),
  no address for an implicit MX. Temporary: SERVFAIL, timeouts, no usable MX address yet.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from mailwing.config import OutboundSettings

__all__ = ["Hop", "Route", "RouteError", "Router", "split_host_port"]


class RouteError(Exception):
    """No route now (``permanent`` false: retry later) or ever (``permanent`` true)."""

    def __init__(self, reply: str, *, permanent: bool) -> None:
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Hop:
    """One host to try: its name (for logs, SNI and Remote-MTA) and its addresses."""

    name: str
    addresses: tuple[str, ...]
    port: int


@dataclass(frozen=True, slots=True)
class Route:
    hops: tuple[Hop, ...]
    relay: bool  # the smarthost (TLS and AUTH rules of outbound.relay_*)


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


class Router:
    """Resolves destinations; one per worker, caching answers for their TTL."""

    def __init__(self, settings: OutboundSettings) -> None:
        self.settings = settings
        if settings.dns_resolver:
            self.resolver = dns.asyncresolver.Resolver(configure=False)
            host, port = split_host_port(settings.dns_resolver, 53)
            self.resolver.nameservers = [host]
            self.resolver.port = port
        else:
            self.resolver = dns.asyncresolver.Resolver()
        self.resolver.lifetime = max(1.0, min(settings.connect_timeout, 30.0))
        self.resolver.cache = dns.resolver.Cache()  # answers kept for their TTL

    async def route(self, domain: str) -> Route:
        s = self.settings
        if s.relay_host:
            host, port = split_host_port(s.relay_host, 25)
            return Route((Hop(host, (host,), port),), relay=True)
        if domain.startswith("[") and domain.endswith("]"):
            literal = domain[1:-1].removeprefix("IPv6:")
            try:
                ipaddress.ip_address(literal)
            except ValueError:
                raise RouteError(f"501 5.1.2 bad address literal {domain}",
                                 permanent=True) from None
            return Route((Hop(literal, (literal,), s.mx_port),), relay=False)
        exchanges, implicit = await self._mx(domain)
        hops = []
        for name in exchanges:
            addresses = await self._addresses(name)
            if addresses:
                hops.append(Hop(name, addresses, s.mx_port))
        if not hops and implicit:
            raise RouteError(f"550 5.1.2 domain {domain} has no MX and no address",
                             permanent=True)
        if not hops:
            raise RouteError(f"451 4.4.4 no address for any mail exchanger of {domain}",
                             permanent=False)
        return Route(tuple(hops), relay=False)

    async def _mx(self, domain: str) -> tuple[list[str], bool]:
        """Exchanger names, best first, and whether it is the implicit MX (the domain)."""
        try:
            answer = await self.resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise RouteError(f"550 5.1.2 domain {domain} does not exist (NXDOMAIN)",
                             permanent=True) from None
        except dns.resolver.NoAnswer:
            return [domain], True  # the implicit MX (RFC 5321 5.1)
        except dns.exception.DNSException as exc:  # SERVFAIL, timeout, no name servers
            raise RouteError(f"451 4.4.3 DNS lookup of {domain} MX failed: {_short(exc)}",
                             permanent=False) from None
        records = list(answer)
        if any(r.exchange == dns.name.root for r in records):
            raise RouteError(f"556 5.1.10 domain {domain} does not accept mail (null MX)",
                             permanent=True)
        by_pref: dict[int, list[str]] = {}
        for r in records:
            by_pref.setdefault(int(r.preference), []).append(
                r.exchange.to_text(omit_final_dot=True))
        ordered: list[str] = []
        for pref in sorted(by_pref):
            group = by_pref[pref]
            random.shuffle(group)
            ordered.extend(n for n in group if n not in ordered)
        return ordered, False

    async def _addresses(self, name: str) -> tuple[str, ...]:
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self.resolver.resolve(name, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException:
                continue  # this exchanger is unusable now; the others may do
            found.extend(r.to_text() for r in answer)
        return tuple(found)


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
