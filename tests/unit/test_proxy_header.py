"""PROXY protocol header parsing: v1 and v2, every family, truncation, garbage, bounds."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwing.proto.common.proxy import (
    MAX_V2_LENGTH,
    V2_SIGNATURE,
    ProxyError,
    header_length,
    looks_like_proxy,
    parse_proxy_header,
)


def v2(cmd: int, fam: int, body: bytes, version: int = 2) -> bytes:
    return V2_SIGNATURE + bytes([version << 4 | cmd, fam]) + struct.pack("!H", len(body)) + body


def v2_tcp4(src: str, sport: int, dst: str, dport: int, tlv: bytes = b"") -> bytes:
    body = (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
            + struct.pack("!HH", sport, dport) + tlv)
    return v2(1, 0x11, body)


def test_v1_tcp4_and_following_bytes_untouched() -> None:
    data = b"PROXY TCP4 192.0.2.7 10.9.0.1 40000 143\r\na001 CAPABILITY\r\n"
    h = parse_proxy_header(data)
    assert h is not None
    assert (h.version, h.local) == (1, False)
    assert h.source == ("192.0.2.7", 40000)
    assert h.destination == ("10.9.0.1", 143)
    assert data[h.length:] == b"a001 CAPABILITY\r\n"


def test_v1_tcp6() -> None:
    h = parse_proxy_header(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n")
    assert h is not None and h.source == ("2001:db8::1", 1)
    assert h.destination == ("2001:db8::2", 65535)


def test_v1_unknown_carries_no_address() -> None:
    h = parse_proxy_header(b"PROXY UNKNOWN whatever follows\r\n")
    assert h is not None and h.local and h.source is None


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 192.0.2.7 10.9.0.1 40000\r\n",  # missing field
    b"PROXY TCP4 192.0.2.7 10.9.0.1 40000 143 x\r\n",  # extra field
    b"PROXY TCP5 192.0.2.7 10.9.0.1 40000 143\r\n",
    b"PROXY TCP4 2001:db8::1 10.9.0.1 40000 143\r\n",  # family mismatch
    b"PROXY TCP6 192.0.2.7 2001:db8::2 1 2\r\n",
    b"PROXY TCP4 192.0.2.300 10.9.0.1 40000 143\r\n",
    b"PROXY TCP4 192.0.2.7 10.9.0.1 65536 143\r\n",
    b"PROXY TCP4 192.0.2.7 10.9.0.1 0143 143\r\n",  # leading zero
    b"PROXY TCP4 192.0.2.7 10.9.0.1 -1 143\r\n",
    b"PROXY TCP4  192.0.2.7 10.9.0.1 1 143\r\n",  # double space
    "PROXY TCP4 192.0.2.7 10.9.0.1 \u0661 143\r\n".encode(),  # non-ASCII digit
])
def test_v1_malformed(line: bytes) -> None:
    with pytest.raises(ProxyError):
        parse_proxy_header(line)


def test_v1_bound_is_107_bytes() -> None:
    assert parse_proxy_header(b"PROXY UNKNOWN " + b"x" * 80) is None  # may still end
    with pytest.raises(ProxyError):
        parse_proxy_header(b"PROXY UNKNOWN " + b"x" * 200)
    longest = b"PROXY UNKNOWN " + b"x" * (107 - 16) + b"\r\n"
    assert len(longest) == 107 and parse_proxy_header(longest) is not None


def test_v2_tcp4_with_tlv_skipped() -> None:
    tlv = bytes([0x04]) + struct.pack("!H", 3) + b"abc"  # PP2_TYPE_NOOP
    data = v2_tcp4("203.0.113.9", 51000, "10.9.0.2", 25, tlv) + b"EHLO x\r\n"
    h = parse_proxy_header(data)
    assert h is not None and (h.version, h.local) == (2, False)
    assert h.source == ("203.0.113.9", 51000) and h.destination == ("10.9.0.2", 25)
    assert data[h.length:] == b"EHLO x\r\n"


def test_v2_tcp6() -> None:
    body = (ipaddress.IPv6Address("2001:db8::9").packed + ipaddress.IPv6Address("::1").packed
            + struct.pack("!HH", 1234, 993))
    h = parse_proxy_header(v2(1, 0x21, body))
    assert h is not None and h.source == ("2001:db8::9", 1234)
    assert h.destination == ("::1", 993)


def test_v2_local_is_a_health_check() -> None:
    h = parse_proxy_header(v2(0, 0x00, b""))
    assert h is not None and h.local and h.source is None and h.length == 16
    # LOCAL with an address block: the addresses are ignored.
    h = parse_proxy_header(v2(0, 0x11, b"\x00" * 12))
    assert h is not None and h.local and h.source is None


def test_v2_unspec_unix_and_udp_carry_no_tcp_address() -> None:
    for fam, size in ((0x00, 0), (0x31, 216), (0x12, 12), (0x22, 36)):
        h = parse_proxy_header(v2(1, fam, b"\x00" * size))
        assert h is not None and h.local and h.source is None


@pytest.mark.parametrize("data", [
    v2(1, 0x11, b"\x00" * 11),  # address block too short for IPv4
    v2(1, 0x21, b"\x00" * 12),  # too short for IPv6
    v2(2, 0x11, b"\x00" * 12),  # unknown command
    v2(1, 0x11, b"\x00" * 12, version=1),  # wrong version
    v2(1, 0x41, b"\x00" * 12),  # unknown family
    v2(1, 0x13, b"\x00" * 12),  # unknown transport
])
def test_v2_malformed(data: bytes) -> None:
    with pytest.raises(ProxyError):
        parse_proxy_header(data)


def test_v2_length_bound() -> None:
    big = V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", MAX_V2_LENGTH)
    with pytest.raises(ProxyError):
        header_length(big)


def test_truncated_headers_need_more() -> None:
    for full in (b"PROXY TCP4 192.0.2.7 10.9.0.1 40000 143\r\n",
                 v2_tcp4("192.0.2.7", 1, "10.0.0.1", 2)):
        for cut in range(1, len(full)):
            assert parse_proxy_header(full[:cut]) is None, cut
        assert parse_proxy_header(full) is not None


@pytest.mark.parametrize("data", [b"EHLO x\r\n", b"a1 LOGIN", b"GET / HTTP/1.1\r\n",
                                  b"\x16\x03\x01", b"\r\n\r\n\x00\r\nQUIX\n"])
def test_garbage(data: bytes) -> None:
    assert not looks_like_proxy(data)
    with pytest.raises(ProxyError):
        parse_proxy_header(data)


def test_looks_like_proxy_on_prefixes() -> None:
    assert looks_like_proxy(b"PRO")
    assert looks_like_proxy(b"PROXY TCP4 ...")
    assert looks_like_proxy(V2_SIGNATURE[:5])
    assert not looks_like_proxy(b"")


@given(st.binary(max_size=300))
def test_never_crashes(data: bytes) -> None:
    try:
        h = parse_proxy_header(data)
    except ProxyError:
        return
    assert h is None or 0 < h.length <= len(data)


@given(st.ip_addresses(v=4), st.ip_addresses(v=4), st.integers(0, 65535),
       st.integers(0, 65535))
def test_v1_and_v2_agree(src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address,
                         sport: int, dport: int) -> None:
    h1 = parse_proxy_header(f"PROXY TCP4 {src} {dst} {sport} {dport}\r\n".encode())
    h2 = parse_proxy_header(v2_tcp4(str(src), sport, str(dst), dport))
    assert h1 is not None and h2 is not None
    assert (h1.source, h1.destination) == (h2.source, h2.destination)
