"""Bearer tokens for the admin HTTP API and console: made, listed, revoked, checked.

One service for ``mailwing admin token ...`` and the HTTP listener, so the token rules live
in one place:

* a token is ``mwa_`` + 43 characters of ``secrets.token_urlsafe(32)`` (256 random bits); it
  is printed once and only its SHA-256 digest is stored. Argon2 would protect low-entropy
  passwords against offline guessing; for a 256-bit random secret a fast hash is as safe and
  keeps every API request cheap;
* lookups compare digests by an indexed equality in the database, so no timing of a string
  comparison on the secret itself is observable;
* ``last_used_at`` is written at most once a minute per token per process, so a busy API
  client does not turn every request into a write transaction.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable

from mailwing.storage.errors import AlreadyExists
from mailwing.storage.interface import AdminToken, Storage

__all__ = ["TOKEN_PREFIX", "TokenError", "TokenService", "hash_token", "valid_token_name"]

TOKEN_PREFIX = "mwa_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOUCH_EVERY = 60.0
_MAX_TOKEN_LENGTH = 200


class TokenError(ValueError):
    """A token operation was refused; the message says why, in one line."""


def hash_token(token: str) -> str:
    """The stored form of a token (hex SHA-256)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def valid_token_name(name: str) -> bool:
    return bool(_NAME.match(name))


class TokenService:
    """Token operations over one storage; one instance per process (it remembers touches)."""

    def __init__(self, storage: Storage, *, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self._clock = clock
        self._touched: dict[int, float] = {}

    async def create(self, name: str) -> tuple[str, AdminToken]:
        """A new token called ``name``: (the secret, to show once; its stored record)."""
        if not valid_token_name(name):
            raise TokenError(f"{name!r} is not a token name (letters, digits, '.', '_', '-';"
                             " at most 64)")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            record = await self.storage.add_admin_token(name, hash_token(secret), self._clock())
        except AlreadyExists as exc:
            raise TokenError(f"a token named {name} exists already") from exc
        return secret, record

    async def list(self) -> list[AdminToken]:
        return await self.storage.list_admin_tokens()

    async def revoke(self, name: str) -> None:
        if not await self.storage.delete_admin_token(name):
            raise TokenError(f"no token named {name}")

    async def verify(self, token: str) -> AdminToken | None:
        """The token's record, or None when it is unknown, revoked or malformed."""
        token = token.strip()
        if not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_TOKEN_LENGTH:
            return None
        record = await self.storage.find_admin_token(hash_token(token))
        if record is not None:
            await self._touch(record.id)
        return record

    async def by_id(self, token_id: int) -> AdminToken | None:
        """The token a console session was opened with, if it still exists."""
        record = await self.storage.get_admin_token(token_id)
        if record is not None:
            await self._touch(record.id)
        return record

    async def _touch(self, token_id: int) -> None:
        now = self._clock()
        if now - self._touched.get(token_id, 0.0) < _TOUCH_EVERY:
            return
        if len(self._touched) > 10_000:
            self._touched.clear()
        self._touched[token_id] = now
        await self.storage.touch_admin_token(token_id, now)
