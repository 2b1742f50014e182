"""The DNS resolver every mail lookup shares: outbound MX routing and SPF/DKIM/DMARC checks.

Why one place: ``outbound.dns_resolver`` ("HOST" or "HOST:PORT"; empty: the system's
/etc/resolv.conf) must mean the same for routing and for the checks, and tests point it at a
loopback server. :func:`resolver_for` builds an :class:`dns.asyncresolver.Resolver` from the
settings (cached per setting value, so its answers are shared per process).

:class:`Lookup` wraps it with the answer classes the checks need (RFC 7208 section 4.4 and
RFC 7489 section 6.6.3 distinguish "no such record" from "could not ask"):

- a list of records (possibly empty: NXDOMAIN or NODATA), or
- :class:`DnsTempError` for SERVFAIL, timeouts and other failures to get an answer.

A synchronous variant for dkimpy's ``dnsfunc`` (which runs in a worker thread) is
:func:`txt_lookup_sync`.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from mailwing.config import Settings

__all__ = ["DnsTempError", "Lookup", "parse_resolver", "resolver_for", "sync_resolver_for",
           "txt_lookup_sync"]

LIFETIME = 10.0  # seconds for one lookup, all retries included


class DnsTempError(Exception):
    """The DNS could not be asked (SERVFAIL, timeout, no server): a temporary failure."""


def parse_resolver(value: str) -> tuple[str, int] | None:
    """``"HOST"`` -> (HOST, 53); ``"HOST:PORT"`` -> (HOST, PORT); ``""`` -> None (system)."""
    value = value.strip()
    if not value:
        return None
    if value.startswith("[") and "]" in value:  # [v6]:port
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port)
    return value, 53


def _configure(r: dns.resolver.BaseResolver, value: str) -> None:
    target = parse_resolver(value)
    if target is not None:
        r.nameservers = [target[0]]
        r.port = target[1]
    r.lifetime = LIFETIME
    r.timeout = min(r.timeout, LIFETIME / 2)


@functools.lru_cache(maxsize=8)
def _async_resolver(value: str) -> dns.asyncresolver.Resolver:
    r = dns.asyncresolver.Resolver(configure=not value.strip())
    _configure(r, value)
    return r


@functools.lru_cache(maxsize=8)
def _sync_resolver(value: str) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=not value.strip())
    _configure(r, value)
    return r


def resolver_for(settings: Settings) -> dns.asyncresolver.Resolver:
    """The async resolver for ``settings.outbound.dns_resolver`` (one per value)."""
    return _async_resolver(settings.outbound.dns_resolver)


def sync_resolver_for(settings: Settings) -> dns.resolver.Resolver:
    """The blocking twin, for libraries that call DNS themselves in a worker thread."""
    return _sync_resolver(settings.outbound.dns_resolver)


class Lookup:
    """Typed record lookups over one resolver; empty list = NXDOMAIN/NODATA."""

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self.resolver = resolver

    @classmethod
    def from_settings(cls, settings: Settings) -> Lookup:
        return cls(resolver_for(settings))

    async def _query(self, name: str, rdtype: str) -> list[Any]:  # typed Rdata subclasses
        try:
            answer = await self.resolver.resolve(name.rstrip(".") + ".", rdtype,
                                                 search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.name.LabelTooLong, dns.name.NameTooLong, dns.name.EmptyLabel):
            return []  # a name that cannot exist in the DNS
        except dns.exception.DNSException as exc:
            raise DnsTempError(f"{rdtype} {name}: {exc.__class__.__name__}") from exc
        return list(answer)

    async def txt(self, name: str) -> list[str]:
        """Each TXT record's strings joined (RFC 7208 section 3.3, RFC 6376 section 3.6.2.2)."""
        return [b"".join(r.strings).decode("utf-8", "replace")
                for r in await self._query(name, "TXT")]

    async def addresses(self, name: str, *, v6: bool) -> list[ipaddress.IPv4Address |
                                                            ipaddress.IPv6Address]:
        return [ipaddress.ip_address(r.address)
                for r in await self._query(name, "AAAA" if v6 else "A")]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, exchange) sorted by preference; exchange without the final dot."""
        rows = [(r.preference, r.exchange.to_text().rstrip(".").lower())
                for r in await self._query(name, "MX")]
        return sorted(rows)

    async def ptr(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[str]:
        return [r.target.to_text().rstrip(".").lower()
                for r in await self._query(ip.reverse_pointer, "PTR")]


def txt_lookup_sync(settings: Settings, name: bytes | str) -> bytes | None:
    """A dkimpy ``dnsfunc``: the first TXT record's bytes, None when there is none.
    A temporary failure raises :class:`DnsTempError` (dkimpy reports it as a key error)."""
    text = name.decode() if isinstance(name, bytes) else name
    try:
        answer = sync_resolver_for(settings).resolve(text.rstrip(".") + ".", "TXT",
                                                     search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    except dns.exception.DNSException as exc:
        raise DnsTempError(f"TXT {text}: {exc.__class__.__name__}") from exc
    for record in answer:
        return b"".join(record.strings)
    return None
