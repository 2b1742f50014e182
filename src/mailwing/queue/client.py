"""A small asyncio SMTP client for outbound delivery: one transaction, per-recipient results.

Why our own and not aiosmtplib (not a dependency) or smtplib (blocking, one thread per
connection): delivery needs exactly one shape of dialogue, with per-recipient outcomes,
streamed bodies, PIPELINING and the timeouts of our settings, and the rest of mailwing
already speaks asyncio streams. What it does (RFC 5321 sections 3.3, 4.1, 4.5.3.2):

- ``220`` greeting, ``EHLO`` (``HELO`` if EHLO is refused); the EHLO keywords decide the rest.
- ``STARTTLS`` (RFC 3207) when offered: opportunistic and unverified towards MX hosts (what
  most MTAs do without DANE/MTA-STS: encryption against passive listeners, no error on a
  self-signed certificate; if the handshake itself fails, :class:`TlsFailed` lets the
  worker try that host once more in plaintext, as Postfix does at security level "may");
  towards the smarthost per ``outbound.relay_tls``: ``starttls``
  requires it and verifies the certificate and name, ``implicit`` is TLS from the first byte,
  ``opportunistic`` uses it if offered (verified), ``none`` never. EHLO again after TLS.
- ``AUTH PLAIN`` or ``AUTH LOGIN`` (RFC 4954, RFC 4616) at the smarthost when a user name is
  configured, only over TLS unless ``relay_tls = none``.
- ``MAIL``/``RCPT``/``DATA`` pipelined (RFC 2920) when the server offers PIPELINING, else one
  by one; ``SIZE=`` (RFC 1870), ``BODY=8BITMIME`` (RFC 6152) and ``SMTPUTF8`` (RFC 6531)
  when offered (and, for SMTPUTF8, needed).
- The body streams from storage in chunks, dot-stuffed (RFC 5321 4.5.2) on the fly.
- Results: each recipient gets its RCPT reply if that was not 2xx, else the reply to the
  end of data. Connection trouble (refused, reset, timeout, a closed stream) raises
  :class:`ConnectionTrouble`, which the worker treats as temporary.

Every wait is bounded: ``connect_timeout`` for the TCP connection and TLS handshake,
``command_timeout`` for each reply (and for each write to drain).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass, field

__all__ = ["ClientOptions", "ConnectionTrouble", "HostRefused", "SmtpReply", "TlsFailed",
           "Transaction", "deliver"]

_MAX_LINE = 4096


class ConnectionTrouble(Exception):
    """The connection failed or broke: a temporary condition; ``str`` says what happened."""

    reply: SmtpReply | None = None


class TlsFailed(ConnectionTrouble):
    """The STARTTLS handshake failed (the connection is unusable afterwards)."""


class HostRefused(ConnectionTrouble):
    """The server refused the session (greeting or EHLO): try the next host. ``reply`` is
    what it said, which becomes the outcome when no host is left."""

    def __init__(self, reply: SmtpReply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass(frozen=True, slots=True)
class SmtpReply:
    code: int
    text: str  # the lines joined with "; " (enhanced status code included)

    def __str__(self) -> str:
        return f"{self.code} {self.text}"

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def permanent(self) -> bool:
        return self.code >= 500


@dataclass(frozen=True, slots=True)
class ClientOptions:
    helo_name: str
    connect_timeout: float = 30.0
    command_timeout: float = 300.0
    tls: str = "opportunistic"  # "opportunistic", "starttls" (required), "implicit", "none"
    verify: bool = False  # check the certificate and the host name
    ca_file: str = ""
    username: str = ""
    password: str = ""


@dataclass(slots=True)
class Transaction:
    sender: str
    recipients: Sequence[str]
    size: int = 0
    smtputf8: bool = False
    results: dict[str, SmtpReply] = field(default_factory=dict)


def _tls_context(opts: ClientOptions) -> ssl.SSLContext:
    if opts.verify:
        return ssl.create_default_context(cafile=opts.ca_file or None)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _Conn:
    """One connection: reads replies, writes commands, each bounded by a timeout."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self.reader, self.writer, self.timeout = reader, writer, timeout
        self.extensions: dict[str, str] = {}

    async def reply(self) -> SmtpReply:
        lines: list[str] = []
        while True:
            try:
                raw = await asyncio.wait_for(self.reader.readline(), self.timeout)
            except TimeoutError:
                raise ConnectionTrouble("timeout waiting for a reply") from None
            except (OSError, ValueError) as exc:
                raise ConnectionTrouble(f"connection broke: {exc}") from None
            if not raw.endswith(b"\n"):
                raise ConnectionTrouble("connection closed by the remote server")
            line = raw[:_MAX_LINE].decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise ConnectionTrouble(f"malformed reply {line[:80]!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return SmtpReply(int(line[:3]), "; ".join(x for x in lines if x))

    async def send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self.timeout)
        except TimeoutError:
            raise ConnectionTrouble("timeout while sending") from None
        except (OSError, RuntimeError) as exc:
            raise ConnectionTrouble(f"connection broke: {exc}") from None

    async def command(self, line: str) -> SmtpReply:
        await self.send(line.encode("utf-8") + b"\r\n")
        return await self.reply()

    async def ehlo(self, name: str) -> SmtpReply:
        await self.send(f"EHLO {name}\r\n".encode())
        reply = await self.reply()
        if not reply.ok:
            return await self.command(f"HELO {name}")
        lines = reply.text.split("; ")[1:]
        self.extensions = {}
        for item in lines:
            keyword, _, param = item.partition(" ")
            self.extensions[keyword.upper()] = param
        return reply

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.write(b"QUIT\r\n")
            await asyncio.wait_for(self.writer.drain(), 2.0)
            await asyncio.wait_for(self.reader.readline(), 2.0)
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)


async def _open(address: str, port: int, server_name: str, opts: ClientOptions) -> _Conn:
    implicit = opts.tls == "implicit"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            address, port, ssl=_tls_context(opts) if implicit else None,
            server_hostname=server_name if implicit else None, limit=64 * 1024),
            opts.connect_timeout)
    except TimeoutError:
        raise ConnectionTrouble(f"timeout connecting to {address}:{port}") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionTrouble(f"cannot connect to {address}:{port}: {exc}") from None
    return _Conn(reader, writer, opts.command_timeout)


async def _starttls(conn: _Conn, server_name: str, opts: ClientOptions) -> None:
    reply = await conn.command("STARTTLS")
    if reply.code != 220:
        raise ConnectionTrouble(f"STARTTLS refused: {reply}")
    try:
        await asyncio.wait_for(conn.writer.start_tls(
            _tls_context(opts), server_hostname=server_name), opts.connect_timeout)
    except TimeoutError:
        raise TlsFailed("timeout during the TLS handshake") from None
    except (OSError, ssl.SSLError) as exc:
        raise TlsFailed(f"TLS handshake failed: {exc}") from None


async def _hello(conn: _Conn, server_name: str, opts: ClientOptions) -> None:
    """Greeting, EHLO, STARTTLS, AUTH; raises :class:`HostRefused` if the server will not
    take mail now, :class:`ConnectionTrouble` if the session cannot be set up as required."""
    greeting = await conn.reply()
    if greeting.code != 220:
        raise HostRefused(greeting)
    reply = await conn.ehlo(opts.helo_name)
    if not reply.ok:
        raise HostRefused(reply)
    offered = "STARTTLS" in conn.extensions
    if opts.tls in ("starttls", "opportunistic") and offered:
        await _starttls(conn, server_name, opts)
        try:  # with TLS 1.3 a refused handshake shows only at the first read
            reply = await conn.ehlo(opts.helo_name)
        except ConnectionTrouble as exc:
            raise TlsFailed(f"TLS session failed: {exc}") from None
        if not reply.ok:
            raise HostRefused(reply)
    elif opts.tls == "starttls":
        raise ConnectionTrouble(f"{server_name} does not offer STARTTLS (relay_tls = starttls)")
    if opts.username:
        await _auth(conn, opts)


async def _auth(conn: _Conn, opts: ClientOptions) -> None:
    """A refused login is a configuration matter: temporary, so nothing bounces for it."""
    if opts.tls != "none" and conn.writer.get_extra_info("ssl_object") is None:
        raise ConnectionTrouble("refusing to send the relay password without TLS")
    mechanisms = conn.extensions.get("AUTH", "").upper().split()
    user, password = opts.username.encode(), opts.password.encode()
    if "PLAIN" in mechanisms or not mechanisms:
        token = base64.b64encode(b"\0" + user + b"\0" + password).decode()
        reply = await conn.command(f"AUTH PLAIN {token}")
    else:
        reply = await conn.command("AUTH LOGIN")
        for item in (user, password):
            if reply.code != 334:
                break
            reply = await conn.command(base64.b64encode(item).decode())
    if reply.code != 235:
        raise ConnectionTrouble(f"authentication at the relay failed: {reply}")


def _mail_line(txn: Transaction, extensions: dict[str, str]) -> str:
    line = f"MAIL FROM:<{txn.sender}>"
    if "SIZE" in extensions and txn.size:
        line += f" SIZE={txn.size}"
    if "8BITMIME" in extensions:  # RFC 6152: harmless for 7-bit data, needed for 8-bit
        line += " BODY=8BITMIME"
    if txn.smtputf8 and "SMTPUTF8" in extensions:
        line += " SMTPUTF8"
    return line


async def _envelope(conn: _Conn, txn: Transaction) -> tuple[SmtpReply, list[str], SmtpReply]:
    """(MAIL reply, accepted recipients, DATA reply); refused recipients get their reply."""
    commands = [_mail_line(txn, conn.extensions)]
    commands += [f"RCPT TO:<{r}>" for r in txn.recipients]
    commands.append("DATA")
    if "PIPELINING" in conn.extensions:
        await conn.send("".join(c + "\r\n" for c in commands).encode("utf-8"))
        replies = [await conn.reply() for _ in commands]
    else:
        replies = [await conn.command(commands[0])]
        if replies[0].ok:
            for c in commands[1:-1]:
                replies.append(await conn.command(c))
            any_accepted = any(r.ok for r in replies[1:])
            replies.append(await conn.command("DATA") if any_accepted
                           else SmtpReply(554, "5.5.1 no valid recipients"))
    mail, rcpts, data = replies[0], replies[1:-1], replies[-1]
    accepted = []
    for address, reply in zip(txn.recipients, rcpts, strict=False):
        if mail.ok and reply.ok:
            accepted.append(address)
        else:
            txn.results[address] = reply if mail.ok else mail
    for address in txn.recipients[len(rcpts):]:
        txn.results[address] = mail
    return mail, accepted, data


async def _body(conn: _Conn, body: AsyncIterable[bytes]) -> None:
    at_line_start, tail = True, b""
    async for chunk in body:
        if not chunk:
            continue
        stuffed = chunk.replace(b"\n.", b"\n..")
        if at_line_start and chunk.startswith(b"."):
            stuffed = b"." + stuffed
        await conn.send(stuffed)
        at_line_start = chunk.endswith(b"\n")
        tail = (tail + chunk)[-2:]
    await conn.send((b"" if tail.endswith(b"\r\n") or not tail else b"\r\n") + b".\r\n")


async def deliver(address: str, port: int, server_name: str, txn: Transaction,
                  body: AsyncIterable[bytes], opts: ClientOptions) -> None:
    """One SMTP transaction with the server at ``address``; fills ``txn.results`` for every
    recipient, or raises :class:`ConnectionTrouble` (then no result is final)."""
    conn = await _open(address, port, server_name, opts)
    try:
        await _hello(conn, server_name, opts)
        _, accepted, data = await _envelope(conn, txn)
        if data.code != 354:
            if accepted:  # the server took recipients but refuses the data
                for r in accepted:
                    txn.results[r] = data
            return
        if not accepted:  # RFC 2920 section 3.1: end an unwanted DATA at once
            await conn.send(b".\r\n")
            await conn.reply()
            return
        await _body(conn, body)
        final = await conn.reply()
        for r in accepted:
            txn.results[r] = final
    finally:
        await conn.close()
