"""What the admin app is given by the worker: settings, storage, services, listener status."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mailwing.config import Settings
from mailwing.services.admin_tokens import TokenService
from mailwing.shared.limits import LocalFailures, SharedThrottle
from mailwing.storage.interface import Storage

__all__ = ["AdminState", "ListenerStatus", "load_session_key"]


@dataclass(frozen=True, slots=True)
class ListenerStatus:
    name: str
    protocol: str
    host: str
    port: int
    tls: str  # "implicit", "starttls" or "none"
    connections: int  # live sessions (all workers when metrics are on)


@dataclass
class AdminState:
    settings: Settings
    storage: Storage
    session_key: bytes
    listeners: Callable[[], list[ListenerStatus]] = list
    ready: Callable[[], bool] = lambda: True
    started_at: float = field(default_factory=time.time)
    tokens: TokenService = field(init=False)
    #: Failed token checks; ``mailwing serve`` passes the worker's shared one (counted across
    #: workers and nodes, like mail logins, in separate counts); else this process's own.
    shared_throttle: SharedThrottle | None = None
    throttle: SharedThrottle = field(init=False)

    def __post_init__(self) -> None:
        a = self.settings.auth
        self.tokens = TokenService(self.storage)
        # Same limits as mail logins (auth.*), counted separately so that a guessing admin
        # client does not lock mail users out of the same IP, nor the reverse.
        self.throttle = self.shared_throttle or SharedThrottle(
            LocalFailures(a.failure_window), window=a.failure_window,
            max_per_ip=a.max_failures_per_ip, max_per_user=a.max_failures_per_user,
            delay_step=a.failure_delay, delay_max=a.failure_delay_max, prefix="admin:")


def load_session_key(data_dir: Path) -> bytes:
    """The console's cookie-signing key, shared by every worker and kept across restarts
    (``data_dir/admin/session.key``, mode 0600); made on first use."""
    folder = Path(data_dir) / "admin"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / "session.key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
        path.unlink()
        return load_session_key(data_dir)
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key
