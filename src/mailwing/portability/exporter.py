"""Exporting a mailwing user's mailboxes to a Maildir++ tree or to mbox files.

The exact stored bytes are written (so SHA-256 per message survives a round trip), with the
internal date (as the file time in Maildir, in the ``From_`` line in mbox) and, in Maildir,
the flags, keywords (``dovecot-keywords``) and UIDs with UIDVALIDITY (``dovecot-uidlist``), so
that Dovecot pointed at the export keeps the UIDs clients know. mbox has no place for flags
without rewriting the message, so an mbox export keeps bytes and dates only.

The target folder must be empty or absent: an export never mixes with older files.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from mailwing.portability.maildir import MaildirWriter
from mailwing.portability.mbox import MboxWriter
from mailwing.portability.progress import Progress
from mailwing.portability.sources import Problem
from mailwing.storage.errors import NotFound
from mailwing.storage.interface import Storage

__all__ = ["ExportFormat", "ExportSummary", "export_mail"]

ExportFormat = Literal["maildir", "mbox"]


class _Writer(Protocol):
    def folder_path(self, name: str) -> Path: ...
    def open_folder(self, name: str, uidvalidity: int, uidnext: int) -> None: ...
    def add(self, folder: str, uid: int, data: bytes, flags: frozenset[str],
            internal_date: datetime) -> str | None: ...
    def finish(self) -> None: ...


@dataclass(slots=True)
class ExportSummary:
    folders: list[str] = field(default_factory=list)
    messages: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"folders: {len(self.folders)}",
               f"messages exported: {self.messages} ({self.bytes} bytes)",
               f"problems: {len(self.problems)}"]
        out += [f"  {p.item}: {p.reason}" for p in self.problems]
        return out


async def export_mail(store: Storage, address: str, target: Path, fmt: ExportFormat,
                      progress: Progress | None = None) -> ExportSummary:
    """Write every mailbox of ``address`` under ``target`` (NotFound if no such user;
    FileExistsError if ``target`` holds anything)."""
    user = await store.get_user(address)
    if user is None:
        raise NotFound(f"no user {address}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(17, "the export target is not empty", str(target))
    target.mkdir(parents=True, exist_ok=True)
    writer: _Writer = MaildirWriter(target) if fmt == "maildir" else MboxWriter(target)
    progress = progress or Progress(quiet=True)
    summary = ExportSummary()
    boxes = sorted(await store.list_mailboxes(user.id), key=lambda b: (b.name != "INBOX", b.name))
    listings = [(box, await store.list_mail(box.id)) for box in boxes]
    progress.start(sum(len(entries) for _, entries in listings))
    try:
        for box, entries in listings:
            try:
                path = writer.folder_path(box.name)
            except ValueError as exc:
                summary.problems.append(Problem(box.name, f"folder skipped: {exc}"))
                progress.note(f"skipped folder {box.name}: {exc}")
                progress.advance(len(entries))
                continue
            await asyncio.to_thread(writer.open_folder, box.name, box.uidvalidity, box.uidnext)
            summary.folders.append(box.name)
            for entry in entries:
                try:
                    data = await store.read_content(entry.content.sha256)
                except NotFound:  # expunged while we were exporting
                    progress.advance(1)
                    continue
                note = await asyncio.to_thread(writer.add, box.name, entry.uid, data,
                                               entry.flags, entry.internal_date)
                if note:
                    summary.problems.append(Problem(f"{box.name} UID {entry.uid}", note))
                summary.messages += 1
                summary.bytes += len(data)
                progress.advance(1, len(data))
            progress.note(f"{box.name} -> {path}: {len(entries)} messages")
    finally:
        await asyncio.to_thread(writer.finish)
        progress.finish()
    return summary
