"""Importing a source (Maildir, mbox, remote IMAP) into a mailwing user's mailboxes.

* **Folders.** A source folder whose special use is known (from the remote server's LIST, or
  guessed from a name such as ``Sent Items``) goes into the user's own mailbox of that use;
  any other folder into the mailbox of the same name, created if needed.
* **Nothing twice.** Before a folder is imported, the target mailbox's digests are read in one
  query (:meth:`Storage.mailbox_digests`). A message whose SHA-256 is already there is
  skipped; a remote message whose Message-ID and size match one already there is skipped
  without being downloaded. So a second run imports nothing, and an interrupted run
  continues where it stopped: a message's content is stored and fsynced before the
  transaction that links it commits, so there is never half a message.
* **Order and speed.** Messages are appended in source order (their UIDs keep the source's
  order) while the next few are already read, hashed and stored, so file reads and fsyncs
  overlap with the appends; the messages ready at that moment share one append transaction
  (:meth:`Storage.append_many`, at most ``BATCH``), so a commit is not paid per message.
* **Bad items** become lines of the summary (what and why) and the import goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter, deque
from dataclasses import dataclass, field

from mailwing.model import ContentInfo, Mailbox
from mailwing.portability.progress import Progress
from mailwing.portability.sources import BadMessage, FolderScan, MessageRef, Problem, Source
from mailwing.storage.errors import AlreadyExists, NotFound
from mailwing.storage.interface import Delivery, Storage

__all__ = ["ImportSummary", "import_mail", "normalize_message_id"]

DUPLICATE = "already in the mailbox"
WINDOW = 32  # messages read and stored ahead of the appends
BATCH = 64  # at most this many messages per append transaction


def normalize_message_id(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    return value.strip("<>").strip().lower() or None


@dataclass(slots=True)
class ImportSummary:
    """What an import did, for the closing lines and for tests."""

    folders: list[str] = field(default_factory=list)  # target mailboxes written to
    created: list[str] = field(default_factory=list)  # of which created by this import
    imported: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count
    problems: list[Problem] = field(default_factory=list)  # every skipped item except dups

    def lines(self) -> list[str]:
        out = [f"folders: {len(self.folders)} ({len(self.created)} created)",
               f"messages imported: {self.imported} ({self.bytes} bytes)",
               f"skipped: {sum(self.skipped.values())}"]
        out += [f"  {count} {reason}" for reason, count in self.skipped.most_common()]
        return out


@dataclass(slots=True)
class _Prepared:
    ref: MessageRef
    size: int = 0
    content: ContentInfo | None = None
    reason: str | None = None  # why it is skipped


class _FolderImport:
    def __init__(self, store: Storage, box: Mailbox, summary: ImportSummary,
                 progress: Progress) -> None:
        self.store = store
        self.box = box
        self.summary = summary
        self.progress = progress
        self.digests: set[str] = set()
        self.ids: set[tuple[str, int]] = set()

    async def run(self, source: Source, folder: FolderScan) -> int:
        for sha, mid, size in await self.store.mailbox_digests(self.box.id):
            self.digests.add(sha)
            norm = normalize_message_id(mid)
            if norm:
                self.ids.add((norm, size))
        wanted = []
        for ref in folder.messages:  # known by Message-ID and size: no need to download
            norm = normalize_message_id(ref.message_id)
            if norm and ref.crlf_size is not None and (norm, ref.crlf_size) in self.ids:
                self._skip(_Prepared(ref, reason=DUPLICATE))
            else:
                wanted.append(ref)
        plan = getattr(source, "will_load", None)
        if plan is not None:
            plan(wanted)
        refs = iter(wanted)
        pending: deque[asyncio.Task[_Prepared]] = deque()
        batch: list[_Prepared] = []
        count = 0
        try:
            while True:
                while len(pending) < WINDOW and (nxt := next(refs, None)) is not None:
                    pending.append(asyncio.create_task(self._prepare(source, nxt)))
                if not pending:
                    break
                if batch and (len(batch) >= BATCH or not pending[0].done()):
                    count += await self._append(batch)  # overlaps with the reads ahead
                    batch = []
                item = await pending.popleft()
                if item.content is None:
                    self._skip(item)
                else:
                    batch.append(item)
            if batch:
                count += await self._append(batch)
        finally:
            for task in pending:
                task.cancel()
        return count

    async def _prepare(self, source: Source, ref: MessageRef) -> _Prepared:
        try:
            data = await source.load(ref)
        except BadMessage as exc:
            return _Prepared(ref, reason=str(exc))
        sha = hashlib.sha256(data).hexdigest()
        if sha in self.digests:
            return _Prepared(ref, len(data), reason=DUPLICATE)
        self.digests.add(sha)  # claimed before any await: a later copy is a duplicate
        return _Prepared(ref, len(data), content=await self.store.store_content(data))

    def _skip(self, item: _Prepared) -> None:
        reason = item.reason or "unknown"
        self.summary.skipped[reason] += 1
        if reason != DUPLICATE:
            self.summary.problems.append(Problem(item.ref.label, reason))
            self.progress.note(f"skipped {item.ref.label}: {reason}")
        self.progress.advance(1, 0)

    async def _append(self, batch: list[_Prepared]) -> int:
        """One transaction for the batch, in source order (UIDs follow it)."""
        items = [(item.content, Delivery(self.box.id, item.ref.flags, item.ref.internal_date))
                 for item in batch if item.content is not None]
        try:
            await self.store.append_many(items)
        except NotFound as exc:  # the mailbox was deleted meanwhile, or a content
            for item in batch:
                item.reason, item.content = f"not stored: {exc}", None
                self._skip(item)
            return 0
        for item in batch:
            assert item.content is not None
            norm = normalize_message_id(item.content.fields.message_id)
            if norm:
                self.ids.add((norm, item.content.crlf_size))
            self.summary.imported += 1
            self.summary.bytes += item.size
            self.progress.advance(1, item.size)
        return len(batch)


async def _target(store: Storage, user_id: int, folder: FolderScan,
                  summary: ImportSummary) -> Mailbox:
    boxes = await store.list_mailboxes(user_id)
    if folder.special_use:
        for box in boxes:
            if box.special_use == folder.special_use:
                return box
    for box in boxes:
        if box.name == folder.name:
            return box
    taken = {b.special_use for b in boxes}
    use = folder.special_use if folder.special_use not in taken else None
    try:
        made = await store.create_mailbox(user_id, folder.name, use)
    except AlreadyExists:
        again = await store.get_mailbox(user_id, folder.name)
        if again is None:
            raise
        return again
    summary.created.append(made.name)
    return made


async def import_mail(store: Storage, address: str, source: Source,
                      progress: Progress | None = None) -> ImportSummary:
    """Import every folder of ``source`` into the user ``address`` (NotFound if unknown)."""
    user = await store.get_user(address)
    if user is None:
        raise NotFound(f"no user {address}")
    progress = progress or Progress(quiet=True)
    summary = ImportSummary()
    folders, problems = await source.scan()
    for problem in problems:
        summary.problems.append(problem)
        summary.skipped[problem.reason] += 1
        progress.note(f"skipped {problem.item}: {problem.reason}")
    progress.start(sum(len(f.messages) for f in folders))
    for folder in folders:
        try:
            box = await _target(store, user.id, folder, summary)
        except ValueError as exc:
            reason = f"folder skipped: {exc}"
            summary.problems.append(Problem(folder.label or folder.name, reason))
            summary.skipped[reason] += len(folder.messages) or 1
            progress.advance(len(folder.messages))
            continue
        if box.name not in summary.folders:
            summary.folders.append(box.name)
        added = await _FolderImport(store, box, summary, progress).run(source, folder)
        progress.note(f"{folder.label or folder.name} -> {box.name}: {added} of "
                      f"{len(folder.messages)} imported")
    progress.finish()
    return summary
