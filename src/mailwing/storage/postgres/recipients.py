"""SMTP RCPT lookups of one process that are under way at once go as one statement.

Why: every message's RCPT asks for the recipient's domain, user, INBOX and usage
(:func:`mailwing.storage.scripts.lookup_recipient`), one statement each: after deliveries
were grouped (:mod:`.batch`) it was most of the statements an SMTP message costs, and each
costs a round trip, a wake-up of a PostgreSQL backend and of the worker. While one lookup
is in the database, those that arrive wait and then go together (``_MANY``, the same joins
over an array of addresses); a lone lookup goes at once as the single statement (the queue
is :class:`~.coalesce.Coalescer`). Each
answer is as fresh as before: read by a statement that started after the caller asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mailwing.storage.interface import RecipientLookup
from mailwing.storage.postgres.coalesce import Coalescer
from mailwing.storage.scripts import lookup_recipient
from mailwing.storage.steps import Script, q

__all__ = ["RecipientLookups", "lookup_many"]

#: addresses per statement at most
MAX_LOOKUPS = 64

_MANY = """\
SELECT x.ord, d.id, u.id, u.address, u.quota_bytes, u.used_bytes, m.id
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(domain, address, ord)
LEFT JOIN domains d ON d.name = x.domain
LEFT JOIN users u ON u.address = x.address AND u.domain_id = d.id
LEFT JOIN mailboxes m ON m.user_id = u.id AND m.name = 'INBOX'
"""


def lookup_many(addresses: Sequence[str]) -> Script[list[RecipientLookup | None]]:
    """:func:`~mailwing.storage.scripts.lookup_recipient` of each address, in one statement."""
    normal = [a.strip().lower() for a in addresses]
    domains = [a.rpartition("@")[2].rstrip(".") for a in normal]
    rows = yield q(_MANY, domains, normal)
    found: list[RecipientLookup | None] = [None] * len(normal)
    for ordinal, domain_id, user_id, address, quota, used, inbox in rows:
        if domain_id is None:
            continue  # not a domain of ours: None
        if user_id is None:
            found[ordinal - 1] = RecipientLookup()
            continue
        found[ordinal - 1] = RecipientLookup(
            user_id=int(user_id), address=str(address),
            inbox_id=None if inbox is None else int(inbox),
            quota_bytes=int(quota), used_bytes=int(used))
    return found


class RecipientLookups(Coalescer[str, RecipientLookup | None]):
    """The queue of one storage object's RCPT lookups (module docstring); ``read`` runs a
    read script (the backend's ``_read``). A failed statement fails each lookup in it: a
    read can be asked again."""

    def __init__(self, read: Callable[..., Awaitable[Any]]) -> None:
        super().__init__(lambda address: read(lookup_recipient, address),
                         lambda addresses: read(lookup_many, addresses),
                         max_batch=MAX_LOOKUPS)

    async def lookup(self, address: str) -> RecipientLookup | None:
        return await self.submit(address)
