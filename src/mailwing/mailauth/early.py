"""SPF lookups of one SMTP session, started as soon as their inputs are known and asked once.

Why (issue #9, SMTP intake stalled on DNS): the SPF checks need nothing from the message.
The HELO identity (RFC 7208 section 2.3) depends only on the client IP and the HELO name, so
it is evaluated once per session and name, not once per message; the MAIL FROM identity
(section 2.4) depends on the IP, the sender and the HELO name, so its evaluation starts when
MAIL FROM is accepted and runs while the client sends RCPT and DATA. At the end of DATA,
:func:`mailwing.mailauth.inbound.run_checks` takes the tasks from here (still running or
done) instead of starting the lookups then; DKIM and DMARC need the message and start there.

Bounds: at most :data:`MAX_HELO_NAMES` HELO names are remembered per session (a client that
changes its name more often makes us evaluate again, never keep more); a new MAIL FROM drops
the previous transaction's task; :meth:`EarlyChecks.close` cancels everything when the
session ends. A task's own failure is kept in the task (a later ``await`` sees it) and never
logged as "never retrieved".
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from mailwing.config import Settings
from mailwing.mailauth import spf
from mailwing.mailauth.dns import Lookup
from mailwing.mailauth.spf import SpfResult

__all__ = ["MAX_HELO_NAMES", "EarlyChecks", "checks_apply"]

MAX_HELO_NAMES = 4


def checks_apply(settings: Settings, *, listener: str, user: str | None) -> bool:
    """The inbound checks run for unauthenticated mail on the MX (``smtp``) listener."""
    a = settings.auth
    return listener == "smtp" and user is None and (a.check_spf or a.check_dkim
                                                    or a.check_dmarc)


def _quiet(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _start(coro: Coroutine[Any, Any, SpfResult]) -> asyncio.Task[SpfResult]:
    task = asyncio.ensure_future(coro)
    task.add_done_callback(_quiet)
    return task


class EarlyChecks:
    """The SPF tasks of one session (see the module docstring)."""

    def __init__(self, settings: Settings, client_ip: str) -> None:
        self.settings = settings
        self.client_ip = client_ip
        self._helo: dict[str, asyncio.Task[SpfResult]] = {}
        self._mail: tuple[str, str, asyncio.Task[SpfResult]] | None = None

    def mail_from(self, sender: str, helo: str) -> None:
        """MAIL FROM was accepted: start what SPF can evaluate now."""
        self._drop_mail()
        a = self.settings.auth
        if a.check_spf or a.check_dmarc:
            lookup = Lookup.from_settings(self.settings)
            self._mail = (sender, helo, _start(
                spf.check_mailfrom(lookup, self.client_ip, sender, helo)))
        if a.check_spf and sender:
            self.helo(helo)

    def mailfrom_task(self, sender: str, helo: str) -> asyncio.Task[SpfResult] | None:
        """The MAIL FROM evaluation for exactly this sender and HELO name, if started."""
        if self._mail is not None and self._mail[:2] == (sender, helo):
            return self._mail[2]
        return None

    def helo(self, name: str) -> asyncio.Task[SpfResult]:
        """The HELO evaluation for ``name``, started on first use, then shared."""
        task = self._helo.get(name)
        if task is None or task.cancelled():
            if len(self._helo) >= MAX_HELO_NAMES:
                oldest = next(iter(self._helo))
                self._helo.pop(oldest).cancel()
            lookup = Lookup.from_settings(self.settings)
            task = _start(spf.check_helo(lookup, self.client_ip, name))
            self._helo[name] = task
        return task

    def _drop_mail(self) -> None:
        if self._mail is not None:
            self._mail[2].cancel()
            self._mail = None

    def close(self) -> None:
        """The session ended: stop every lookup still running."""
        self._drop_mail()
        for task in self._helo.values():
            task.cancel()
        self._helo.clear()
