"""The part of a storage object that is the same for every backend.

:class:`ScriptedStorage` implements the :class:`~mailwing.storage.interface.Storage` methods by
running the shared transaction scripts of :mod:`mailwing.storage.scripts`; a backend supplies
only :meth:`ScriptedStorage._run` (how to execute a script in one transaction), its content
writer and reader, and ``close``. Input validation errors (a malformed address) surface as
``ValueError`` before any database work.

:meth:`ScriptedStorage.wait_for_change` is shared too: a backend supplies ``_waiters`` (a
:class:`~mailwing.storage.notify.ChangeWaiters` that its transport wakes) and
``_start_listening`` (open that transport lazily, on the first wait).

``asyncio`` is imported by :meth:`ScriptedStorage.wait_for_change` and ``open_mailbox`` only:
the other methods never touch the event loop themselves, and the direct SQLite storage of
``mailwing deliver`` (:mod:`mailwing.storage.sqlite.direct`, issue #9) runs them without one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Sequence
from typing import Any, TypeVar

from mailwing.model import ContentInfo, Domain, Mailbox, MailEntry, User, UserUsage
from mailwing.storage import (
    scripts,
    scripts_admin,
    scripts_catchup,
    scripts_leases,
    scripts_mail,
    scripts_mailboxes,
    scripts_queue,
    scripts_quota,
    scripts_vanished,
)
from mailwing.storage.errors import NotFound
from mailwing.storage.interface import (
    AdminToken,
    Bounce,
    ContentWriter,
    Delivery,
    FlagMode,
    MailboxCounts,
    Outbound,
    QueuedMessage,
    RecipientLookup,
    RecipientOutcome,
    StorageStats,
)
from mailwing.storage.migrate import Migration, outdated_error
from mailwing.storage.notify import ChangeWaiters
from mailwing.storage.scripts_catchup import Changes
from mailwing.storage.steps import Script

__all__ = ["ScriptedStorage"]

T = TypeVar("T")


class ScriptedStorage:
    """Shared method bodies; subclasses set ``MIGRATIONS`` and ``LATEST_SCHEMA``."""

    MIGRATIONS: tuple[Migration, ...] = ()
    LATEST_SCHEMA: int = 0
    #: While waiting for a change, HIGHESTMODSEQ is re-read this often (seconds) even without
    #: a wake-up, so that a lost notification delays a change but never hides it.
    RECHECK_SECONDS: float = 3.0
    #: The ``storage.fsync_flag_changes`` policy. False (the default, like Dovecot's
    #: ``fsync_mode = optimized``): flag changes, expunges and \Recent claims commit without
    #: waiting for the disk (their scripts yield :class:`~mailwing.storage.steps.Volatile`);
    #: a crash of the process loses none of them, a power cut may lose the last few, and
    #: never a message. True: every commit waits for the disk. Set by the backend's ``open``.
    fsync_flag_changes: bool = False

    _waiters: ChangeWaiters

    #: The scripts of the hottest paths (a delivery, STORE, the catch-up of every IMAP command
    #: and its \\Recent claim). A backend may put its own in their place, with the same
    #: results: PostgreSQL does each in one statement (:mod:`mailwing.storage.postgres.scripts`).
    _append_script = staticmethod(scripts.append)
    _claim_recent_script = staticmethod(scripts_mailboxes.claim_recent)
    _set_flags_script = staticmethod(scripts_mail.set_flags)
    _mail_changes_script = staticmethod(scripts_mail.mail_changes)

    async def _start_listening(self) -> None:
        """Make sure the cross-process wake-up transport is open (called before each check)."""

    async def _run(self, script: Script[T], *, write: bool = True) -> T:
        """Run ``script`` in one transaction (a read-only one when ``write`` is false)."""
        raise NotImplementedError

    async def _read(self, script: Callable[..., Script[T]], *args: Any) -> T:
        """Run the read-only script ``script(*args)``. Given as a function and its arguments,
        not a started script, so that a backend may run it again (PostgreSQL runs a read
        outside any transaction first and starts over in one if it takes a second step)."""
        return await self._run(script(*args), write=False)

    async def close(self) -> None:
        raise NotImplementedError

    def new_content(self) -> ContentWriter:
        raise NotImplementedError

    def open_content(self, sha256: str, *, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        raise NotImplementedError

    # -- schema ---------------------------------------------------------------------------
    async def schema_version(self) -> int:
        return await self._read(scripts.schema_version)

    async def upgrade(self) -> tuple[int, int]:
        return await self._run(scripts.upgrade(self.MIGRATIONS))

    async def check_schema(self) -> None:
        current = await self.schema_version()
        if current != self.LATEST_SCHEMA:
            raise outdated_error(current, self.LATEST_SCHEMA)

    # -- domains --------------------------------------------------------------------------
    async def add_domain(self, name: str) -> Domain:
        return await self._run(scripts.add_domain(name))

    async def get_domain(self, name: str) -> Domain | None:
        return await self._read(scripts.get_domain, name)

    async def list_domains(self) -> list[Domain]:
        return await self._read(scripts.list_domains)

    async def delete_domain(self, name: str) -> None:
        await self._run(scripts.delete_domain(name))

    # -- users ----------------------------------------------------------------------------
    async def add_user(
        self, address: str, password_hash: str, *, quota_bytes: int = 0,
        create_domain: bool = False,
    ) -> tuple[User, bool]:
        return await self._run(
            scripts.add_user(address, password_hash, quota_bytes, create_domain)
        )

    async def get_user(self, address: str) -> User | None:
        return await self._read(scripts.get_user, address)

    async def lookup_recipient(self, address: str) -> RecipientLookup | None:
        return await self._read(scripts.lookup_recipient, address)

    async def set_password(self, address: str, password_hash: str) -> None:
        await self._run(scripts.update_user(address, "password_hash", password_hash))

    async def set_enabled(self, address: str, enabled: bool) -> None:
        await self._run(scripts.update_user(address, "enabled", bool(enabled)))

    async def delete_user(self, address: str) -> None:
        await self._run(scripts.delete_user(address))

    async def list_users(self) -> list[UserUsage]:
        return await self._read(scripts.list_users)

    async def usage(self, user_id: int) -> tuple[int, int]:
        return await self._read(scripts.usage, user_id)

    async def set_quota(self, address: str, limit_bytes: int | None) -> None:
        await self._run(scripts_quota.set_quota(address, limit_bytes))

    # -- mailboxes ------------------------------------------------------------------------
    async def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        return await self._read(scripts.list_mailboxes, user_id)

    async def get_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        return await self._read(scripts.get_mailbox, user_id, name)

    async def create_mailbox(
        self, user_id: int, name: str, special_use: str | None = None
    ) -> Mailbox:
        return await self._run(scripts.create_mailbox(user_id, name, special_use))

    # -- contents -------------------------------------------------------------------------
    async def store_content(self, data: bytes) -> ContentInfo:
        writer = self.new_content()
        try:
            await writer.write(data)
            return await writer.finish()
        except BaseException:
            await writer.abort()
            raise

    async def read_content(self, sha256: str) -> bytes:
        return b"".join([chunk async for chunk in self.open_content(sha256)])

    async def read_contents(self, contents: Sequence[ContentInfo]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for content in contents:
            if content.sha256 not in found:
                with contextlib.suppress(NotFound):
                    found[content.sha256] = await self.read_content(content.sha256)
        return found

    # -- mail -----------------------------------------------------------------------------
    async def append(
        self, content: ContentInfo, deliveries: Sequence[Delivery],
        *, outbound: Outbound | None = None, enforce_quota: bool = False,
    ) -> list[MailEntry]:
        if outbound is None:
            return await self._run(self._append_script(content, list(deliveries), enforce_quota))
        return await self._run(
            scripts_queue.append_and_enqueue(content, list(deliveries), outbound))

    async def append_many(
        self, items: Sequence[tuple[ContentInfo, Delivery]], *, enforce_quota: bool = False,
    ) -> list[MailEntry]:
        return await self._run(scripts.append_many(list(items), enforce_quota))

    async def list_mail(self, mailbox_id: int) -> list[MailEntry]:
        return await self._read(scripts.list_mail, mailbox_id)

    async def expunge(self, mailbox_id: int, uids: Collection[int]) -> list[int]:
        return await self._run(
            scripts.expunge(mailbox_id, list(uids), volatile=not self.fsync_flag_changes))

    async def mailbox_digests(self, mailbox_id: int) -> list[tuple[str, str | None, int]]:
        return await self._read(scripts_mail.mailbox_digests, mailbox_id)

    # -- IMAP support ---------------------------------------------------------------------
    async def delete_mailbox(self, user_id: int, name: str) -> None:
        await self._run(scripts_mailboxes.delete_mailbox(user_id, name))

    async def rename_mailbox(self, user_id: int, old: str, new: str) -> Mailbox:
        return await self._run(scripts_mailboxes.rename_mailbox(user_id, old, new))

    async def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        await self._run(scripts_mailboxes.set_subscribed(user_id, name, subscribed))

    async def list_subscriptions(self, user_id: int) -> list[str]:
        return await self._read(scripts_mailboxes.list_subscriptions, user_id)

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        return await self._read(scripts_mailboxes.get_mailbox_by_id, mailbox_id)

    async def mailbox_counts(self, mailbox_id: int) -> MailboxCounts:
        return await self._read(scripts_mailboxes.mailbox_counts, mailbox_id)

    async def claim_recent(self, mailbox_id: int) -> int:
        # Nothing new since the last claim (every SELECT of a mailbox without new mail): a
        # read answers it, without a write transaction and its fsync.
        floor = await self._read(scripts_mailboxes.recent_claimed, mailbox_id)
        if floor is not None:
            return floor
        return await self._run(self._claim_recent_script(
            mailbox_id, volatile=not self.fsync_flag_changes))

    async def set_flags(
        self, mailbox_id: int, uids: Collection[int], flags: Collection[str], mode: FlagMode,
        *, unchanged_since: int | None = None, expect_noop: bool = False,
    ) -> tuple[list[MailEntry], list[int]]:
        if expect_noop:
            modified = await self._read(scripts_mail.flags_unchanged,
                                        mailbox_id, uids, flags, mode, unchanged_since)
            if modified is not None:
                return [], modified
        return await self._run(
            self._set_flags_script(mailbox_id, uids, flags, mode, unchanged_since,
                                   volatile=not self.fsync_flag_changes)
        )

    async def set_flags_with_changes(
        self, mailbox_id: int, uids: Collection[int], flags: Collection[str], mode: FlagMode,
        *, since_modseq: int, claim_from: int | None = None,
        unchanged_since: int | None = None, expect_noop: bool = False,
    ) -> tuple[tuple[list[MailEntry], list[int]], Changes, int | None]:
        """One transaction (one trip to the database thread or server) for the STORE, its
        catch-up and, when that brings new mail, the \\Recent claim: each was a trip of its
        own."""
        if expect_noop:
            found = await self._read(scripts_catchup.unchanged_with_changes,
                                     self._mail_changes_script, mailbox_id, uids, flags,
                                     mode, unchanged_since, since_modseq, claim_from)
            if found is not None:
                modified, (changes, claim, floor) = found
                if claim and floor is None:  # the claim raises the floor: a write
                    floor = await self._run(self._claim_recent_script(
                        mailbox_id, volatile=not self.fsync_flag_changes))
                return ([], modified), changes, floor
        return await self._run(scripts_catchup.with_changes(
            self._set_flags_script(mailbox_id, uids, flags, mode, unchanged_since,
                                   volatile=not self.fsync_flag_changes),
            self._mail_changes_script, self._claim_recent_script,
            mailbox_id, since_modseq, claim_from))

    async def append_many_with_changes(
        self, items: Sequence[tuple[ContentInfo, Delivery]], *, mailbox_id: int,
        since_modseq: int, claim_from: int | None = None, enforce_quota: bool = False,
    ) -> tuple[list[MailEntry], Changes, int | None]:
        return await self._run(scripts_catchup.with_changes(
            scripts.append_many(list(items), enforce_quota),
            self._mail_changes_script, self._claim_recent_script,
            mailbox_id, since_modseq, claim_from))

    async def expunge_with_changes(
        self, mailbox_id: int, deleted: Collection[int], *, highest_known: int,
        since_modseq: int, claim_from: int | None = None,
    ) -> tuple[list[int], Changes, int | None]:
        """One transaction for an IMAP EXPUNGE's catch-up, the expunge and the \\Recent
        claim: each was a trip of its own (:func:`.scripts_catchup.expunge_with_changes`)."""
        return await self._run(scripts_catchup.expunge_with_changes(
            scripts.expunge, self._mail_changes_script, self._claim_recent_script,
            mailbox_id, frozenset(deleted), highest_known, since_modseq, claim_from,
            not self.fsync_flag_changes))

    async def catch_up(self, mailbox_id: int, since_modseq: int, *,
                       claim_from: int | None = None) -> tuple[Changes, int | None]:
        """:meth:`mail_changes`, then :meth:`claim_recent` if needed: two trips. SQLite
        reads both in one (:class:`~mailwing.storage.sqlite.common.SqliteBase`)."""
        changes = await self.mail_changes(mailbox_id, since_modseq)
        if not scripts_catchup.brings_new(changes, claim_from):
            return changes, None
        return changes, await self.claim_recent(mailbox_id)

    async def copy_mail(
        self, src_mailbox_id: int, uids: Collection[int], dst_mailbox_id: int,
        *, move: bool = False, enforce_quota: bool = False,
    ) -> list[tuple[int, int]]:
        return await self._run(
            scripts_mail.copy_mail(src_mailbox_id, uids, dst_mailbox_id, move, enforce_quota)
        )

    async def mail_changes(
        self, mailbox_id: int, since_modseq: int
    ) -> tuple[int, list[MailEntry], list[int]]:
        return await self._read(self._mail_changes_script, mailbox_id, since_modseq)

    async def open_mailbox(
        self, mailbox_id: int, since_modseq: int, *, claim: bool,
        named: tuple[int, str, int] | None = None,
    ) -> tuple[Mailbox | None, Changes, int | None]:
        """The name check (the lookup by name the caller skipped), the claim, then both
        reads queued at once: one wait instead of two (SQLite runs them in one round of its
        database thread, in one read transaction)."""
        import asyncio  # lazily: see the module docstring

        if named is not None:
            user_id, name, uidvalidity = named
            box = await self.get_mailbox(user_id, name)
            if box is None or (box.id, box.uidvalidity) != (mailbox_id, uidvalidity):
                raise NotFound(f"mailbox {mailbox_id} is no longer {name!r}")
        floor = await self.claim_recent(mailbox_id) if claim else None
        changes, found = await asyncio.gather(self.mail_changes(mailbox_id, since_modseq),
                                              self.get_mailbox_by_id(mailbox_id))
        return found, changes, floor

    async def vanished_since(self, mailbox_id: int, since_modseq: int) -> list[int] | None:
        return await self._read(scripts_vanished.vanished_since, mailbox_id, since_modseq)

    async def prune_expunged(self, mailbox_id: int, keep: int) -> int:
        return await self._run(scripts_vanished.prune_expunged(mailbox_id, keep))

    async def get_content_cache(self, sha256: str) -> dict[str, bytes]:
        return await self._read(scripts_mail.get_content_cache, sha256)

    async def set_content_cache(self, sha256: str, values: dict[str, bytes]) -> None:
        await self._run(scripts_mail.set_content_cache(sha256, dict(values)))

    # -- outbound queue -------------------------------------------------------------------
    async def enqueue(self, content: ContentInfo, outbound: Outbound) -> None:
        await self._run(scripts_queue.enqueue(content, outbound))

    async def claim_queued(
        self, worker: str, now: float, lease_until: float, limit: int
    ) -> list[QueuedMessage]:
        return await self._run(scripts_queue.claim_queued(worker, now, lease_until, limit))

    async def renew_lease(self, queue_id: str, worker: str, lease_until: float) -> bool:
        return await self._run(scripts_queue.renew_lease(queue_id, worker, lease_until))

    async def settle_queued(
        self, queue_id: str, worker: str, outcomes: Sequence[RecipientOutcome],
        *, next_attempt: float, bounce: Bounce | None = None,
    ) -> bool:
        return await self._run(scripts_queue.settle_queued(
            queue_id, worker, list(outcomes), next_attempt, bounce))

    async def list_queued(self) -> list[QueuedMessage]:
        return await self._read(scripts_queue.list_queued)

    async def get_queued(self, queue_id: str) -> QueuedMessage | None:
        return await self._read(scripts_queue.get_queued, queue_id)

    async def retry_queued(self, queue_id: str, now: float) -> bool:
        return await self._run(scripts_queue.retry_queued(queue_id, now))

    async def delete_queued(self, queue_id: str) -> bool:
        return await self._run(scripts_queue.delete_queued(queue_id))

    async def take_lease(self, name: str, owner: str, now: float, until: float
                         ) -> tuple[str, float]:
        return await self._run(scripts_leases.take_lease(name, owner, now, until))

    async def release_lease(self, name: str, owner: str) -> None:
        await self._run(scripts_leases.release_lease(name, owner))

    # -- admin API tokens -------------------------------------------------------------------
    async def add_admin_token(self, name: str, token_hash: str, now: float) -> AdminToken:
        return await self._run(scripts_admin.add_admin_token(name, token_hash, now))

    async def list_admin_tokens(self) -> list[AdminToken]:
        return await self._read(scripts_admin.list_admin_tokens)

    async def find_admin_token(self, token_hash: str) -> AdminToken | None:
        return await self._read(scripts_admin.find_admin_token, token_hash)

    async def get_admin_token(self, token_id: int) -> AdminToken | None:
        return await self._read(scripts_admin.get_admin_token, token_id)

    async def touch_admin_token(self, token_id: int, now: float) -> None:
        await self._run(scripts_admin.touch_admin_token(token_id, now))

    async def delete_admin_token(self, name: str) -> bool:
        return await self._run(scripts_admin.delete_admin_token(name))

    #: The backend's name and its query for the database's size in octets.
    BACKEND = ""
    SIZE_SQL = "SELECT 0"

    async def storage_stats(self) -> StorageStats:
        contents, content_bytes = await self._read(scripts_admin.content_bytes)
        size = await self._read(scripts_admin.database_size, self.SIZE_SQL)
        return StorageStats(self.BACKEND, size, contents, content_bytes)

    async def change_mark(self, mailbox_id: int, since: Hashable | None = None,
                          *, settled: bool = True) -> Hashable | None:
        """None: by default a backend cannot tell cheaply (SQLite's catch-up query is an
        in-process read anyway); PostgreSQL answers from its LISTEN connection."""
        return None

    async def wait_for_change(self, mailbox_id: int, since_modseq: int, timeout: float) -> bool:
        """True once HIGHESTMODSEQ > ``since_modseq`` (or the mailbox is gone); False after
        ``timeout``. Registers before the first check, and clears its event before every
        check, so a change committed at any moment is either seen by the check or wakes it."""
        import asyncio  # lazily: see the module docstring

        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        with self._waiters.watch(mailbox_id) as woken:
            while True:
                await self._start_listening()
                woken.clear()
                box = await self.get_mailbox_by_id(mailbox_id)
                if box is None or box.highestmodseq > since_modseq:
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                try:
                    async with asyncio.timeout(min(remaining, self.RECHECK_SECONDS)):
                        await woken.wait()
                except TimeoutError:
                    pass
