"""Password hashing: Argon2id PHC strings, the only format mailwing stores.

Argon2id (RFC 9106) is memory-hard, so guessing stolen hashes is expensive; the flip side is that
each check costs tens of milliseconds of CPU, which is why :mod:`mailwing.services.auth` runs
these functions in a worker thread and caches successful checks briefly. Everything here is
synchronous and thread-safe (argon2-cffi releases the GIL while hashing).
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["hash_password", "needs_rehash", "verify_password"]

# Parameters, written out so that a library upgrade cannot change them silently: RFC 9106
# section 4, the SECOND RECOMMENDED option for memory-constrained settings (the first, 2 GiB
# per check, is unthinkable for a mail server): Argon2id, t=3 passes, m=64 MiB, p=4 lanes,
# 128-bit salt, 256-bit tag. That is well above OWASP's Password Storage Cheat Sheet minimum
# for Argon2id (m=19 MiB, t=2, p=1, or an equivalent trade of memory for passes). A stored
# hash made with other parameters is re-made at the next successful login (needs_rehash).
TIME_COST = 3
MEMORY_COST_KIB = 64 * 1024
PARALLELISM = 4
_hasher = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB,
                         parallelism=PARALLELISM, hash_len=32, salt_len=16, type=Type.ID)


def hash_password(password: str) -> str:
    """Return an Argon2id PHC string (``$argon2id$v=19$m=...``) for ``password``."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``; False on mismatch or a malformed hash."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters (or another type) than today's."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True
