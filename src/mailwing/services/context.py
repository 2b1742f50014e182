"""What every protocol session is given: settings, storage and the shared services.

Built once per worker process by :mod:`mailwing.app`; sessions receive it and never build
services themselves, so tests can assemble one around any storage backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwing.config import Settings
from mailwing.services.auth import Authenticator
from mailwing.services.capture import Capture
from mailwing.storage.interface import Storage

__all__ = ["AppContext"]


@dataclass
class AppContext:
    settings: Settings
    storage: Storage
    auth: Authenticator
    capture: Capture | None = None  # set in capture mode (``[capture] enabled``)

    @property
    def hostname(self) -> str:
        return self.settings.server.hostname
