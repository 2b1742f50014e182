"""Authenticator and password hashing against a real storage backend (no mocks)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from mailwing.config import AuthSettings
from mailwing.services import passwords
from mailwing.services.auth import Authenticator, AuthOutcome
from mailwing.shared.limits import LocalFailures, SharedThrottle
from mailwing.storage.errors import StorageError, TemporaryStorageError
from tests.conftest import open_test_storage

ALICE = "alice@example.org"


class Clock:
    """A hand-moved monotonic clock, so that windows and TTLs can be crossed instantly."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**kw: Any) -> AuthSettings:
    base: dict[str, Any] = {"cache_ttl": 60.0, "failure_delay": 0.0, "failure_delay_max": 0.0,
                            "max_failures_per_ip": 5, "max_failures_per_user": 3,
                            "failure_window": 300.0}
    base.update(kw)
    return AuthSettings(**base)


@pytest.fixture
async def alice(sqlite_store: Any) -> Any:
    user, _ = await sqlite_store.add_user(ALICE, passwords.hash_password("right"),
                                          create_domain=True)
    return user


# -- password hashing ----------------------------------------------------------------------

def test_hash_is_argon2id_phc() -> None:
    h = passwords.hash_password("s3cret")
    assert h.startswith("$argon2id$v=19$")
    assert passwords.verify_password(h, "s3cret")
    assert not passwords.verify_password(h, "S3cret")
    assert not passwords.verify_password("not a hash", "s3cret")
    assert not passwords.needs_rehash(h)


def test_weak_parameters_need_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("x")
    assert passwords.needs_rehash(weak)
    assert passwords.verify_password(weak, "x")


# -- authenticate --------------------------------------------------------------------------

async def test_ok_and_case_insensitive(sqlite_store: Any, alice: Any) -> None:
    auth = Authenticator(sqlite_store, settings())
    result = await auth.authenticate("Alice@Example.ORG", "right", peer_ip="192.0.2.1")
    assert result.ok and result.user is not None and result.user.address == ALICE


async def test_wrong_password_and_unknown_user(sqlite_store: Any, alice: Any) -> None:
    auth = Authenticator(sqlite_store, settings())
    wrong = await auth.authenticate(ALICE, "wrong", peer_ip="192.0.2.1")
    assert wrong.outcome is AuthOutcome.BAD_CREDENTIALS
    unknown = await auth.authenticate("bob@example.org", "right", peer_ip="192.0.2.1")
    assert unknown.outcome is AuthOutcome.BAD_CREDENTIALS
    assert auth.verifications == 2  # the unknown user cost a (dummy) verification too


async def test_address_without_at_is_refused(sqlite_store: Any, alice: Any) -> None:
    auth = Authenticator(sqlite_store, settings())
    result = await auth.authenticate("alice", "right", peer_ip="192.0.2.1")
    assert result.outcome is AuthOutcome.BAD_CREDENTIALS


async def test_cache_skips_reverification(sqlite_store: Any, alice: Any) -> None:
    clock = Clock()
    auth = Authenticator(sqlite_store, settings(cache_ttl=10), clock=clock)
    for _ in range(3):
        assert (await auth.authenticate(ALICE, "right", peer_ip="192.0.2.1")).ok
    assert auth.verifications == 1
    # a wrong password is never answered from the cache
    bad = await auth.authenticate(ALICE, "wrong", peer_ip="192.0.2.1")
    assert bad.outcome is AuthOutcome.BAD_CREDENTIALS
    assert auth.verifications == 2
    clock.now += 11  # the entry expired
    assert (await auth.authenticate(ALICE, "right", peer_ip="192.0.2.1")).ok
    assert auth.verifications == 3


async def test_cache_disabled_at_ttl_zero(sqlite_store: Any, alice: Any) -> None:
    auth = Authenticator(sqlite_store, settings(cache_ttl=0))
    for _ in range(2):
        assert (await auth.authenticate(ALICE, "right", peer_ip="192.0.2.1")).ok
    assert auth.verifications == 2


async def test_password_change_invalidates_cache(sqlite_store: Any, alice: Any) -> None:
    auth = Authenticator(sqlite_store, settings())
    assert (await auth.authenticate(ALICE, "right", peer_ip="192.0.2.1")).ok
    await sqlite_store.set_password(ALICE, passwords.hash_password("new"))
    old = await auth.authenticate(ALICE, "right", peer_ip="192.0.2.1")
    assert old.outcome is AuthOutcome.BAD_CREDENTIALS
    assert (await auth.authenticate(ALICE, "new", peer_ip="192.0.2.1")).ok


async def test_disabled_account(sqlite_store: Any, alice: Any) -> None:
    auth = Authenticator(sqlite_store, settings())
    await sqlite_store.set_enabled(ALICE, False)
    result = await auth.authenticate(ALICE, "right", peer_ip="192.0.2.1")
    assert result.outcome is AuthOutcome.DISABLED
    # without the right password nothing reveals that the account is disabled
    wrong = await auth.authenticate(ALICE, "wrong", peer_ip="192.0.2.1")
    assert wrong.outcome is AuthOutcome.BAD_CREDENTIALS


async def test_throttle_per_ip(sqlite_store: Any, alice: Any) -> None:
    clock = Clock()
    auth = Authenticator(sqlite_store, settings(max_failures_per_ip=4,
                                                max_failures_per_user=100), clock=clock)
    for i in range(4):  # guesses at different (unknown) addresses from one IP
        r = await auth.authenticate(f"u{i}@example.org", "x", peer_ip="198.51.100.7")
        assert r.outcome is AuthOutcome.BAD_CREDENTIALS
    before = auth.verifications
    blocked = await auth.authenticate(ALICE, "right", peer_ip="198.51.100.7")
    assert blocked.outcome is AuthOutcome.THROTTLED
    assert auth.verifications == before  # no password was checked
    # another IP is unaffected; loopback is not exempt but is a different key
    assert (await auth.authenticate(ALICE, "right", peer_ip="127.0.0.1")).ok
    clock.now += 301  # the window passed
    assert (await auth.authenticate(ALICE, "right", peer_ip="198.51.100.7")).ok


async def test_throttle_per_user(sqlite_store: Any, alice: Any) -> None:
    await sqlite_store.add_user("carol@example.org", passwords.hash_password("c"))
    auth = Authenticator(sqlite_store, settings(max_failures_per_ip=100,
                                                max_failures_per_user=3))
    for i in range(3):  # a distributed guess: one failure per IP
        r = await auth.authenticate(ALICE, "wrong", peer_ip=f"203.0.113.{i}")
        assert r.outcome is AuthOutcome.BAD_CREDENTIALS
    r = await auth.authenticate(ALICE, "right", peer_ip="203.0.113.99")
    assert r.outcome is AuthOutcome.THROTTLED
    other = await auth.authenticate("carol@example.org", "c", peer_ip="203.0.113.1")
    assert other.ok


async def test_success_resets_user_count(sqlite_store: Any, alice: Any) -> None:
    auth = Authenticator(sqlite_store, settings(max_failures_per_user=3,
                                                max_failures_per_ip=100))
    for _ in range(2):
        await auth.authenticate(ALICE, "wrong", peer_ip="192.0.2.1")
    assert (await auth.authenticate(ALICE, "right", peer_ip="192.0.2.1")).ok
    for _ in range(2):
        await auth.authenticate(ALICE, "wrong", peer_ip="192.0.2.1")
    assert (await auth.authenticate(ALICE, "right", peer_ip="192.0.2.1")).ok


async def test_failure_delay_grows(sqlite_store: Any, alice: Any,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The delays asked for, not wall-clock time (no timed assertions: the machine may be busy)."""
    import mailwing.services.auth as auth_module

    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float) -> None:
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(auth_module.asyncio, "sleep", recording_sleep)
    auth = Authenticator(sqlite_store, settings(failure_delay=0.1, failure_delay_max=0.15,
                                                cache_ttl=0))
    for _ in range(3):
        await auth.authenticate("nobody@example.org", "x", peer_ip="192.0.2.9")
    assert slept[0] >= 0.1
    assert slept[1:] == [0.15, 0.15]  # capped at failure_delay_max


async def test_tempfail_when_storage_is_unavailable(tmp_path: Path) -> None:
    store = await open_test_storage(f"sqlite:///{tmp_path / 'gone.db'}", tmp_path / "d")
    await store.add_user(ALICE, passwords.hash_password("right"), create_domain=True)
    await store.close()  # the database connection is gone
    auth = Authenticator(store, settings())
    result = await auth.authenticate(ALICE, "right", peer_ip="192.0.2.1")
    assert result.outcome is AuthOutcome.TEMPFAIL


async def test_login_rehashes_a_hash_with_old_parameters(store: Any) -> None:
    """RFC 9106's parameters changed since the hash was made: the next correct login stores a
    new hash with today's (on both backends), and the old password still works."""
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("pw")
    await store.add_user("old@example.org", weak, create_domain=True)
    auth = Authenticator(store, settings())
    try:
        assert (await auth.authenticate("old@example.org", "pw", peer_ip="192.0.2.7")).ok
        user = await store.get_user("old@example.org")
        assert user.password_hash != weak
        assert user.password_hash.startswith(
            f"$argon2id$v=19$m={passwords.MEMORY_COST_KIB},t={passwords.TIME_COST},"
            f"p={passwords.PARALLELISM}$")
        assert (await auth.authenticate("old@example.org", "pw", peer_ip="192.0.2.7")).ok
    finally:
        auth.close()


# -- the user lookup runs while the failure counts are checked --------------------------------

class GatedCounts(LocalFailures):
    """This process's failure counts, whose check waits for ``gate`` (a shared store's query
    under way) and can answer "throttled" for every key."""

    def __init__(self, *, throttled: bool = False) -> None:
        super().__init__(300.0)
        self.gate = asyncio.Event()
        self.checking = False
        self.throttled = throttled

    async def counts(self, keys: list[str], now: float) -> list[int]:
        self.checking = True
        try:
            await self.gate.wait()
        finally:
            self.checking = False
        return [1000] * len(keys) if self.throttled else await super().counts(keys, now)


def gated_throttle(store: GatedCounts) -> SharedThrottle:
    return SharedThrottle(store, window=300.0, max_per_ip=5, max_per_user=3)


async def spin(turns: int = 20) -> None:
    """Let the event loop run the tasks that are ready (no clock involved)."""
    for _ in range(turns):
        await asyncio.sleep(0)


@pytest.fixture
async def unretrieved() -> AsyncIterator[list[dict[str, Any]]]:
    """What the event loop's exception handler is given (e.g. "Task exception was never
    retrieved"), collected after a garbage collection at the end of the test."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(old)


async def test_user_lookup_runs_while_the_failure_counts_are_checked(
        sqlite_store: Any, alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #9: on PostgreSQL the counts and the user row are each a query; one after the
    other they were two round trips of every login's wait, at once one."""
    looked_up: list[str] = []
    real_get_user = sqlite_store.get_user

    async def get_user(address: str) -> Any:
        looked_up.append(address)
        return await real_get_user(address)

    monkeypatch.setattr(sqlite_store, "get_user", get_user)
    counts = GatedCounts()
    auth = Authenticator(sqlite_store, settings(), throttle=gated_throttle(counts))
    login = asyncio.ensure_future(auth.authenticate(ALICE, "right", peer_ip="192.0.2.1"))
    try:
        await spin()
        assert counts.checking and looked_up == [ALICE]  # both under way at once
        assert not login.done()
    finally:
        counts.gate.set()
    assert (await login).ok
    auth.close()


@pytest.mark.parametrize("failure", [None, TemporaryStorageError("down"), StorageError("odd")])
async def test_a_throttled_login_ignores_its_user_lookup(
        sqlite_store: Any, alice: Any, monkeypatch: pytest.MonkeyPatch,
        unretrieved: list[dict[str, Any]], failure: Exception | None) -> None:
    """Throttled answers THROTTLED whatever the lookup finds or raises, without waiting for
    it, and a lookup that fails afterwards leaves no unretrieved exception behind."""
    lookup_gate = asyncio.Event()
    finished: list[bool] = []

    async def get_user(address: str) -> Any:
        await lookup_gate.wait()
        finished.append(True)
        if failure is not None:
            raise failure
        return alice

    monkeypatch.setattr(sqlite_store, "get_user", get_user)
    counts = GatedCounts(throttled=True)
    counts.gate.set()
    auth = Authenticator(sqlite_store, settings(), throttle=gated_throttle(counts))
    result = await auth.authenticate(ALICE, "right", peer_ip="192.0.2.1")
    assert result.outcome is AuthOutcome.THROTTLED and result.user is None
    assert finished == [] and auth.verifications == 0  # not waited for; no password checked
    lookup_gate.set()
    await spin()
    assert finished == [True]
    gc.collect()
    await spin()
    assert unretrieved == []
    auth.close()


async def test_a_failed_lookup_is_a_tempfail_once_the_counts_allow_the_login(
        sqlite_store: Any, alice: Any, monkeypatch: pytest.MonkeyPatch,
        unretrieved: list[dict[str, Any]]) -> None:
    """The lookup may fail before the counts are in: the answer is still TEMPFAIL (not
    THROTTLED, not an exception), given once the counts allow the login."""
    async def get_user(address: str) -> Any:
        raise TemporaryStorageError("database restarting")

    monkeypatch.setattr(sqlite_store, "get_user", get_user)
    counts = GatedCounts()
    auth = Authenticator(sqlite_store, settings(), throttle=gated_throttle(counts))
    login = asyncio.ensure_future(auth.authenticate(ALICE, "right", peer_ip="192.0.2.1"))
    await spin()
    assert not login.done()  # the lookup failed already; the counts are still being read
    counts.gate.set()
    assert (await login).outcome is AuthOutcome.TEMPFAIL
    gc.collect()
    await spin()
    assert unretrieved == []
    auth.close()
