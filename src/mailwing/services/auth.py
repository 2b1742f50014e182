"""Password authentication: Argon2id verification off the event loop, a node-wide cache of
successful checks, and failure throttling shared by every worker and node.

Why each part is there:

* Argon2id costs tens of milliseconds of CPU and 64 MiB of memory on purpose, so it runs in
  a small thread pool of its own (argon2-cffi releases the GIL): the event loop keeps serving
  other sessions, and a login burst cannot use more than ``threads * 64 MiB`` at once.
  Parameters: :mod:`mailwing.services.passwords`.
* Mail clients log in again and again (POP3 polls, one IMAP connection per folder), so a
  successful check is remembered, as Dovecot's ``auth_cache`` does, for ``auth.cache_ttl``
  (default one hour) and *in the node's shared memory* (:mod:`mailwing.shared.memory`), so
  all workers of a node share it: Argon2 work is proportional to distinct passwords checked
  per hour per node, not per worker per minute. Each use pushes the expiry forward again
  (an entry in use never expires), and every new expiry is shortened by a random 0-10 %, so
  the entries made by one login burst do not all expire in the same second (no stampede).
* The cache key is an HMAC-SHA256, under a random key that lives only in this node's memory
  (made at start-up by the parent process), of the address, the password *and the stored
  hash*. Neither passwords nor anything an attacker could test guesses against offline
  without that key is kept. The user row is read on every login (one indexed query), so a
  password change on any node (a new stored hash: old entries no longer match), a disabled
  account or a deleted one takes effect on the very next login everywhere, with no
  notification to wait for. Only successes are cached; a wrong password is always checked.
* An unknown address still costs one dummy verification, so response timing does not reveal
  which addresses exist; a disabled account is only reported as such after a correct
  password, for the same reason.
* :class:`~mailwing.shared.limits.SharedThrottle` refuses (``THROTTLED``) once too many
  recent failures came from one IP or hit one address, counted across workers and nodes,
  and delays each failure answer. Its check and the user lookup are sent together (on
  PostgreSQL two queries, one round trip of waiting); a throttled login drops the lookup's
  answer, whatever it is, and checks no password.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import hashlib
import hmac
import logging
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailwing.config import AuthSettings
from mailwing.model import User
from mailwing.services import metrics, passwords
from mailwing.shared.limits import LocalFailures, SharedThrottle
from mailwing.shared.memory import AuthCacheTable
from mailwing.storage.errors import StorageError, TemporaryStorageError
from mailwing.storage.interface import Storage

__all__ = ["AuthOutcome", "AuthResult", "Authenticator", "VerificationCache"]

log = logging.getLogger("mailwing.auth")


def _discard(lookup: asyncio.Future[User | None]) -> None:
    """Let a user lookup whose answer is not needed end on its own, its outcome (an error
    included) retrieved, so no "exception was never retrieved" is logged. Not cancelled: on
    PostgreSQL a query cancelled in flight costs its pooled connection a reset."""
    lookup.add_done_callback(_retrieve)


def _retrieve(done: asyncio.Future[User | None]) -> None:
    if not done.cancelled():
        done.exception()


class AuthOutcome(enum.Enum):
    OK = "ok"
    BAD_CREDENTIALS = "bad-credentials"  # unknown user or wrong password (never say which)
    DISABLED = "disabled"  # the account exists but is switched off
    THROTTLED = "throttled"  # too many recent failures from this IP or for this user
    TEMPFAIL = "tempfail"  # storage unavailable; try later


@dataclass(frozen=True, slots=True)
class AuthResult:
    outcome: AuthOutcome
    user: User | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK


class VerificationCache:
    """Remembers successful password checks for about ``ttl`` seconds (0 disables it),
    sliding: each hit renews the entry once half its time has passed.

    With ``table`` (the node's shared memory) every worker of the node shares the entries,
    and ``key`` must then be the node's key, made once before the workers fork."""

    def __init__(self, ttl: float, *, max_entries: int = 50_000,
                 clock: Callable[[], float] = time.monotonic,
                 table: AuthCacheTable | None = None, key: bytes | None = None) -> None:
        self.ttl = ttl
        self._key = key or secrets.token_bytes(32)
        self._entries: dict[bytes, float] = {}
        self._max_entries = max_entries
        self._clock = clock
        self._table = table

    def _digest(self, address: str, password: str, stored_hash: str) -> bytes:
        msg = b"\0".join(s.encode("utf-8", "surrogatepass") for s in
                         (address, password, stored_hash))
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def _expiry(self, now: float) -> float:
        return now + self.ttl * (1.0 - 0.1 * random.random())

    def hit(self, address: str, password: str, stored_hash: str) -> bool:
        if self.ttl <= 0:
            return False
        key = self._digest(address, password, stored_hash)
        expires = self._table.get(key) if self._table else self._entries.get(key)
        if expires is None:
            return False
        now = self._clock()
        if expires < now:
            if self._table is None:
                del self._entries[key]
            return False
        if expires - now < self.ttl / 2:  # in use: push the expiry forward (sliding TTL)
            self._store(key, now)
        return True

    def remember(self, address: str, password: str, stored_hash: str) -> None:
        if self.ttl <= 0:
            return
        self._store(self._digest(address, password, stored_hash), self._clock())

    def _store(self, key: bytes, now: float) -> None:
        if self._table is not None:
            self._table.put(key, self._expiry(now), now)
            return
        if len(self._entries) >= self._max_entries:
            self._entries = {k: t for k, t in self._entries.items() if t >= now}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        self._entries[key] = self._expiry(now)


class Authenticator:
    """Checks a username/password pair for a session; one instance per worker process."""

    def __init__(
        self,
        storage: Storage,
        settings: AuthSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        cache: VerificationCache | None = None,
        throttle: SharedThrottle | None = None,
    ) -> None:
        self.storage = storage
        self.cache = cache or VerificationCache(settings.cache_ttl, clock=clock)
        self.throttle = throttle or SharedThrottle(
            LocalFailures(settings.failure_window, clock),
            window=settings.failure_window,
            max_per_ip=settings.max_failures_per_ip,
            max_per_user=settings.max_failures_per_user,
            delay_step=settings.failure_delay,
            delay_max=settings.failure_delay_max,
            clock=clock,
        )
        self.verifications = 0  # real Argon2 checks done (the cache's effect is visible here)
        self._dummy_hash: str | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(8, os.cpu_count() or 2), thread_name_prefix="argon2")

    async def authenticate(self, username: str, password: str, *, peer_ip: str) -> AuthResult:
        address = username.strip().lower()
        if "@" not in address or address.startswith("@") or address.endswith("@"):
            return await self._fail(peer_ip, None)
        # The user row is read while the failure counts are checked, not after them: on
        # PostgreSQL both are queries (the counts on the shared-limits pool), and in series
        # they were two round trips of every login's wait. A throttled login still answers
        # THROTTLED whatever the lookup finds or raises (its result is dropped unseen).
        lookup = asyncio.ensure_future(self.storage.get_user(address))
        try:
            throttled = await self.throttle.is_throttled(peer_ip, address)
        except BaseException:
            _discard(lookup)
            raise
        if throttled:
            _discard(lookup)
            return AuthResult(AuthOutcome.THROTTLED)
        try:
            user = await lookup
        except TemporaryStorageError:
            return AuthResult(AuthOutcome.TEMPFAIL)
        except StorageError:
            log.exception("user lookup failed")
            return AuthResult(AuthOutcome.TEMPFAIL)
        if user is None:
            await self._verify(await self._dummy(), password)
            return await self._fail(peer_ip, address)
        hit = self.cache.hit(user.address, password, user.password_hash)
        if self.cache.ttl > 0:
            metrics.auth_cache(hit)
        if not hit:
            if not await self._verify(user.password_hash, password):
                return await self._fail(peer_ip, user.address)
            self.cache.remember(user.address, password, user.password_hash)
            await self._maybe_rehash(user, password)
        if not user.enabled:
            return AuthResult(AuthOutcome.DISABLED)
        await self.throttle.record_success(user.address)
        return AuthResult(AuthOutcome.OK, user)

    def close(self) -> None:
        """Stop the hashing threads (at worker shutdown)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """:meth:`close`, and release the shared failure store's connections."""
        self.close()
        await self.throttle.close()

    # -- helpers ---------------------------------------------------------------------------
    async def _fail(self, peer_ip: str, address: str | None) -> AuthResult:
        delay = await self.throttle.record_failure(peer_ip, address)
        if delay > 0:
            await asyncio.sleep(delay)
        return AuthResult(AuthOutcome.BAD_CREDENTIALS)

    async def _verify(self, stored_hash: str, password: str) -> bool:
        self.verifications += 1
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, passwords.verify_password,
                                          stored_hash, password)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            loop = asyncio.get_running_loop()
            self._dummy_hash = await loop.run_in_executor(
                self._pool, passwords.hash_password, secrets.token_urlsafe(16)
            )
        return self._dummy_hash

    async def _maybe_rehash(self, user: User, password: str) -> None:
        """Upgrade a hash made with weaker parameters, best effort (a failure is harmless)."""
        if not passwords.needs_rehash(user.password_hash):
            return
        loop = asyncio.get_running_loop()
        try:
            new_hash = await loop.run_in_executor(self._pool, passwords.hash_password, password)
            await self.storage.set_password(user.address, new_hash)
        except StorageError as exc:
            log.warning("could not upgrade the password hash of %s: %s", user.address, exc)
