"""DMARC (RFC 7489): does the From: domain's policy accept this message's SPF/DKIM results?

- Policy discovery (section 6.6.3): TXT at ``_dmarc.<From domain>``; when none, at
  ``_dmarc.<organizational domain>`` and then ``sp=`` (or ``p=``) applies. Only records
  starting with ``v=DMARC1`` count; more than one means no policy. A DNS failure is
  ``temperror``.
- Record (section 6.3): ``p`` (required; when missing or invalid the record is ``p=none`` if
  it has ``rua``, else ignored), ``sp``, ``adkim``/``aspf`` (``r`` relaxed, the default, or
  ``s`` strict), ``pct`` (0-100).
- Identifier alignment (section 3.1): SPF aligns when it passed for the MAIL FROM domain
  and that domain matches the From: domain; DKIM when a passing signature's ``d=`` matches.
  Strict: equal names; relaxed: equal organizational domains. DMARC passes when either
  aligns (section 4.2).
- ``pct`` (section 6.6.4): a failing message outside the sampled percentage gets the next
  less strict policy (reject -> quarantine -> none).

Organizational domain (section 3.2) -- LIMITATION: instead of the Public Suffix List this
uses a built-in rule: the last two labels, or the last three when the TLD is a two-letter
country code and the second-level label is a common registry label (``co``, ``com``,
``org``, ``net``, ``ac``, ``gov``, ``edu``, ...), so ``mail.example.co.uk`` ->
``example.co.uk``. Private suffixes (``github.io``) are not known.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from mailwing.mailauth.dkim import DkimResult
from mailwing.mailauth.dns import DnsTempError, Lookup
from mailwing.mailauth.spf import SpfResult

__all__ = ["DmarcPolicy", "DmarcResult", "evaluate", "organizational_domain", "parse_record"]

_REGISTRY_LABELS = frozenset({"ac", "co", "com", "edu", "gov", "govt", "ltd", "me", "mil",
                              "net", "nhs", "or", "org", "plc", "sch", "ne", "gob", "nic"})
_POLICIES = ("none", "quarantine", "reject")


def organizational_domain(domain: str) -> str:
    labels = domain.lower().rstrip(".").split(".")
    keep = 3 if (len(labels) >= 3 and len(labels[-1]) == 2
                 and labels[-2] in _REGISTRY_LABELS) else 2
    return ".".join(labels[-keep:])


@dataclass(frozen=True, slots=True)
class DmarcPolicy:
    p: str
    sp: str
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100


@dataclass(frozen=True, slots=True)
class DmarcResult:
    result: str  # pass, fail, none, temperror, permerror
    domain: str  # the From: domain (header.from)
    policy: str = "none"  # the published policy that applied (p or sp)
    disposition: str = "none"  # what we do: none, quarantine, reject
    reason: str = ""


def parse_record(text: str) -> DmarcPolicy | None:
    """A DMARC record's policy, or None when it is not a usable DMARC record."""
    tags: dict[str, str] = {}
    for i, part in enumerate(p.strip() for p in text.split(";")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if i == 0 and (name != "v" or value != "DMARC1"):
            return None
        if sep:
            tags.setdefault(name, value)
    p = tags.get("p", "").lower()
    if p not in _POLICIES:
        if "rua" not in tags:
            return None
        p = "none"
    sp = tags.get("sp", p).lower()
    try:
        pct = max(0, min(100, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    return DmarcPolicy(p, sp if sp in _POLICIES else p,
                       adkim if adkim in ("r", "s") else "r",
                       aspf if aspf in ("r", "s") else "r", pct)


async def _find_policy(lookup: Lookup, domain: str) -> tuple[DmarcPolicy, bool] | None:
    """(policy, found at the organizational domain) or None. Raises DnsTempError."""
    org = organizational_domain(domain)
    for name, inherited in ((domain, False), (org, True)):
        if inherited and org == domain:
            break
        records = [r for r in await lookup.txt(f"_dmarc.{name}")
                   if r.strip().lower().startswith("v=dmarc1")]
        if len(records) == 1:
            policy = parse_record(records[0])
            if policy is not None:
                return policy, inherited
        if records:
            return None  # several or unusable records: no DMARC for this domain
    return None


def _aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b if mode == "s" else organizational_domain(a) == organizational_domain(b)


def _sampled(pct: int) -> bool:
    return pct >= 100 or random.randrange(100) < pct


async def evaluate(lookup: Lookup, from_domain: str | None, spf: SpfResult | None,
                   dkim_results: Sequence[DkimResult]) -> DmarcResult:
    """The DMARC result and our disposition for the message's From: domain."""
    if not from_domain:
        return DmarcResult("permerror", "", reason="no single From: domain")
    try:
        found = await _find_policy(lookup, from_domain)
    except DnsTempError as exc:
        return DmarcResult("temperror", from_domain, reason=str(exc))
    if found is None:
        return DmarcResult("none", from_domain, reason="no DMARC record")
    policy, inherited = found
    published = policy.sp if inherited else policy.p
    spf_ok = spf is not None and spf.result == "pass" and _aligned(spf.domain, from_domain,
                                                                     policy.aspf)
    dkim_ok = any(r.result == "pass" and _aligned(r.domain, from_domain, policy.adkim)
                  for r in dkim_results)
    if spf_ok or dkim_ok:
        return DmarcResult("pass", from_domain, published, "none")
    disposition = published
    if not _sampled(policy.pct):
        disposition = _POLICIES[max(0, _POLICIES.index(published) - 1)]
    return DmarcResult("fail", from_domain, published, disposition,
                       "neither SPF nor DKIM aligned with a pass")
