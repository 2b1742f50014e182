"""Remote SMTP servers for outbound tests: real servers on loopback ports.

- :class:`Sink`: aiosmtpd (in its own thread) with a handler that records every envelope and
  can refuse recipients, answer DATA with scripted replies, or be slow.
- :class:`Dropper`: a raw socket server that, on its first connection, drops the connection
  in the middle of the DATA body; later connections it serves as a plain recording sink.

Every MX host in a test resolves to a 127.x address and uses the same port
(``[outbound] mx_port``): a live server binds 127.0.0.1 only, so 127.0.0.2 on that port
refuses connections (how "the first MX is down" is made).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from tests.support import free_port

__all__ = ["Dropper", "Envelope", "Sink", "wait_for"]


@dataclass
class Envelope:
    sender: str
    recipients: list[str]
    data: bytes
    tls: bool = False


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, step: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy (returns it) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(step)


@dataclass
class _Handler:
    received: list[Envelope] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)  # consumed one per DATA
    delay: float = 0.0
    discard: bool = False
    count: int = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.data_replies:
            return self.data_replies.pop(0)
        self.count += 1
        if not self.discard:
            self.received.append(Envelope(envelope.mail_from, list(envelope.rcpt_tos),
                                          bytes(envelope.original_content or b""),
                                          session.ssl is not None))
        return "250 2.0.0 OK: stored"


class Sink:
    """A recording aiosmtpd server on 127.0.0.1 (``port``); use as a context manager."""

    def __init__(self, port: int | None = None, **kwargs: Any) -> None:
        self.port = port or free_port()
        self.handler = _Handler()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                      ready_timeout=10.0, **kwargs)

    @property
    def received(self) -> list[Envelope]:
        return self.handler.received

    def start(self) -> Sink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Dropper:
    """First connection: closed after part of the DATA body; then a recording sink."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Envelope] = []
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Dropper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn, contextlib.suppress(OSError):
                self._session(conn.makefile("rwb"), drop=self.connections == 1)

    def _session(self, f: Any, *, drop: bool) -> None:
        def say(line: str) -> None:
            f.write(line.encode() + b"\r\n")
            f.flush()

        say("220 dropper.test ESMTP")
        sender, rcpts = "", []
        while True:
            line = f.readline().decode().rstrip("\r\n")
            verb = line[:4].upper()
            if not line or verb == "QUIT":
                say("221 bye")
                return
            if verb in ("EHLO", "HELO"):
                say("250 dropper.test")
            elif verb == "MAIL":
                sender = line.partition(":")[2].strip().split()[0].strip("<>")
                say("250 2.1.0 ok")
            elif verb == "RCPT":
                rcpts.append(line.partition(":")[2].strip().strip("<>"))
                say("250 2.1.5 ok")
            elif verb == "DATA":
                say("354 go ahead")
                if drop:
                    f.readline()  # a little of the body, then the line goes dead
                    return
                data = b""
                while (chunk := f.readline()) not in (b".\r\n", b""):
                    data += chunk
                self.received.append(Envelope(sender, rcpts, data))
                say("250 2.0.0 stored")
            else:
                say("250 ok")
