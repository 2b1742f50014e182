"""A process-local "the queue has new work" signal, so a message queued by this process's SMTP
session is tried at once instead of at the worker's next poll.

Why a module-level set: the SMTP session and the worker meet only in the composition root,
and a wake-up is best effort (other processes, and a lost signal, are covered by polling).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["listen", "notify", "unlisten"]

_listeners: set[Callable[[], None]] = set()


def listen(callback: Callable[[], None]) -> None:
    _listeners.add(callback)


def unlisten(callback: Callable[[], None]) -> None:
    _listeners.discard(callback)


def notify() -> None:
    for callback in list(_listeners):
        callback()
