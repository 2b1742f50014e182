"""Domains and users, as every administrative front (CLI, HTTP API, console) manages them.

The rules live here once: names are normalised and checked, passwords hashed (Argon2id, off
the event loop), a domain is refused deletion while it has users unless forced, and storage
errors become :class:`AccountError` with a ``kind`` that each front maps to its own form
(an exit status, an HTTP status). Fronts never call the storage methods for these directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwing.model import Domain, User, UserUsage
from mailwing.storage.errors import AlreadyExists, InUse, NotFound
from mailwing.storage.interface import Storage

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "AccountError",
    "UserPage",
    "add_domain",
    "add_user",
    "delete_domain",
    "delete_user",
    "domain_name",
    "get_user",
    "list_domains",
    "list_users",
    "normalize_address",
    "set_enabled",
    "set_password",
]

MAX_PASSWORD_LENGTH = 1024


class AccountError(Exception):
    """``kind`` is one of ``invalid``, ``not_found``, ``exists``, ``in_use``."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class UserPage:
    users: list[UserUsage]
    total: int
    offset: int
    limit: int


def normalize_address(address: str) -> str:
    """Lower-case ``local@domain``; AccountError(invalid) unless it has that shape."""
    address = address.strip().lower()
    local, at, domain = address.rpartition("@")
    if (not at or not local or not domain or "@" in local or len(address) > 254
            or any(c.isspace() or ord(c) < 32 for c in address)):
        raise AccountError(f"{address!r} is not an address like user@example.org", "invalid")
    return address


def domain_name(raw: str) -> str:
    name = raw.strip().lower().rstrip(".")
    if (not name or "@" in name or "/" in name or len(name) > 253
            or any(c.isspace() or ord(c) < 32 for c in name)):
        raise AccountError(f"{raw!r} is not a domain name", "invalid")
    return name


def _check_password(password: str) -> None:
    if not password:
        raise AccountError("the password is empty", "invalid")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"the password is longer than {MAX_PASSWORD_LENGTH} characters",
                           "invalid")


async def _hash(password: str) -> str:
    _check_password(password)
    # Like argon2, asyncio only when hashing: ``mailwing deliver`` imports this module
    # (through the command table) and runs without an event loop.
    import asyncio

    from mailwing.services.passwords import hash_password

    return await asyncio.to_thread(hash_password, password)


# -- domains --------------------------------------------------------------------------------

async def list_domains(store: Storage) -> list[Domain]:
    return await store.list_domains()


async def add_domain(store: Storage, raw: str) -> Domain:
    name = domain_name(raw)
    try:
        return await store.add_domain(name)
    except AlreadyExists as exc:
        raise AccountError(f"domain {name} already exists", "exists") from exc


async def delete_domain(store: Storage, raw: str, *, force: bool = False) -> int:
    """Delete a domain; with ``force`` its users (and their mail) first. Returns how many
    users were deleted."""
    name = domain_name(raw)
    removed = 0
    if force:
        for u in await store.list_users():
            if u.address.rpartition("@")[2] == name:
                try:
                    await store.delete_user(u.address)
                    removed += 1
                except NotFound:
                    pass
    try:
        await store.delete_domain(name)
    except NotFound as exc:
        raise AccountError(f"domain {name} does not exist", "not_found") from exc
    except InUse as exc:
        raise AccountError(f"domain {name} still has users; delete them first",
                           "in_use") from exc
    return removed


# -- users ----------------------------------------------------------------------------------

async def list_users(store: Storage, *, offset: int = 0, limit: int = 0,
                     domain: str | None = None) -> UserPage:
    """Users with their usage, ordered by address; ``limit`` 0 means all."""
    users = await store.list_users()
    if domain:
        name = domain_name(domain)
        users = [u for u in users if u.address.rpartition("@")[2] == name]
    offset = max(0, offset)
    page = users[offset:offset + limit] if limit > 0 else users[offset:]
    return UserPage(page, len(users), offset, limit)


async def get_user(store: Storage, raw: str) -> User:
    address = normalize_address(raw)
    user = await store.get_user(address)
    if user is None:
        raise AccountError(f"user {address} does not exist", "not_found")
    return user


async def add_user(store: Storage, raw: str, password: str, *, quota: int = 0,
                   create_domain: bool = True) -> tuple[User, bool]:
    """Create an account; (the user, whether its domain was created too)."""
    address = normalize_address(raw)
    if quota < 0:
        raise AccountError("the quota must not be negative", "invalid")
    password_hash = await _hash(password)
    try:
        return await store.add_user(address, password_hash, quota_bytes=quota,
                                    create_domain=create_domain)
    except AlreadyExists as exc:
        raise AccountError(f"user {address} already exists", "exists") from exc
    except NotFound as exc:
        raise AccountError(f"domain of {address} does not exist", "not_found") from exc


async def set_password(store: Storage, raw: str, password: str) -> None:
    address = normalize_address(raw)
    password_hash = await _hash(password)
    try:
        await store.set_password(address, password_hash)
    except NotFound as exc:
        raise AccountError(f"user {address} does not exist", "not_found") from exc


async def set_enabled(store: Storage, raw: str, enabled: bool) -> None:
    address = normalize_address(raw)
    try:
        await store.set_enabled(address, enabled)
    except NotFound as exc:
        raise AccountError(f"user {address} does not exist", "not_found") from exc


async def delete_user(store: Storage, raw: str) -> None:
    address = normalize_address(raw)
    try:
        await store.delete_user(address)
    except NotFound as exc:
        raise AccountError(f"user {address} does not exist", "not_found") from exc
