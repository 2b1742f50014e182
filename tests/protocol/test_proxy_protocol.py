"""PROXY protocol on real listeners: trusted balancers name the client, others cannot.

The server trusts only 127.0.0.1; "direct" clients connect from 127.0.0.2 (any 127/8 address
is loopback on Linux). The client address from the header must show in the Received: field,
the session log and the per-IP login throttling; implicit TLS must survive a ClientHello sent
in the same segment as the header.
"""

from __future__ import annotations

import contextlib
import ipaddress
import poplib
import smtplib
import socket
import ssl
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from mailwing.proto.common.proxy import V2_SIGNATURE
from tests.support import MailwingServer

ALICE = "alice@example.test"
PASSWORD = "correct horse battery staple"
CLIENT = "203.0.113.77"  # the "real" client named by the balancer (TEST-NET-3, never used)
CONFIG = """
[server]
proxy_trusted = ["127.0.0.1/32"]
[auth]
max_failures_per_ip = 3
failure_delay = 0.0
[smtp]
proxy_protocol = true
[pop3]
proxy_protocol = true
[imaps]
proxy_protocol = true
"""


def v1(src: str, sport: int = 40000) -> bytes:
    return f"PROXY TCP4 {src} 127.0.0.1 {sport} 25\r\n".encode()


def v2(src: str, sport: int = 40000, *, local: bool = False) -> bytes:
    if local:
        return V2_SIGNATURE + b"\x20\x00\x00\x00"
    body = (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address("127.0.0.1").packed
            + struct.pack("!HH", sport, 25))
    return V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(body)) + body


def open_socket(port: int, header: bytes = b"", source: str = "127.0.0.1") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), 10, source_address=(source, 0))
    s.settimeout(10)
    if header:
        s.sendall(header)
    return s


class ProxiedSMTP(smtplib.SMTP):
    header = b""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return open_socket(port, self.header)


class ProxiedPOP3(poplib.POP3):
    header = b""

    def _create_socket(self, timeout: Any) -> socket.socket:
        return open_socket(self.port, self.header)


@pytest.fixture
def server(server_factory: type[MailwingServer], tmp_path: Path,
           database_url: str) -> MailwingServer:
    srv = server_factory(root=tmp_path / "srv", database_url=database_url,
                         enable=("smtp", "pop3", "imaps"), extra_config=CONFIG).start()
    srv.add_user(ALICE, PASSWORD)
    return srv


def pop3_messages(srv: MailwingServer) -> list[bytes]:
    ProxiedPOP3.header = v2("198.51.100.1")
    p = ProxiedPOP3("127.0.0.1", srv.ports["pop3"])
    p.user(ALICE)
    p.pass_(PASSWORD)
    count, _ = p.stat()
    out = [b"\r\n".join(p.retr(i)[1]) for i in range(1, count + 1)]
    p.quit()
    return out


@pytest.mark.parametrize("header", [v1, v2], ids=["v1", "v2"])
def test_client_address_from_header_in_received_and_log(server: MailwingServer,
                                                        header: Any) -> None:
    ProxiedSMTP.header = header(CLIENT, 45678)
    with ProxiedSMTP("127.0.0.1", server.ports["smtp"]) as s:
        s.ehlo("client.test")
        assert s.sendmail("x@remote.test", [ALICE], b"Subject: hi\r\n\r\nbody\r\n") == {}
    (stored,) = pop3_messages(server)
    received = stored.split(b"\r\n\r\n")[0]
    assert f"[{CLIENT}]".encode() in received
    assert b"127.0.0.1" not in received
    time.sleep(0.3)
    assert f"peer={CLIENT}" in server.log_text() or f'"peer": "{CLIENT}"' in server.log_text()


def test_untrusted_peer_sending_a_header_is_refused(server: MailwingServer) -> None:
    s = open_socket(server.ports["pop3"], source="127.0.0.2")
    assert s.recv(512).startswith(b"+OK")
    s.sendall(v1(CLIENT))
    assert s.recv(512) == b""  # closed, no reply to the header
    s.close()
    s = open_socket(server.ports["smtp"], source="127.0.0.2")
    assert s.recv(512).startswith(b"220")
    s.sendall(v2(CLIENT))
    assert s.recv(512) == b""
    s.close()
    time.sleep(0.3)
    assert "PROXY header from an untrusted address" in server.log_text()


def test_untrusted_peer_without_header_is_served_as_itself(server: MailwingServer) -> None:
    s = open_socket(server.ports["pop3"], source="127.0.0.2")
    assert s.recv(512).startswith(b"+OK")
    s.sendall(b"CAPA\r\n")
    assert s.recv(512).startswith(b"+OK")
    s.close()


def test_trusted_peer_with_garbage_is_dropped(server: MailwingServer) -> None:
    s = open_socket(server.ports["pop3"], b"GET / HTTP/1.0\r\n\r\n")
    with contextlib.suppress(ConnectionResetError):  # closed with our bytes unread: fine
        assert s.recv(512) == b""  # no greeting at all
    s.close()


def test_health_check_local_is_served_with_balancer_address(server: MailwingServer) -> None:
    s = open_socket(server.ports["smtp"], v2("", local=True))
    assert s.recv(512).startswith(b"220")
    s.sendall(b"QUIT\r\n")
    assert s.recv(512).startswith(b"221")
    s.close()


def test_implicit_tls_hello_in_the_same_segment_as_the_header(server: MailwingServer) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    s = open_socket(server.ports["imaps"], v2(CLIENT) + outgoing.read())  # one segment
    while True:
        data = s.recv(65536)
        assert data, "server closed during the handshake"
        incoming.write(data)
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            s.sendall(outgoing.read())
    s.sendall(outgoing.read())
    greeting = b""
    while b"\r\n" not in greeting:
        try:
            greeting += tls.read(4096)
        except ssl.SSLWantReadError:
            incoming.write(s.recv(65536))
    assert greeting.startswith(b"* OK")
    s.close()


def test_throttling_counts_the_client_named_by_the_header(server: MailwingServer) -> None:
    def login(src: str, password: str) -> bytes:
        s = open_socket(server.ports["pop3"], v1(src))
        s.recv(512)
        s.sendall(f"USER {ALICE}\r\n".encode())
        s.recv(512)
        s.sendall(f"PASS {password}\r\n".encode())
        reply = s.recv(512)
        s.close()
        return reply

    for _ in range(3):
        assert login("192.0.2.10", "wrong").startswith(b"-ERR")
    # the limit (3 per IP) is reached for 192.0.2.10 only; the right password is refused there
    assert login("192.0.2.10", PASSWORD).startswith(b"-ERR")
    assert login("192.0.2.11", PASSWORD).startswith(b"+OK")


def test_admin_listener_takes_the_client_from_the_header(server_factory: type[MailwingServer],
                                                         tmp_path: Path) -> None:
    from tests.adminkit import start_admin

    srv, token = start_admin(server_factory, tmp_path / "adm", enable=("admin",), extra="""
[server]
proxy_trusted = ["127.0.0.1/32"]
[admin]
proxy_protocol = true
""")
    port = srv.ports["admin"]

    def get(header: bytes, auth: str, source: str = "127.0.0.1") -> bytes:
        s = open_socket(port, header, source)
        s.sendall(f"GET /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\n"
                  "Connection: close\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        s.close()
        return out

    assert get(v2(CLIENT), token).startswith(b"HTTP/1.1 200")
    assert get(v1("198.51.100.23"), "mwa_wrong").startswith(b"HTTP/1.1 401")
    time.sleep(0.3)
    assert "admin authentication failed (bad token) from 198.51.100.23" in srv.log_text() or \
        "from 198.51.100.23" in srv.log_text()
    # a direct client (untrusted) with a header gets no service
    assert not get(v1(CLIENT), token, source="127.0.0.2").startswith(b"HTTP/1.1 200")
