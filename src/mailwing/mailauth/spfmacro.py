"""SPF macro expansion (RFC 7208 section 7) and domain-spec checks.

Separate from the evaluator because it is pure string work: ``%{s}`` sender, ``%{l}`` its
local-part, ``%{o}`` its domain, ``%{d}`` the current domain, ``%{i}`` the client IP (dotted
IPv4, or dot-separated nibbles for IPv6, section 7.3), ``%{p}`` (always "unknown": section 7.3
discourages it and it would cost lookups), ``%{v}`` "in-addr" or "ip6", ``%{h}`` the HELO
name; ``%{c} %{r} %{t}`` only in ``exp`` text (here: the IP, our hostname, the time).
Transformers (a digit count keeping the right-most parts, ``r`` reversing) and delimiters
(``.-+,/_=``) as in section 7.1; an upper-case letter URL-encodes the value. ``%%``, ``%_``
and ``%-`` are a percent sign, a space and "%20".
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.parse
from dataclasses import dataclass

__all__ = ["MacroContext", "MacroError", "expand", "valid_domain"]

_MACRO = re.compile(r"%(?:\{([a-zA-Z])(\d*)(r?)([.\-+,/_=]*)\}|(.))", re.DOTALL)


class MacroError(ValueError):
    """A malformed macro-string (a permerror, RFC 7208 section 7.1)."""


@dataclass(frozen=True, slots=True)
class MacroContext:
    sender: str  # local@domain (already "postmaster@..." when the local-part was empty)
    domain: str  # the <domain> of the current check_host()
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    helo: str
    receiver: str = "unknown"

    def value(self, letter: str, *, exp: bool) -> str:
        lower = letter.lower()
        local, _, sdomain = self.sender.rpartition("@")
        if lower == "i":
            if self.ip.version == 4:
                return str(self.ip)
            return ".".join(self.ip.exploded.replace(":", ""))
        if lower == "c" and exp:
            return str(self.ip)
        if lower == "r" and exp:
            return self.receiver
        if lower == "t" and exp:
            return str(int(time.time()))
        values = {"s": self.sender, "l": local or "postmaster", "o": sdomain,
                  "d": self.domain, "p": "unknown",
                  "v": "in-addr" if self.ip.version == 4 else "ip6", "h": self.helo}
        if lower not in values:
            raise MacroError(f"unknown macro letter %{{{letter}}}")
        return values[lower]


def expand(text: str, ctx: MacroContext, *, exp: bool = False) -> str:
    """Expand every macro of a domain-spec (or of ``exp`` text when ``exp``)."""
    out: list[str] = []
    pos = 0
    for m in _MACRO.finditer(text):
        out.append(text[pos:m.start()])
        pos = m.end()
        letter, digits, reverse, delims, single = m.groups()
        if single is not None:
            if single not in "%_-":
                raise MacroError(f"bad macro escape %{single}")
            out.append({"%": "%", "_": " ", "-": "%20"}[single])
            continue
        value = ctx.value(letter, exp=exp)
        parts = re.split("[" + re.escape(delims or ".") + "]", value)
        if reverse:
            parts.reverse()
        if digits:
            keep = int(digits)
            if keep == 0:
                raise MacroError("a macro transformer of 0 parts")
            parts = parts[-keep:]
        value = ".".join(parts)
        if letter.isupper():
            value = urllib.parse.quote(value, safe="")
        out.append(value)
    rest = text[pos:]
    if "%" in rest:
        raise MacroError("a lone % in a macro-string")
    out.append(rest)
    return "".join(out)


def valid_domain(name: str) -> bool:
    """A name check_host() may look up (RFC 7208 section 4.3: a multi-label FQDN whose
    labels are 1-63 octets; the whole at most 253)."""
    name = name.rstrip(".")
    labels = name.split(".")
    if len(labels) < 2 or len(name) > 253:
        return False
    return all(0 < len(label) <= 63 for label in labels)
