"""The part of a storage object that is the same for every backend.

:class:`ScriptedStorage` implements the :class:`~mailwing.storage.interface.Storage` methods by
running the shared transaction scripts of :mod:`mailwing.storage.scripts`; a backend supplies
only :meth:`ScriptedStorage._run` (how to execute a script in one transaction), its content
writer and reader, and ``close``. Input validation errors (a malformed address) surface as
``ValueError`` before any database work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from typing import TypeVar

from mailwing.model import ContentInfo, Domain, Mailbox, MailEntry, User, UserUsage
from mailwing.storage import scripts
from mailwing.storage.interface import ContentWriter, Delivery
from mailwing.storage.migrate import Migration, outdated_error
from mailwing.storage.steps import Script

__all__ = ["ScriptedStorage"]

T = TypeVar("T")


class ScriptedStorage:
    """Shared method bodies; subclasses set ``MIGRATIONS`` and ``LATEST_SCHEMA``."""

    MIGRATIONS: tuple[Migration, ...] = ()
    LATEST_SCHEMA: int = 0

    async def _run(self, script: Script[T], *, write: bool = True) -> T:
        """Run ``script`` in one transaction (a read-only one when ``write`` is false)."""
        raise NotImplementedError

    async def _read(self, script: Script[T]) -> T:
        return await self._run(script, write=False)

    async def close(self) -> None:
        raise NotImplementedError

    def new_content(self) -> ContentWriter:
        raise NotImplementedError

    def open_content(self, sha256: str, *, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        raise NotImplementedError

    # -- schema ---------------------------------------------------------------------------
    async def schema_version(self) -> int:
        return await self._read(scripts.schema_version())

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
        return await self._read(scripts.get_domain(name))

    async def list_domains(self) -> list[Domain]:
        return await self._read(scripts.list_domains())

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
        return await self._read(scripts.get_user(address))

    async def set_password(self, address: str, password_hash: str) -> None:
        await self._run(scripts.update_user(address, "password_hash", password_hash))

    async def set_enabled(self, address: str, enabled: bool) -> None:
        await self._run(scripts.update_user(address, "enabled", bool(enabled)))

    async def delete_user(self, address: str) -> None:
        await self._run(scripts.delete_user(address))

    async def list_users(self) -> list[UserUsage]:
        return await self._read(scripts.list_users())

    async def usage(self, user_id: int) -> tuple[int, int]:
        return await self._read(scripts.usage(user_id))

    # -- mailboxes ------------------------------------------------------------------------
    async def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        return await self._read(scripts.list_mailboxes(user_id))

    async def get_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        return await self._read(scripts.get_mailbox(user_id, name))

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

    # -- mail -----------------------------------------------------------------------------
    async def append(
        self, content: ContentInfo, deliveries: Sequence[Delivery]
    ) -> list[MailEntry]:
        return await self._run(scripts.append(content, list(deliveries)))

    async def list_mail(self, mailbox_id: int) -> list[MailEntry]:
        return await self._read(scripts.list_mail(mailbox_id))

    async def expunge(self, mailbox_id: int, uids: Collection[int]) -> list[int]:
        return await self._run(scripts.expunge(mailbox_id, list(uids)))
