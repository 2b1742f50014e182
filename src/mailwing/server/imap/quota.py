"""QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT, SETQUOTA.

Every user has one quota root, ``""`` (:data:`mailwing.services.quota.QUOTA_ROOT`), that all
of their mailboxes belong to. When the user has a limit, ``GETQUOTAROOT mbox`` answers
``* QUOTAROOT mbox ""`` and ``* QUOTA "" (STORAGE used limit)`` in units of 1024 octets
(section 5.1); a user without a limit has no quota root (``* QUOTAROOT mbox``), and
``GETQUOTA ""`` then answers ``* QUOTA "" ()``. Usage comes from the running counters
(no sum over the mailbox). SETQUOTA is refused with ``NO [NOPERM]``: limits are the
administrator's (``mailwing user quota``, the admin API), never the user's own
(:func:`mailwing.services.quota.may_set_quota`). Enforcement is in APPEND, COPY and MOVE
(``NO [OVERQUOTA]``).
"""

from __future__ import annotations

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap import wire as pw
from mailwing.server.imap.base import Done, Handler, SessionState, unavailable
from mailwing.server.imap.mailboxes import find_mailbox
from mailwing.services import quota
from mailwing.storage.errors import StorageError

__all__ = ["HANDLERS"]


async def _report(s: SessionState) -> quota.QuotaReport:
    try:
        return await quota.quota_report(s.ctx.storage, s.require_user())
    except StorageError as exc:
        raise unavailable() from exc


def _quota_line(report: quota.QuotaReport) -> bytes:
    used, limit = report.storage_kib
    resources = b"()" if limit is None else b"(STORAGE %d %d)" % (used, limit)
    return responses.untagged(b"QUOTA " + pw.astring(quota.QUOTA_ROOT) + b" " + resources)


async def getquota(s: SessionState, cmd: c.GetQuota) -> Done:
    if cmd.root != quota.QUOTA_ROOT:
        return Done("NO", texts.NO_SUCH_QUOTA_ROOT, "NONEXISTENT")
    s.send(_quota_line(await _report(s)))
    return Done("OK", texts.COMPLETED.format("GETQUOTA"))


async def getquotaroot(s: SessionState, cmd: c.GetQuotaRoot) -> Done:
    box = await find_mailbox(s, cmd.mailbox)
    report = await _report(s)
    line = b"QUOTAROOT " + pw.encode_mailbox(box.name)
    if report.limit_bytes is not None:
        line += b" " + pw.astring(quota.QUOTA_ROOT)
    s.send(responses.untagged(line))
    if report.limit_bytes is not None:
        s.send(_quota_line(report))
    return Done("OK", texts.COMPLETED.format("GETQUOTAROOT"))


async def setquota(s: SessionState, cmd: c.SetQuota) -> Done:
    """An IMAP login is never the administrator (RFC 9208 section 4.4 allows NO)."""
    assert not quota.may_set_quota(administrator=False)
    return Done("NO", texts.QUOTA_NOT_ADMIN, "NOPERM")


HANDLERS: dict[type[c.Command], Handler] = {
    c.GetQuota: getquota, c.GetQuotaRoot: getquotaroot, c.SetQuota: setquota,
}
