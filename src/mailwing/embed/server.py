"""A whole mailwing server inside a Python program: SMTP, submission, IMAP and POP3 on free
loopback ports over a temporary SQLite database, started in one line.

Why this exists: tests of code that sends or reads mail want a real server (real SMTP
replies, real IMAP state), not a mock, and aiosmtpd gives SMTP only. This runs the same
worker that ``mailwing serve`` runs (:func:`mailwing.app.start_worker`), on the caller's
event loop (:class:`AsyncMailServer`) or on a background thread (:class:`MailServer`).

Choices, all safe for tests:

* the listening sockets are bound to port 0 here and handed to the server layer, so the
  ports are the kernel's choice and no other process can take them between choosing and
  binding;
* nothing ever leaves the machine: outbound delivery is off (remote recipients are refused),
  and so are the inbound SPF/DKIM/DMARC checks, which would query DNS;
* passwords may be sent without TLS (every listener is on loopback); ``tls=True`` adds the
  implicit-TLS listeners and STARTTLS with a self-signed certificate, and
  :meth:`AsyncMailServer.client_ssl_context` trusts it;
* ``capture=True`` is capture mode (:mod:`mailwing.services.capture`): any recipient, any
  AUTH, everything kept in the catch-all account.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from mailwing.app import RunningWorker, load_handlers, start_worker
from mailwing.config import LISTENERS, Settings
from mailwing.runtime import open_store
from mailwing.server.tls import build_server_context, ensure_self_signed
from mailwing.services.capture import apply_capture_mode, provision
from mailwing.services.delivery import deliver_local
from mailwing.services.passwords import hash_password
from mailwing.storage.errors import AlreadyExists

__all__ = ["AsyncMailServer", "MailServer", "StoredMessage"]

T = TypeVar("T")

PLAIN_LISTENERS = ("smtp", "submission", "pop3", "imap")
TLS_LISTENERS = ("smtps", "pop3s", "imaps")


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message as stored in a mailbox: the exact bytes, plus parsed conveniences."""

    uid: int
    flags: frozenset[str]
    internal_date: datetime
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        """The message parsed with the stdlib's modern policy."""
        parsed: Message = BytesParser(policy=policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def from_(self) -> str:
        return str(self.message.get("From", ""))

    @property
    def to(self) -> str:
        return str(self.message.get("To", ""))

    @property
    def text(self) -> str:
        """The plain-text body (the text/plain part of a multipart message), or ``""``."""
        part = self.message.get_body(preferencelist=("plain",))
        return "" if part is None else str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return "" if part is None else str(part.get_content())


def _as_bytes(message: bytes | str | Message) -> bytes:
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        return message.encode("utf-8")
    return message.as_bytes(policy=policy.SMTP)


class AsyncMailServer:
    """The server on the running event loop: ``async with AsyncMailServer() as server:``."""

    def __init__(self, *, hostname: str = "localhost", data_dir: str | Path | None = None,
                 database_url: str | None = None, tls: bool = False, capture: bool = False,
                 listeners: Iterable[str] | None = None,
                 settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        s = self.settings
        s.server.hostname = hostname
        s.server.listen = ["127.0.0.1"]
        s.server.workers = 1
        s.server.shutdown_grace = 2.0
        s.auth.allow_plaintext = True
        s.auth.check_spf = s.auth.check_dkim = s.auth.check_dmarc = False
        s.auth.failure_delay = 0.0
        s.outbound.enabled = False
        s.capture.enabled = capture
        if capture:
            s.capture.password = s.capture.password or "capture"
            apply_capture_mode(s)
        self.tls = tls
        wanted = tuple(listeners) if listeners is not None else (
            PLAIN_LISTENERS + (TLS_LISTENERS if tls else ()))
        unknown = [n for n in wanted if n not in LISTENERS or n == "admin"]
        if unknown:
            raise ValueError(f"unknown listener(s): {', '.join(unknown)}")
        self._wanted = wanted
        self._own_dir: Path | None = None
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._database_url = database_url
        self._worker: RunningWorker | None = None
        self._cert: Path | None = None
        self.host = "127.0.0.1"
        #: listener name -> port, once started (``smtp``, ``submission``, ``imap``, ``pop3``,
        #: and with ``tls=True`` also ``smtps``, ``imaps``, ``pop3s``)
        self.ports: dict[str, int] = {}

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind every listener and serve; returns once all of them accept connections."""
        if self._worker is not None:
            raise RuntimeError("the server is already running")
        if self._data_dir is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="mailwing-"))
            self._data_dir = self._own_dir
        s = self.settings
        s.server.data_dir = self._data_dir
        s.database.url = self._database_url or f"sqlite:///{self._data_dir / 'mailwing.db'}"
        storage = await open_store(s)
        sockets: dict[str, socket.socket] = {}
        try:
            await storage.upgrade()
            if s.capture.enabled:
                await provision(storage, s)
            ssl_context = None
            if self.tls:
                cert, key = await asyncio.to_thread(ensure_self_signed, self._data_dir,
                                                    s.server.hostname)
                self._cert = cert
                ssl_context = build_server_context(cert, key)
            for name in LISTENERS:
                listener = s.listener(name)
                if name not in self._wanted:
                    listener.port = 0
                    continue
                sock = socket.create_server((self.host, 0))
                sockets[name] = sock
                listener.port = self.ports[name] = sock.getsockname()[1]
            handlers = load_handlers({LISTENERS[n][0] for n in self._wanted})
            self._worker = await start_worker(s, handlers, ssl_context, storage=storage,
                                              sockets=sockets)
        except BaseException:
            for sock in sockets.values():
                sock.close()
            if self._worker is None:
                await storage.close()
            self._cleanup()
            raise

    async def stop(self) -> None:
        """Close every connection and listener, close storage, remove the temporary data."""
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None
            self._data_dir = None

    async def __aenter__(self) -> AsyncMailServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what tests use -----------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise RuntimeError("the server is not running")
        return self._data_dir

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate (``tls=True``)."""
        if self._cert is None:
            raise RuntimeError("start the server with tls=True for TLS")
        return ssl.create_default_context(cafile=str(self._cert))

    @property
    def _storage(self) -> Any:
        if self._worker is None:
            raise RuntimeError("the server is not running")
        return self._worker.storage

    async def add_user(self, address: str, password: str, *, quota_bytes: int = 0) -> None:
        """Create a user (and its domain); an existing user gets the new password."""
        digest = await asyncio.to_thread(hash_password, password)
        try:
            await self._storage.add_user(address, digest, quota_bytes=quota_bytes,
                                         create_domain=True)
        except AlreadyExists:
            await self._storage.set_password(address, digest)

    async def deliver(self, address: str, message: bytes | str | Message, *,
                      mailbox: str = "INBOX", sender: str | None = None) -> int:
        """Deliver ``message`` to ``address`` as ``mailwing deliver`` does; its UID."""
        entry = await deliver_local(self._storage, address, _as_bytes(message),
                                    mailbox=mailbox, return_path=sender,
                                    hostname=self.settings.server.hostname)
        return int(entry.uid)

    async def messages(self, address: str, mailbox: str = "INBOX") -> list[StoredMessage]:
        """The messages in ``address``'s ``mailbox``, oldest first (``[]`` when there is no
        such user or mailbox yet)."""
        storage = self._storage
        user = await storage.get_user(address)
        box = None if user is None else await storage.get_mailbox(user.id, mailbox)
        if box is None:
            return []
        out = []
        for entry in await storage.list_mail(box.id):
            raw = await storage.read_content(entry.content.sha256)
            out.append(StoredMessage(entry.uid, entry.flags, entry.internal_date, raw))
        return out

    async def wait_for_messages(self, address: str, count: int = 1, *, mailbox: str = "INBOX",
                                timeout: float = 10.0) -> list[StoredMessage]:
        """Wait until ``address``'s ``mailbox`` holds at least ``count`` messages; them.
        Raises TimeoutError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = await self.messages(address, mailbox)
            if len(found) >= count:
                return found
            if loop.time() >= deadline:
                raise TimeoutError(f"{address} has {len(found)} message(s) in {mailbox}, "
                                   f"not {count}, after {timeout} s")
            await asyncio.sleep(0.02)

    async def captured(self) -> list[StoredMessage]:
        """Capture mode: every message captured so far (the catch-all INBOX)."""
        return await self.messages(self.settings.capture.address)


class MailServer:
    """The same server on a background thread, for synchronous code: ``with MailServer() as
    server:``. Every method blocks until done; the arguments are :class:`AsyncMailServer`'s."""

    def __init__(self, **options: Any) -> None:
        self._async = AsyncMailServer(**options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the server is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="mailwing-embedded", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop
        try:
            self._call(self._async.start())
        except BaseException:
            self._stop_loop()
            raise

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            self._call(self._async.stop())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.close()

    def __enter__(self) -> MailServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self._async.host

    @property
    def ports(self) -> dict[str, int]:
        return self._async.ports

    @property
    def settings(self) -> Settings:
        return self._async.settings

    @property
    def data_dir(self) -> Path:
        return self._async.data_dir

    def client_ssl_context(self) -> ssl.SSLContext:
        return self._async.client_ssl_context()

    def add_user(self, address: str, password: str, *, quota_bytes: int = 0) -> None:
        self._call(self._async.add_user(address, password, quota_bytes=quota_bytes))

    def deliver(self, address: str, message: bytes | str | Message, *,
                mailbox: str = "INBOX", sender: str | None = None) -> int:
        return self._call(self._async.deliver(address, message, mailbox=mailbox,
                                              sender=sender))

    def messages(self, address: str, mailbox: str = "INBOX") -> list[StoredMessage]:
        return self._call(self._async.messages(address, mailbox))

    def wait_for_messages(self, address: str, count: int = 1, *, mailbox: str = "INBOX",
                          timeout: float = 10.0) -> list[StoredMessage]:
        return self._call(self._async.wait_for_messages(address, count, mailbox=mailbox,
                                                        timeout=timeout))

    def captured(self) -> list[StoredMessage]:
        return self._call(self._async.captured())
