"""SPF: is the client IP allowed to send for a domain? (RFC 7208, ``check_host()``).

Why our own evaluator and not pyspf: pyspf is synchronous and does its own DNS, so it can
neither run on the event loop nor be pointed at ``outbound.dns_resolver`` (which tests aim at
a loopback server). This one walks the record over :class:`mailwing.mailauth.dns.Lookup`.

Covered (section numbers of RFC 7208):

- 4.3 a name that is not a multi-label FQDN gives ``none``; 4.4 a DNS failure fetching the
  record ``temperror``, none or NXDOMAIN ``none``; 4.5 only ``v=spf1`` records count, two or
  more give ``permerror``.
- 4.6 terms: qualifiers ``+ - ~ ?``; mechanisms ``all include a mx ptr ip4 ip6 exists``
  (5.1-5.7; ``ptr`` is minimal: PTR names of the IP, validated by A/AAAA, up to 10 names);
  modifiers ``redirect`` (6.1; used only when no mechanism matched) and ``exp`` (6.2; parsed,
  the explanation is not fetched: we never send it in a reply); unknown modifiers ignored,
  a syntax error or an unknown mechanism ``permerror``.
- 4.6.4 at most 10 terms that query the DNS (include, a, mx, ptr, exists, redirect) over the
  whole evaluation, else ``permerror``; at most 10 MX or PTR names per mechanism; at most 2
  "void" lookups (NXDOMAIN or no answer), else ``permerror``.
- 5.2 ``include`` maps the inner result: pass matches; fail, softfail, neutral do not;
  temperror propagates; permerror and none become permerror. 6.1 ``redirect`` to a domain
  without a record is ``permerror``.
- 5 a DNS error during a mechanism ends the check with ``temperror``.
- 7 macros (:mod:`.spfmacro`); 4.8 an empty local-part of the sender is ``postmaster``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from mailwing.mailauth.dns import DnsTempError, Lookup
from mailwing.mailauth.spfmacro import MacroContext, MacroError, expand, valid_domain

__all__ = ["SpfResult", "check_helo", "check_host", "check_mailfrom", "mailfrom_domain"]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_LOOKUPS = 10
MAX_VOID = 2
MAX_NAMES = 10  # MX or PTR names looked at per mechanism

_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_TERM = re.compile(r"^([+\-~?]?)([a-z][a-z0-9_.\-]*)(?:([:=])(.*?))?$", re.IGNORECASE)
_CIDR = re.compile(r"^(.*?)(?:/(\d+))?(?://(\d+))?$")


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The outcome of one check: ``result`` is pass, fail, softfail, neutral, none,
    temperror or permerror; ``domain`` the identity checked; ``reason`` for logs."""

    result: str
    domain: str
    reason: str = ""


class _Stop(Exception):
    """Ends the evaluation with a result (permerror/temperror)."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


class _Evaluation:
    """State shared by one check_host() and its includes/redirects: the lookup counters."""

    def __init__(self, lookup: Lookup, ip: IP, sender: str, helo: str) -> None:
        self.lookup = lookup
        self.ip = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped \
            else ip
        self.sender = sender
        self.helo = helo
        self.lookups = 0
        self.voids = 0

    def count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _Stop("permerror", "more than 10 DNS-querying terms")

    def void(self, records: list[object]) -> None:
        if not records:
            self.voids += 1
            if self.voids > MAX_VOID:
                raise _Stop("permerror", "more than 2 void lookups")

    async def _dns(self, coro: Awaitable[list[Any]]) -> list[Any]:
        try:
            return await coro
        except DnsTempError as exc:
            raise _Stop("temperror", str(exc)) from exc

    # -- record ---------------------------------------------------------------------------
    async def check(self, domain: str) -> tuple[str, str]:
        domain = domain.rstrip(".").lower()
        if not valid_domain(domain):
            return "none", f"{domain!r} is not a domain name"
        try:
            texts = await self.lookup.txt(domain)
        except DnsTempError as exc:
            return "temperror", str(exc)
        records = [t for t in texts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
        if not records:
            return "none", f"no SPF record at {domain}"
        if len(records) > 1:
            return "permerror", f"more than one SPF record at {domain}"
        try:
            return await self._record(domain, records[0])
        except _Stop as stop:
            return stop.result, stop.reason
        except (MacroError, ValueError) as exc:
            return "permerror", f"{domain}: {exc}"

    async def _record(self, domain: str, record: str) -> tuple[str, str]:
        terms = record.split()[1:]
        redirect: str | None = None
        directives: list[tuple[str, str, str | None]] = []
        seen: set[str] = set()
        for term in terms:
            m = _TERM.match(term)
            if m is None:
                raise _Stop("permerror", f"bad term {term!r}")
            qualifier, name, sep, arg = m.groups()
            name = name.lower()
            if sep == "=":
                if qualifier:
                    raise _Stop("permerror", f"bad modifier {term!r}")
                if name in ("redirect", "exp"):
                    if name in seen:
                        raise _Stop("permerror", f"{name}= given twice")
                    seen.add(name)
                    if name == "redirect":
                        redirect = arg
                continue  # unknown modifiers are ignored (section 6)
            if name not in _MECHANISMS:
                raise _Stop("permerror", f"unknown mechanism {name!r}")
            directives.append((qualifier or "+", name, arg))
        for qualifier, name, arg in directives:
            if await self._matches(domain, name, arg):
                return _QUALIFIERS[qualifier], f"{domain}: matched {qualifier}{name}"
        if redirect is not None:
            self.count()
            target = self._expand(redirect, domain)
            result, reason = await self.check(target)
            return ("permerror", f"redirect to {target}: no SPF record") if result == "none" \
                else (result, reason)
        return "neutral", f"{domain}: no mechanism matched"

    # -- mechanisms -----------------------------------------------------------------------
    def _expand(self, spec: str, domain: str) -> str:
        ctx = MacroContext(self.sender, domain, self.ip, self.helo)
        name = expand(spec, ctx).rstrip(".")
        while len(name) > 253 and "." in name:  # section 4.8/7.3: drop left-hand labels
            name = name.split(".", 1)[1]
        return name

    async def _matches(self, domain: str, name: str, arg: str | None) -> bool:
        if name == "all":
            if arg is not None:
                raise _Stop("permerror", "all takes no argument")
            return True
        if name in ("ip4", "ip6"):
            return self._ip_match(name, arg)
        if name == "include":
            return await self._include(domain, arg)
        if name == "exists":
            if not arg:
                raise _Stop("permerror", "exists needs a domain")
            self.count()
            found = await self._dns(self.lookup.addresses(self._expand(arg, domain), v6=False))
            self.void(found)
            return bool(found)
        spec, v4, v6 = self._cidr(arg or "")
        target = self._expand(spec, domain) if spec else domain
        self.count()
        if name == "a":
            return await self._a_match(target, v4, v6, count_void=True)
        if name == "mx":
            return await self._mx_match(target, v4, v6)
        return await self._ptr_match(target)

    def _ip_match(self, name: str, arg: str | None) -> bool:
        if not arg:
            raise _Stop("permerror", f"{name} needs an address")
        try:
            net = (ipaddress.IPv4Network if name == "ip4" else ipaddress.IPv6Network)(
                arg, strict=False)
        except ValueError as exc:
            raise _Stop("permerror", f"bad {name}:{arg}") from exc
        return self.ip.version == net.version and self.ip in net

    async def _include(self, domain: str, arg: str | None) -> bool:
        if not arg:
            raise _Stop("permerror", "include needs a domain")
        self.count()
        target = self._expand(arg, domain)
        result, reason = await self.check(target)
        if result in ("temperror", "permerror"):
            raise _Stop(result, reason)
        if result == "none":
            raise _Stop("permerror", f"include of {target}: no SPF record")
        return result == "pass"

    @staticmethod
    def _cidr(arg: str) -> tuple[str, int, int]:
        m = _CIDR.match(arg)
        assert m is not None
        spec, v4, v6 = m.groups()
        v4n, v6n = int(v4) if v4 else 32, int(v6) if v6 else 128
        if v4n > 32 or v6n > 128:
            raise _Stop("permerror", f"bad prefix length in {arg!r}")
        return spec, v4n, v6n

    def _in(self, addresses: list[IP], v4: int, v6: int) -> bool:
        prefix = v4 if self.ip.version == 4 else v6
        net = ipaddress.ip_network(f"{self.ip}/{prefix}", strict=False)
        return any(a in net for a in addresses if a.version == self.ip.version)

    async def _a_match(self, target: str, v4: int, v6: int, *, count_void: bool) -> bool:
        if not valid_domain(target):
            return False
        found = await self._dns(self.lookup.addresses(target, v6=self.ip.version == 6))
        if count_void:
            self.void(found)
        return self._in(found, v4, v6)

    async def _mx_match(self, target: str, v4: int, v6: int) -> bool:
        hosts = await self._dns(self.lookup.mx(target))
        self.void(hosts)
        if len(hosts) > MAX_NAMES:
            raise _Stop("permerror", f"more than 10 MX names at {target}")
        for _, host in hosts:
            if await self._a_match(host, v4, v6, count_void=False):
                return True
        return False

    async def _ptr_match(self, target: str) -> bool:
        try:
            names = (await self.lookup.ptr(self.ip))[:MAX_NAMES]
        except DnsTempError:
            return False  # section 5.5: errors in the PTR lookup mean no match
        for host in names:
            try:
                addresses = await self.lookup.addresses(host, v6=self.ip.version == 6)
            except DnsTempError:
                continue
            if self.ip in addresses and (host == target or host.endswith("." + target)):
                return True
        return False


def _sender(mail_from: str, helo: str) -> str:
    if not mail_from:
        return f"postmaster@{helo}"
    local, _, domain = mail_from.rpartition("@")
    return f"{local or 'postmaster'}@{domain}" if domain else f"postmaster@{mail_from}"


async def check_host(lookup: Lookup, ip: str, domain: str, sender: str,
                     helo: str) -> SpfResult:
    """RFC 7208 section 4: the result for ``domain`` with ``sender`` (local@domain)."""
    evaluation = _Evaluation(lookup, ipaddress.ip_address(ip), sender, helo)
    result, reason = await evaluation.check(domain)
    return SpfResult(result, domain.lower(), reason)


def mailfrom_domain(mail_from: str, helo: str) -> str:
    """The domain the MAIL FROM identity is checked for (the HELO name for ``<>``)."""
    return _sender(mail_from, helo).rpartition("@")[2].lower()


async def check_mailfrom(lookup: Lookup, ip: str, mail_from: str, helo: str) -> SpfResult:
    """The MAIL FROM identity (section 2.4); a null sender uses the HELO name instead."""
    sender = _sender(mail_from, helo)
    return await check_host(lookup, ip, sender.rpartition("@")[2], sender, helo)


async def check_helo(lookup: Lookup, ip: str, helo: str) -> SpfResult:
    """The HELO identity (section 2.3); an address literal or a bare name gives ``none``."""
    if helo.startswith("[") or not valid_domain(helo):
        return SpfResult("none", helo.lower(), "HELO is not a domain name")
    return await check_host(lookup, ip, helo, f"postmaster@{helo}", helo)
