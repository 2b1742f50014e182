"""PROXY protocol headers (HAProxy's specification, versions 1 and 2), sans-IO.

A TCP load balancer in front of mailwing hides the client's address: every connection seems
to come from the balancer. HAProxy's PROXY protocol puts a small header in front of the
client's bytes that names the real client. This module only turns bytes into a
:class:`ProxyHeader`; deciding *whom* to believe (``server.proxy_trusted``) and reading
exactly the header's bytes off a socket is the server layer's job.

Formats (proxy-protocol.txt, sections 2.1 and 2.2):

* v1, text: ``PROXY TCP4|TCP6|UNKNOWN <src> <dst> <sport> <dport>\\r\\n``, at most 107
  bytes in all; ``UNKNOWN`` may be followed by anything up to the CRLF.
* v2, binary: a 12-byte signature, one version/command byte (``0x2?``: LOCAL 0, PROXY 1),
  one family/transport byte, a 16-bit big-endian length, then the addresses (12 bytes for
  IPv4, 36 for IPv6, 216 for UNIX) and optional TLVs, which are skipped.

A LOCAL command (HAProxy's health checks) or an UNSPEC/UNKNOWN family carries no client
address: :attr:`ProxyHeader.source` is then None and the connection's own peer stands.
Anything malformed raises :class:`ProxyError`; everything is bounded (v1 by 107 bytes, v2 by
:data:`MAX_V2_LENGTH`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = [
    "MAX_V1_LENGTH",
    "MAX_V2_LENGTH",
    "V2_SIGNATURE",
    "ProxyError",
    "ProxyHeader",
    "header_length",
    "looks_like_proxy",
    "parse_proxy_header",
]

#: The v2 signature: "\r\n\r\n\0\r\nQUIT\n".
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: Longest v1 header, CRLF included (specification section 2.1).
MAX_V1_LENGTH = 107
#: Longest v2 header accepted (16-byte fixed part plus addresses and TLVs). The format allows
#: 64 KiB of TLVs; nothing HAProxy sends by default comes close, so refuse more.
MAX_V2_LENGTH = 16 + 1024

_V1_PREFIX = b"PROXY "
_ADDRESS_LENGTHS = {0x1: 12, 0x2: 36, 0x3: 216}  # family nibble -> address block size


class ProxyError(ValueError):
    """The bytes are not a valid PROXY header (the connection must be dropped)."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What the balancer said about the connection."""

    version: int  # 1 or 2
    local: bool  # v2 LOCAL (health check) or v1 UNKNOWN: no client address carried
    source: tuple[str, int] | None  # the real client (ip, port), when carried
    destination: tuple[str, int] | None  # the address the client connected to
    length: int  # bytes the header occupied


def looks_like_proxy(data: bytes) -> bool:
    """True when ``data`` (the first bytes of a connection) starts like a PROXY header, or is
    a prefix of one: used to refuse headers from addresses that are not trusted."""
    n = min(len(data), len(_V1_PREFIX))
    if n and data[:n] == _V1_PREFIX[:n]:
        return True
    n = min(len(data), len(V2_SIGNATURE))
    return bool(n) and data[:n] == V2_SIGNATURE[:n]


def header_length(data: bytes) -> int | None:
    """How many bytes the header at the start of ``data`` occupies, or None if more bytes are
    needed to tell. Raises :class:`ProxyError` when ``data`` cannot start a header."""
    if data.startswith(V2_SIGNATURE):
        if len(data) < 16:
            return None
        total = 16 + int.from_bytes(data[14:16], "big")
        if total > MAX_V2_LENGTH:
            raise ProxyError(f"v2 header of {total} bytes is too long")
        return total
    if data.startswith(_V1_PREFIX):
        end = data.find(b"\r\n", 0, MAX_V1_LENGTH)
        if end >= 0:
            return end + 2
        if len(data) >= MAX_V1_LENGTH:
            raise ProxyError("v1 header without CRLF within 107 bytes")
        return None
    if looks_like_proxy(data):
        return None
    raise ProxyError("not a PROXY protocol header")


def parse_proxy_header(data: bytes) -> ProxyHeader | None:
    """Parse the header at the start of ``data``; None if incomplete; bytes after it are the
    client's and are left alone (``ProxyHeader.length`` says where they start)."""
    length = header_length(data)
    if length is None or len(data) < length:
        return None
    if data.startswith(V2_SIGNATURE):
        return _parse_v2(data[:length])
    return _parse_v1(data[:length])


def _parse_v1(raw: bytes) -> ProxyHeader:
    try:
        line = raw[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyError("v1 header is not ASCII") from None
    parts = line.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(1, True, None, None, len(raw))
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyError(f"malformed v1 header {line[:60]!r}")
    _, family, src, dst, sport, dport = parts
    version = 4 if family == "TCP4" else 6
    source = (_ip(src, version), _port(sport))
    destination = (_ip(dst, version), _port(dport))
    return ProxyHeader(1, False, source, destination, len(raw))


def _ip(text: str, version: int) -> str:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyError(f"bad address {text[:45]!r}") from None
    if addr.version != version:
        raise ProxyError(f"address {text!r} is not IPv{version}")
    return str(addr)


def _port(text: str) -> int:
    # Section 2.1: decimal, no leading zero, 0..65535.
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        raise ProxyError(f"bad port {text[:8]!r}")
    value = int(text)
    if value > 65535:
        raise ProxyError(f"bad port {text[:8]!r}")
    return value


def _parse_v2(raw: bytes) -> ProxyHeader:
    ver_cmd, fam = raw[12], raw[13]
    if ver_cmd >> 4 != 2:
        raise ProxyError(f"unsupported v2 version {ver_cmd >> 4}")
    command = ver_cmd & 0x0F
    if command not in (0, 1):
        raise ProxyError(f"unsupported v2 command {command}")
    family, transport = fam >> 4, fam & 0x0F
    if family > 3 or transport > 2:
        raise ProxyError(f"unsupported v2 family/transport 0x{fam:02x}")
    body = raw[16:]
    need = _ADDRESS_LENGTHS.get(family, 0)
    if len(body) < need:
        raise ProxyError(f"v2 address block of {len(body)} bytes, {need} needed")
    if command == 0 or family in (0, 3) or transport != 1:
        # LOCAL (health check), UNSPEC, UNIX sockets or UDP: no TCP client address to use.
        return ProxyHeader(2, True, None, None, len(raw))
    if family == 1:
        src = str(ipaddress.IPv4Address(body[0:4]))
        dst = str(ipaddress.IPv4Address(body[4:8]))
        sport, dport = body[8:10], body[10:12]
    else:
        src = str(ipaddress.IPv6Address(body[0:16]))
        dst = str(ipaddress.IPv6Address(body[16:32]))
        sport, dport = body[32:34], body[34:36]
    return ProxyHeader(2, False, (src, int.from_bytes(sport, "big")),
                       (dst, int.from_bytes(dport, "big")), len(raw))
