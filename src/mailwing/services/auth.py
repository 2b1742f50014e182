"""Password authentication: Argon2id verification off the event loop, a short-lived cache of
successful checks, and failure throttling per client IP and per address.

(Interface pinned here; implementation by the server/CLI work.)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mailwing.model import User

__all__ = ["AuthOutcome", "AuthResult", "Authenticator"]


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


class Authenticator:
    async def authenticate(self, username: str, password: str, *, peer_ip: str) -> AuthResult:
        raise NotImplementedError
