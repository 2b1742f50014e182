"""PROXY protocol on a listener: who may send the header, and reading exactly its bytes.

A listener with ``proxy_protocol = true`` accepts connections itself (rather than through
``asyncio.start_server``) so that the header can be taken off the raw socket *before* asyncio
and TLS see any byte: with implicit TLS (imaps, smtps, pop3s) the client's ClientHello often
arrives in the same segment as the header, and a stream reader would have swallowed it. The
header is peeked (``MSG_PEEK``), its length worked out by the sans-IO parser
(:mod:`mailwing.proto.common.proxy`), and exactly that many bytes are consumed; the socket is
then handed to asyncio (``loop.connect_accepted_socket``, TLS included) as if freshly accepted.

Trust: only peers inside ``server.proxy_trusted`` may (and on such a listener must) send a
header; their connections are dropped if it is missing, malformed or late. Everyone else is
served as a direct client, and a direct client whose first bytes are a PROXY header is
refused (:attr:`Connection.refuse_proxy_header`), so nobody can forge an address by
speaking to the port directly. Any listener, including an HTTP one, can use
:func:`accept_proxied`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable

from mailwing.proto.common.proxy import (
    MAX_V2_LENGTH,
    ProxyError,
    ProxyHeader,
    header_length,
    parse_proxy_header,
)

__all__ = ["HEADER_TIMEOUT", "TrustedProxies", "accept_proxied", "open_streams",
           "read_proxy_header", "reuse_port_socket"]

#: A trusted balancer sends its header at once; one that has not after this is dropped.
HEADER_TIMEOUT = 5.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The ``server.proxy_trusted`` networks."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.networks: list[Network] = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def __contains__(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks)


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    fut: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await fut
    finally:
        loop.remove_reader(fd)


async def read_proxy_header(sock: socket.socket, timeout: float = HEADER_TIMEOUT) -> ProxyHeader:
    """Consume exactly the PROXY header at the start of the non-blocking ``sock``.

    Raises :class:`ProxyError` for a malformed header, :class:`TimeoutError` when none came
    in time, :class:`ConnectionError` when the peer closed first."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        last = -1
        while True:
            await _readable(loop, sock)
            peeked = sock.recv(MAX_V2_LENGTH, socket.MSG_PEEK)
            if not peeked:
                raise ConnectionError("closed before the PROXY header")
            length = header_length(peeked)
            if length is not None and len(peeked) >= length:
                data = sock.recv(length)
                header = parse_proxy_header(data)
                if header is None:  # pragma: no cover - recv after a peek returns it all
                    raise ProxyError("short read of the PROXY header")
                return header
            if len(peeked) == last:  # a partial header: wait for more without spinning
                await asyncio.sleep(0.01)
            last = len(peeked)


async def open_streams(
    sock: socket.socket, *, ssl_context: ssl.SSLContext | None, handshake_timeout: float,
    limit: int = 2 ** 16,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Hand an accepted socket to asyncio as a stream pair (with TLS when given)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.connect_accepted_socket(
        lambda: protocol, sock, ssl=ssl_context,
        ssl_handshake_timeout=handshake_timeout if ssl_context is not None else None)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def accept_proxied(
    sock: socket.socket, trusted: TrustedProxies,
) -> tuple[ProxyHeader | None, tuple[str, int]]:
    """For a freshly accepted socket: the header (None for an untrusted, direct peer) and the
    client address to use from now on. Raises on a bad or missing header from a trusted peer."""
    peer = sock.getpeername()
    ip, port = str(peer[0]), int(peer[1])
    if ip not in trusted:
        return None, (ip, port)
    header = await read_proxy_header(sock)
    if header.source is None:
        return header, (ip, port)
    return header, header.source


def reuse_port_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A non-blocking listening socket with SO_REUSEPORT, as ``start_server`` would make."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
