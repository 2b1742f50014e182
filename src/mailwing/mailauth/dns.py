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

Why a cache and single-flight (issue #9: SMTP intake stalled on DNS): mail checks ask the same
few questions over and over (the SPF and DMARC records of the same senders), and under
concurrency many sessions ask the SAME question at the same moment.

- Cache: both resolvers of one setting value share one bounded ``AnswerCache``
  (dnspython's LRU cache), which keeps each answer for its TTL, and negative answers
  (NXDOMAIN, NODATA) for the negative TTL of RFC 2308 section 5 (from the SOA in the
  authority section; an answer without one is not cached, as that section asks).
- Records of a positive answer are also kept in :data:`_RECORDS` until the answer's own
  expiry, so a hit costs a dictionary look-up instead of a pass through dnspython's resolver
  (~140 us per lookup here, several lookups per message: a fifth of a core at 250 msgs/s).
- Single-flight: :meth:`Lookup._query` keeps the lookups in flight per event loop; an
  identical question (name, type, resolver) asked meanwhile waits for the same answer
  instead of sending another query. A waiter that gives up (a check's time bound) does not
  cancel the shared lookup for the others (``asyncio.shield``); the lookup itself ends
  within :data:`LIFETIME`.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import time
import weakref
from typing import TYPE_CHECKING, Any

from mailwing.config import Settings

if TYPE_CHECKING:
    import dns.asyncresolver
    import dns.resolver

__all__ = ["DnsTempError", "Lookup", "clear_cache", "in_flight", "parse_resolver",
           "resolver_for", "sync_resolver_for", "txt_lookup_sync"]

LIFETIME = 10.0  # seconds for one lookup, all retries included
CACHE_SIZE = 20_000  # answers kept per resolver setting (LRU beyond that)


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


@functools.cache
def _answer_cache_type() -> type[dns.resolver.LRUCache]:
    """:class:`AnswerCache`, made on first use: dnspython is imported only by a process that
    looks something up (an embedded test server or ``mailwing deliver`` never does)."""
    import dns.rdatatype
    import dns.resolver

    class AnswerCache(dns.resolver.LRUCache):
        """dnspython's LRU cache, minus one thing: a negative answer without an SOA is not
        kept (RFC 2308 section 5 says it SHOULD NOT be cached; dnspython keeps it for 300 s)."""

        def put(self, key: Any, value: dns.resolver.Answer) -> None:
            if value.rrset is None and not any(
                    rrset.rdtype == dns.rdatatype.SOA for rrset in value.response.authority):
                return
            super().put(key, value)

    return AnswerCache


@functools.lru_cache(maxsize=8)
def _cache(value: str) -> dns.resolver.LRUCache:
    """The answer cache shared by the async and the blocking resolver of one setting value
    (dnspython's cache is thread-safe: dkimpy's lookups run in worker threads)."""
    cache = _answer_cache_type()(CACHE_SIZE)
    _CACHES.add(cache)
    return cache


_CACHES: weakref.WeakSet[dns.resolver.LRUCache] = weakref.WeakSet()


def _configure(r: dns.resolver.BaseResolver, value: str) -> None:
    r.cache = _cache(value)
    target = parse_resolver(value)
    if target is not None:
        r.nameservers = [target[0]]
        r.port = target[1]
    r.lifetime = LIFETIME
    r.timeout = min(r.timeout, LIFETIME / 2)


@functools.lru_cache(maxsize=8)
def _async_resolver(value: str) -> dns.asyncresolver.Resolver:
    import dns.asyncresolver

    r = dns.asyncresolver.Resolver(configure=not value.strip())
    _configure(r, value)
    return r


@functools.lru_cache(maxsize=8)
def _sync_resolver(value: str) -> dns.resolver.Resolver:
    import dns.resolver

    r = dns.resolver.Resolver(configure=not value.strip())
    _configure(r, value)
    return r


def resolver_for(settings: Settings) -> dns.asyncresolver.Resolver:
    """The async resolver for ``settings.outbound.dns_resolver`` (one per value)."""
    return _async_resolver(settings.outbound.dns_resolver)


def sync_resolver_for(settings: Settings) -> dns.resolver.Resolver:
    """The blocking twin, for libraries that call DNS themselves in a worker thread."""
    return _sync_resolver(settings.outbound.dns_resolver)


def clear_cache() -> None:
    """Forget every cached answer (tests; a resolver setting that changes meaning)."""
    for cache in _CACHES:
        cache.flush()
    _RECORDS.clear()


_Key = tuple[str, str, str]
#: Records of positive answers by (resolver's servers, lower-case name, type):
#: (expiry, records). Bounded by :data:`CACHE_SIZE` (emptied when full).
_RECORDS: dict[_Key, tuple[float, tuple[Any, ...]]] = {}
#: Per event loop: the lookups in flight, by (resolver's servers, lower-case name, type).
_IN_FLIGHT: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                      dict[_Key, asyncio.Future[list[Any]]]] = (
    weakref.WeakKeyDictionary())


def in_flight() -> int:
    """How many distinct lookups this event loop has in flight (for tests and metrics)."""
    return len(_IN_FLIGHT.get(asyncio.get_running_loop(), {}))


class Lookup:
    """Typed record lookups over one resolver; empty list = NXDOMAIN/NODATA."""

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self.resolver = resolver
        # the servers asked, not id(resolver): an evicted resolver's id may be reused
        self._servers = f"{resolver.nameservers}:{resolver.port}"

    @classmethod
    def from_settings(cls, settings: Settings) -> Lookup:
        return cls(resolver_for(settings))

    async def _query(self, name: str, rdtype: str) -> list[Any]:  # typed Rdata subclasses
        """The records, shared with an identical lookup already in flight (module doc)."""
        key = (self._servers, name.rstrip(".").lower(), rdtype)
        kept = _RECORDS.get(key)
        if kept is not None:
            if kept[0] > time.time():
                return list(kept[1])
            _RECORDS.pop(key, None)
        table = _IN_FLIGHT.setdefault(asyncio.get_running_loop(), {})
        shared = table.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._ask(name, rdtype, key))
            table[key] = shared

            def done(fut: asyncio.Future[list[Any]], key: _Key = key) -> None:
                if table.get(key) is fut:
                    del table[key]
                if not fut.cancelled():
                    fut.exception()  # retrieved here: a waiter may have given up

            shared.add_done_callback(done)
        return list(await asyncio.shield(shared))

    async def _ask(self, name: str, rdtype: str, key: _Key) -> list[Any]:
        import dns.exception
        import dns.name
        import dns.resolver

        try:
            answer = await self.resolver.resolve(name.rstrip(".") + ".", rdtype,
                                                 search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.name.LabelTooLong, dns.name.NameTooLong, dns.name.EmptyLabel):
            return []  # a name that cannot exist in the DNS
        except dns.exception.DNSException as exc:
            raise DnsTempError(f"{rdtype} {name}: {exc.__class__.__name__}") from exc
        records = tuple(answer)
        if answer.expiration > time.time():
            if len(_RECORDS) >= CACHE_SIZE:
                _RECORDS.clear()
            _RECORDS[key] = (answer.expiration, records)
        return list(records)

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
    import dns.exception
    import dns.resolver

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
