"""A remote IMAP account as an import source (``imap://user@host:port``,
``imaps://user@host:port``), like imapsync: every selectable folder, flags, keywords and
internal dates.

The client is the standard library's :mod:`imaplib`, driven from a worker thread with one
command at a time (a lock serialises the importer's read-ahead). Folders are opened with
EXAMINE, so the remote account is never changed (no ``\\Seen`` set by reading). The scan
fetches UID, FLAGS, INTERNALDATE, RFC822.SIZE and the Message-ID field for every message in
one command per folder; bodies are fetched later, only for messages not already imported.

``imap://`` talks plain text (the password crosses the network in clear: loopback or a
trusted network only); ``imaps://`` uses TLS with certificate and host name checks unless the
caller passes an unverified context on purpose.
"""

from __future__ import annotations

import asyncio
import imaplib
import re
import ssl
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from mailwing.portability.sources import (
    SPECIAL_USES,
    BadMessage,
    FolderScan,
    MessageRef,
    Problem,
    check_message,
    clean_keywords,
    guess_special_use,
    mailbox_name,
)
from mailwing.proto.imap import utf7_decode
from mailwing.proto.imap.utf7 import Utf7Error
from mailwing.services.imap_mailboxes import InvalidName

__all__ = ["ImapSource", "ImapSourceError", "parse_imap_url"]

_LIST = re.compile(rb'\((?P<attrs>[^)]*)\) (?P<delim>NIL|"(?:[^"\\]|\\.)*") ?(?P<name>.*)$')
_UID = re.compile(rb"\bUID (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_DATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_MSGID = re.compile(rb"(?im)^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)")
_MAX_MESSAGE = 256 * 1024 * 1024
_BATCH_COUNT = 100  # bodies fetched per UID FETCH ...
_BATCH_BYTES = 16 * 1024 * 1024  # ... up to about this many bytes


class ImapSourceError(Exception):
    """The remote account cannot be read (login refused, a command failed)."""


def parse_imap_url(url: str) -> tuple[bool, str, int, str]:
    """(tls, host, port, user) from ``imap[s]://user@host[:port]``; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise ValueError("an IMAP source looks like imap://user@host:port or imaps://...")
    tls = parts.scheme == "imaps"
    return tls, parts.hostname, parts.port or (993 if tls else 143), unquote(parts.username)


def _unquote(value: bytes) -> bytes:
    if value.startswith(b'"') and value.endswith(b'"') and len(value) >= 2:
        return re.sub(rb"\\(.)", rb"\1", value[1:-1])
    return value


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _internal_date(text: bytes) -> datetime | None:
    try:
        return datetime.strptime(text.decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


class ImapSource:
    def __init__(self, url: str, password: str, *, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 60.0) -> None:
        self.tls, self.host, self.port, self.user = parse_imap_url(url)
        self._password = password
        self._ssl = ssl_context
        self._timeout = timeout
        self._client: imaplib.IMAP4 | None = None
        self._selected: str | None = None
        self._lock = asyncio.Lock()
        self._plan: dict[tuple[str, int], int] = {}  # key -> position in the plan
        self._planned: list[MessageRef] = []
        self._bodies: dict[tuple[str, int], bytes] = {}  # fetched ahead, not yet loaded

    # -- thread side -------------------------------------------------------------------
    def _connect(self) -> imaplib.IMAP4:
        if self._client is None:
            if self.tls:
                context = self._ssl or ssl.create_default_context()
                client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    self.host, self.port, ssl_context=context, timeout=self._timeout)
            else:
                client = imaplib.IMAP4(self.host, self.port, timeout=self._timeout)
            try:
                client.login(self.user, self._password)
            except imaplib.IMAP4.error as exc:
                client.shutdown()
                raise ImapSourceError(f"login refused for {self.user}: {exc}") from exc
            self._client = client
        return self._client

    def _command(self, name: str, *args: Any) -> list[Any]:
        client = self._connect()
        try:
            typ, data = getattr(client, name)(*args)
        except imaplib.IMAP4.error as exc:
            raise ImapSourceError(f"{name.upper()} failed: {exc}") from exc
        if typ != "OK":
            raise ImapSourceError(f"{name.upper()} {args[:1]} answered {typ}: {data!r}")
        return list(data)

    def _examine(self, wire: str) -> int:
        if self._selected == wire:
            return -1
        client = self._connect()
        typ, data = client.select(_quote(wire), readonly=True)
        if typ != "OK":
            raise ImapSourceError(f"EXAMINE {wire} answered {typ}: {data!r}")
        self._selected = wire
        return int(data[0] or 0)

    def _scan(self) -> tuple[list[FolderScan], list[Problem]]:
        problems: list[Problem] = []
        folders: list[FolderScan] = []
        for attrs, delim, wire in self._list():
            label = f"imap folder {wire}"
            if b"\\noselect" in attrs.lower() or b"\\nonexistent" in attrs.lower():
                continue
            try:
                decoded = utf7_decode(wire)
                levels = decoded.split(delim) if delim else [decoded]
                if levels[0].upper() == "INBOX":
                    levels[0] = "INBOX"
                name = mailbox_name(levels)
            except (Utf7Error, InvalidName) as exc:
                problems.append(Problem(label, f"folder skipped: {exc}"))
                continue
            uses = [a.decode() for a in attrs.split() if a.decode() in SPECIAL_USES]
            folder = FolderScan(name, uses[0] if uses else guess_special_use(name), label=label)
            try:
                folder.messages = self._folder_messages(wire)
            except ImapSourceError as exc:
                problems.append(Problem(label, f"folder skipped: {exc}"))
                continue
            folders.append(folder)
        folders.sort(key=lambda f: (f.name != "INBOX", f.name))
        return folders, problems

    def _list(self) -> list[tuple[bytes, str, str]]:
        out: list[tuple[bytes, str, str]] = []
        for item in self._command("list", '""', "*"):
            if item is None:
                continue
            literal = None
            if isinstance(item, tuple):
                item, literal = item
            m = _LIST.match(item)
            if not m:
                continue
            delim = _unquote(m.group("delim")).decode() if m.group("delim") != b"NIL" else ""
            raw = literal if literal is not None else _unquote(m.group("name").strip())
            out.append((m.group("attrs"), delim, raw.decode("ascii", "replace")))
        return out

    def _folder_messages(self, wire: str) -> list[MessageRef]:
        self._selected = None
        if self._examine(wire) == 0:
            return []
        data = self._command(
            "uid", "FETCH", "1:*",
            "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        records: list[list[bytes]] = []
        for item in data:
            if isinstance(item, tuple):
                records.append([item[0], item[1]])
            elif isinstance(item, bytes) and records:
                records[-1][0] += b" " + item
        refs = []
        for text, header in records:
            uid = _UID.search(text)
            if not uid:
                continue
            flags = _FLAGS.search(text)
            date = _DATE.search(text)
            size = _SIZE.search(text)
            mid = _MSGID.search(header or b"")
            refs.append(MessageRef(
                label=f"imap {wire} UID {int(uid.group(1))}", key=(wire, int(uid.group(1))),
                flags=clean_keywords(set(flags.group(1).decode().split())) if flags
                else frozenset(),
                internal_date=_internal_date(date.group(1)) if date else None,
                message_id=mid.group(1).decode("latin-1").strip() if mid else None,
                crlf_size=int(size.group(1)) if size else None,
            ))
        refs.sort(key=lambda r: r.key[1])
        return refs

    def will_load(self, refs: list[MessageRef]) -> None:
        """The importer's plan: the messages it will load, in order. Bodies are then fetched
        in batches (one round trip for up to ``_BATCH_COUNT`` messages) instead of one by
        one, which is what makes an import over a long network path fast."""
        self._planned = list(refs)
        self._plan = {ref.key: i for i, ref in enumerate(self._planned)}
        self._bodies.clear()

    def _batch(self, ref: MessageRef) -> list[MessageRef]:
        start = self._plan.get(ref.key)
        if start is None:
            return [ref]
        out: list[MessageRef] = []
        size = 0
        for other in self._planned[start:start + _BATCH_COUNT]:
            if other.key[0] != ref.key[0] or (out and size + (other.crlf_size or 0)
                                                > _BATCH_BYTES):
                break
            out.append(other)
            size += other.crlf_size or 0
        return out

    def _load(self, ref: MessageRef) -> bytes:
        wire = ref.key[0]
        if ref.crlf_size is not None and ref.crlf_size > _MAX_MESSAGE:
            raise BadMessage(f"larger than {_MAX_MESSAGE} bytes")
        if ref.key not in self._bodies:
            batch = [r for r in self._batch(ref)
                     if r.crlf_size is None or r.crlf_size <= _MAX_MESSAGE] or [ref]
            try:
                self._examine(wire)
                data = self._command("uid", "FETCH", ",".join(str(r.key[1]) for r in batch),
                                     "(UID BODY.PEEK[])")
            except ImapSourceError as exc:
                raise BadMessage(str(exc)) from exc
            for item in data:
                if isinstance(item, tuple):
                    got = _UID.search(item[0])
                    if got:
                        self._bodies[(wire, int(got.group(1)))] = bytes(item[1])
        body = self._bodies.pop(ref.key, None)
        if body is None:
            raise BadMessage("the message disappeared from the remote folder")
        check_message(body)
        return body

    def _logout(self) -> None:
        if self._client is not None:
            try:
                self._client.logout()
            except (imaplib.IMAP4.error, OSError):
                self._client.shutdown()
            self._client = None

    # -- async side --------------------------------------------------------------------
    async def scan(self) -> tuple[list[FolderScan], list[Problem]]:
        async with self._lock:
            return await asyncio.to_thread(self._scan)

    async def load(self, ref: MessageRef) -> bytes:
        async with self._lock:
            return await asyncio.to_thread(self._load, ref)

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._logout)
