"""Login failure throttling, per client IP and per account, in the memory of one process.

Online guessing is slowed two ways: every failure adds to a per-IP and a per-address count
inside a sliding window, and once either count reaches its limit further attempts are refused
without looking at the password (so the attacker learns nothing and costs no Argon2 work); below
the limit each failure is answered after a delay that grows with the number of recent failures
from that IP. Loopback clients are *not* exempt: a local web mail or a port-forward would
otherwise be an unlimited guessing channel.

Counts are per worker process (``server.workers`` processes each keep their own), which bounds
an attacker to ``workers * limit`` guesses per window; sharing them through storage would cost a
write per failed login and is left for later. Memory is bounded: expired entries are dropped
as they are seen and the tables are pruned when they grow past ``max_keys``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FailureThrottle"]


@dataclass
class _Counter:
    """Timestamps of recent failures for one key, oldest first."""

    times: deque[float] = field(default_factory=deque)

    def prune(self, cutoff: float) -> int:
        while self.times and self.times[0] < cutoff:
            self.times.popleft()
        return len(self.times)


class _Table:
    def __init__(self, max_keys: int) -> None:
        self._entries: dict[str, _Counter] = {}
        self._max_keys = max_keys

    def count(self, key: str, cutoff: float) -> int:
        entry = self._entries.get(key)
        if entry is None:
            return 0
        n = entry.prune(cutoff)
        if n == 0:
            del self._entries[key]
        return n

    def add(self, key: str, now: float, cutoff: float) -> int:
        if len(self._entries) >= self._max_keys:
            self._sweep(cutoff)
        entry = self._entries.setdefault(key, _Counter())
        entry.prune(cutoff)
        entry.times.append(now)
        return len(entry.times)

    def clear(self, key: str) -> None:
        self._entries.pop(key, None)

    def _sweep(self, cutoff: float) -> None:
        for key in [k for k, e in self._entries.items() if e.prune(cutoff) == 0]:
            del self._entries[key]
        if len(self._entries) >= self._max_keys:  # still full: forget the oldest half
            ordered = sorted(self._entries, key=lambda k: self._entries[k].times[-1])
            for key in ordered[: len(ordered) // 2]:
                del self._entries[key]


class FailureThrottle:
    """Counts failed logins and says when to refuse or delay the next attempt."""

    def __init__(
        self,
        *,
        window: float,
        max_per_ip: int,
        max_per_user: int,
        delay_step: float = 0.5,
        delay_max: float = 3.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.max_per_ip = max_per_ip
        self.max_per_user = max_per_user
        self.delay_step = delay_step
        self.delay_max = delay_max
        self._clock = clock
        self._by_ip = _Table(max_keys)
        self._by_user = _Table(max_keys)

    def is_throttled(self, ip: str, address: str | None) -> bool:
        """True when recent failures from ``ip`` or against ``address`` reached the limit."""
        cutoff = self._clock() - self.window
        if self._by_ip.count(ip, cutoff) >= self.max_per_ip:
            return True
        return address is not None and self._by_user.count(address, cutoff) >= self.max_per_user

    def record_failure(self, ip: str, address: str | None) -> float:
        """Count one failure; return how long to wait before answering it (seconds)."""
        now = self._clock()
        cutoff = now - self.window
        failures = self._by_ip.add(ip, now, cutoff)
        if address is not None:
            self._by_user.add(address, now, cutoff)
        return min(self.delay_step * failures, self.delay_max)

    def record_success(self, address: str) -> None:
        """A correct password clears that account's count (never the IP's: an attacker with
        one valid account must not be able to reset the counter of the IP guessing others)."""
        self._by_user.clear(address)
