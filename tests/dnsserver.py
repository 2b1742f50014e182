"""A real DNS server on loopback for tests: UDP and TCP on one port, a zone the test edits.

Why a real server and not a patched resolver: the code under test (outbound MX routing,
SPF/DKIM/DMARC checks) builds its own dnspython resolver from ``outbound.dns_resolver``; a
test that hands it ``"127.0.0.1:PORT"`` exercises the real wire path (UDP, truncation and the
TCP retry of RFC 1035 section 4.2.2 / RFC 7766, NXDOMAIN versus NODATA of RFC 2308), in the
server subprocess as well as in-process.

The responder is built on dnspython's message classes (``dns.message.from_wire``,
``make_response``, ``dns.rrset``). Answers are authoritative (AA) for every name:

- records at the name and type asked: NOERROR with the answer;
- a CNAME at the name (and another type asked): the CNAME chain, followed inside the zone;
- a name with other records only, or an empty non-terminal (a descendant has records):
  NODATA (NOERROR, empty answer);
- anything else: NXDOMAIN; a name marked with :meth:`DnsServer.servfail`: SERVFAIL;
- a name marked with :meth:`DnsServer.truncate`: over UDP the TC bit and no records, so the
  client has to retry over TCP.

Every question is appended to :attr:`DnsServer.queries` as ``(name, type)``, so a test can
count lookups (the SPF 10-lookup limit, caching).

Caching by the code under test: records carry :attr:`DnsServer.ttl`, 0 by default, so a test
that edits the zone between two checks (or a module-wide server) always sees its edit; a
caching test sets a TTL. Negative answers carry an SOA in the authority section (RFC 2308
section 3) only when :attr:`DnsServer.negative_ttl` is set, else they are not cacheable.
:meth:`DnsServer.delay` makes the server answer a name late (a slow or lossy resolver).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Iterable, Iterator

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

__all__ = ["DnsServer", "dns_server"]

_IN = dns.rdataclass.IN
_UDP_PLAIN = 512  # RFC 1035 section 4.2.1, without EDNS


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text.rstrip(".") + ".")


def _txt_rdata(value: str | tuple[str, ...]) -> dns.rdata.Rdata:
    """A TXT rdata: a str is split into 255-octet strings; a tuple gives them explicitly."""
    if isinstance(value, str):
        raw = value.encode()
        parts = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
    else:
        parts = [p.encode() for p in value]
    text = " ".join('"' + p.decode().replace("\\", "\\\\").replace('"', '\\"') + '"'
                    for p in parts)
    return dns.rdata.from_text(_IN, dns.rdatatype.TXT, text)


class DnsServer:
    """A threaded authoritative responder for the zone the test builds (see module doc)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.queries: list[tuple[str, str]] = []
        self.errors: list[Exception] = []  # exceptions raised while answering (zone bugs)
        self._records: dict[dns.name.Name, dict[int, list[dns.rdata.Rdata]]] = {}
        self._servfail: set[dns.name.Name] = set()
        self._truncate: set[dns.name.Name] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self.ttl = 0
        self.negative_ttl: int | None = None
        self._delay: dict[dns.name.Name, float] = {}

    # -- the zone ------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``, the form ``outbound.dns_resolver`` takes."""
        return f"{self.host}:{self.port}"

    def add(self, name: str, rdtype: str, *values: str | tuple[str, ...]) -> None:
        """Add records: ``add("example.org", "MX", "10 mx.example.org.")``. TXT values are
        plain strings (split into 255-octet strings) or tuples of strings."""
        rtype = dns.rdatatype.from_text(rdtype)
        rdatas = [_txt_rdata(v) if rtype == dns.rdatatype.TXT
                  else dns.rdata.from_text(_IN, rtype, str(v), origin=dns.name.root,
                                          relativize=False)
                  for v in values]
        with self._lock:
            self._records.setdefault(_name(name), {}).setdefault(rtype, []).extend(rdatas)

    def set(self, name: str, rdtype: str, *values: str | tuple[str, ...]) -> None:
        """Replace the records of one type at a name (none given: remove them)."""
        self.remove(name, rdtype)
        if values:
            self.add(name, rdtype, *values)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        with self._lock:
            node = self._records.get(_name(name))
            if node is None:
                return
            if rdtype is None:
                node.clear()
            else:
                node.pop(dns.rdatatype.from_text(rdtype), None)
            if not node:
                del self._records[_name(name)]

    def load(self, text: str, origin: str = ".") -> None:
        """Add every record of a master-file text (RFC 1035 section 5), e.g.
        ``"example.org. IN MX 10 mx.example.org."``; relative names use ``origin``."""
        zone = dns.zone.from_text(f"$TTL {self.ttl}\n{text}", origin=_name(origin),
                                  relativize=False,
                                  check_origin=False)
        with self._lock:
            for name, node in zone.nodes.items():
                for rdataset in node.rdatasets:
                    slot = self._records.setdefault(name, {}).setdefault(rdataset.rdtype, [])
                    slot.extend(rdataset)

    def servfail(self, name: str) -> None:
        """Answer SERVFAIL for every question about ``name``."""
        self._servfail.add(_name(name))

    def truncate(self, name: str) -> None:
        """Answer questions about ``name`` over UDP with TC set (forces a TCP retry)."""
        self._truncate.add(_name(name))

    def delay(self, name: str, seconds: float) -> None:
        """Answer questions about ``name`` only after ``seconds`` (UDP and TCP)."""
        self._delay[_name(name)] = seconds

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
        self._servfail.clear()
        self._truncate.clear()
        self._delay.clear()
        self.queries.clear()

    def _delay_for(self, wire: bytes) -> float:
        if not self._delay:
            return 0.0
        try:
            question = dns.message.from_wire(wire).question
        except dns.exception.DNSException:
            return 0.0
        return self._delay.get(question[0].name, 0.0) if len(question) == 1 else 0.0

    # -- answering -----------------------------------------------------------------------
    def _exists(self, name: dns.name.Name) -> bool:
        return any(n == name or n.is_subdomain(name) for n in self._records)

    def answer(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The response to one query message (None: unparsable, drop it)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        self.queries.append((question.name.to_text().rstrip(".").lower(),
                             dns.rdatatype.to_text(question.rdtype)))
        if question.name in self._servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        if not tcp and question.name in self._truncate:
            response.flags |= dns.flags.TC
            return response.to_wire()
        with self._lock:
            self._fill(response, question.name, question.rdtype)
        limit = 65535 if tcp else max(_UDP_PLAIN, query.payload if query.edns >= 0 else 0)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            short = dns.message.make_response(query)
            short.flags |= dns.flags.AA | dns.flags.TC
            return short.to_wire()

    def _safe_answer(self, wire: bytes, *, tcp: bool) -> bytes | None:
        try:
            return self.answer(wire, tcp=tcp)
        except Exception as exc:  # a bug in a test's zone: answer SERVFAIL, keep serving
            self.errors.append(exc)
            with contextlib.suppress(dns.exception.DNSException):
                query = dns.message.from_wire(wire)
                response = dns.message.make_response(query)
                response.set_rcode(dns.rcode.SERVFAIL)
                return response.to_wire()
            return None

    def _fill(self, response: dns.message.Message, name: dns.name.Name, rdtype: int) -> None:
        for _ in range(8):  # CNAME chain, bounded
            node = self._records.get(name, {})
            wanted = node.get(rdtype) if rdtype != dns.rdatatype.ANY else None
            if rdtype == dns.rdatatype.ANY and node:
                for rtype, rdatas in node.items():
                    response.answer.append(self._rrset(name, rtype, rdatas))
                return
            if wanted:
                response.answer.append(self._rrset(name, rdtype, wanted))
                return
            cname = node.get(dns.rdatatype.CNAME)
            if cname:
                response.answer.append(self._rrset(name, dns.rdatatype.CNAME, cname))
                name = cname[0].target  # type: ignore[attr-defined]
                continue
            if not node and not self._exists(name) and not response.answer:
                response.set_rcode(dns.rcode.NXDOMAIN)
            if self.negative_ttl is not None:  # RFC 2308 section 3: SOA for negative caching
                soa = dns.rdata.from_text(_IN, dns.rdatatype.SOA,
                                          f"ns.test. hostmaster.test. 1 60 60 60 "
                                          f"{self.negative_ttl}")
                rrset = dns.rrset.RRset(name.parent() if len(name) > 1 else name, _IN,
                                        dns.rdatatype.SOA)
                rrset.add(soa, self.negative_ttl)
                response.authority.append(rrset)
            return

    def _rrset(self, name: dns.name.Name, rdtype: int,
               rdatas: Iterable[dns.rdata.Rdata]) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(name, _IN, rdtype)
        for rdata in rdatas:
            rrset.add(rdata, self.ttl)
        return rrset

    # -- sockets -------------------------------------------------------------------------
    def start(self) -> DnsServer:
        for _ in range(50):  # the same free port for UDP and TCP
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            self._udp, self._tcp, self.port = udp, tcp, port
            break
        else:  # pragma: no cover
            raise RuntimeError("no free port for both UDP and TCP")
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()

    def _serve(self) -> None:
        assert self._udp is not None and self._tcp is not None
        sel = selectors.DefaultSelector()
        sel.register(self._udp, selectors.EVENT_READ, "udp")
        sel.register(self._tcp, selectors.EVENT_READ, "tcp")
        while not self._stop.is_set():
            for key, _ in sel.select(0.1):
                if key.data == "udp":
                    with contextlib.suppress(OSError):
                        wire, peer = self._udp.recvfrom(65535)
                        reply = self._safe_answer(wire, tcp=False)
                        late = self._delay_for(wire)
                        if reply is not None and late:
                            threading.Timer(late, self._send_late, (reply, peer)).start()
                        elif reply is not None:
                            self._udp.sendto(reply, peer)
                else:
                    with contextlib.suppress(OSError):
                        conn, _ = self._tcp.accept()
                        threading.Thread(target=self._tcp_client, args=(conn,),
                                         daemon=True).start()
        sel.close()

    def _send_late(self, reply: bytes, peer: tuple[str, int]) -> None:
        if self._udp is not None and not self._stop.is_set():
            with contextlib.suppress(OSError):
                self._udp.sendto(reply, peer)

    def _tcp_client(self, conn: socket.socket) -> None:
        """RFC 1035 section 4.2.2 framing: a two-octet length before each message."""
        conn.settimeout(5)
        with conn, contextlib.suppress(OSError):
            while True:
                head = _recv_exact(conn, 2)
                if head is None:
                    return
                wire = _recv_exact(conn, struct.unpack("!H", head)[0])
                if wire is None:
                    return
                reply = self._safe_answer(wire, tcp=True)
                if reply is None:
                    return
                late = self._delay_for(wire)
                if late:
                    self._stop.wait(late)
                conn.sendall(struct.pack("!H", len(reply)) + reply)


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    """A running :class:`DnsServer` with an empty zone; ``.address`` for dns_resolver."""
    server = DnsServer().start()
    try:
        yield server
    finally:
        server.stop()
