"""Running one coroutine to completion and opening storage: what every command needs.

Why a module of its own (issue #9, ``mailwing deliver`` <= 60 ms per message): these two
helpers used to live in :mod:`mailwing.app`, the composition root, which imports the whole
server (listeners, TLS, the authenticator). A one-shot command such as ``mailwing deliver``,
run by an MTA once per message, needs only these, so it imports only this module, the
configuration and the storage backend it opens. :mod:`mailwing.app` re-exports both.

``asyncio`` itself is imported by :func:`run_async` only: on SQLite, ``mailwing deliver`` runs
without an event loop (:func:`open_direct_store`), and the import alone costs more than the
rest of its work.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mailwing.config import Settings
    from mailwing.storage.interface import Storage
    from mailwing.storage.sqlite.direct import DirectSqliteStorage

__all__ = ["open_direct_store", "open_store", "run_async"]

T = TypeVar("T")


def run_async(main: Callable[[], Coroutine[Any, Any, T]], *, uvloop: bool = True) -> T:
    """Run ``main()`` on a fresh event loop, uvloop's when available and ``uvloop`` is true
    (a short command saves uvloop's import time by passing false)."""
    import asyncio

    factory = None
    if uvloop:
        try:
            import uvloop as _uvloop
        except ImportError:
            pass
        else:
            factory = _uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


async def open_store(settings: Settings) -> Storage:
    """Open the configured storage (creating the data folder first)."""
    from mailwing.storage import open_storage

    data_dir = settings.server.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    return await open_storage(settings.database_url, data_dir=data_dir,
                              fsync_flag_changes=settings.storage.fsync_flag_changes,
                              content_cache_size=settings.storage.content_cache_size)


def open_direct_store(settings: Settings) -> DirectSqliteStorage | None:
    """The configured storage run in the calling thread without an event loop (drive its
    coroutines with :func:`mailwing.storage.sqlite.direct.run_direct`), or None when the
    backend needs one (PostgreSQL): then use :func:`open_store` under :func:`run_async`."""
    from mailwing.storage import open_direct_storage

    data_dir = settings.server.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    return open_direct_storage(settings.database_url, data_dir=data_dir,
                               fsync_flag_changes=settings.storage.fsync_flag_changes)
