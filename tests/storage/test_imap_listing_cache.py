"""The process-wide listing cache behind IMAP SELECT: a second SELECT asks storage only for
what changed, and must see exactly what a fresh listing would (both backends)."""

from __future__ import annotations

from typing import Any

from mailwing.services.imap_selected import open_view
from mailwing.storage.interface import Delivery


async def test_reselect_sees_appends_flag_changes_and_expunges(store: Any) -> None:
    user, _ = await store.add_user("cache@x.test", "hash", create_domain=True)
    inbox = await store.get_mailbox(user.id, "INBOX")
    for i in range(5):
        info = await store.store_content(f"Subject: {i}\r\n\r\nbody {i}\r\n".encode())
        await store.append(info, [Delivery(inbox.id)])

    first = await open_view(store, inbox, read_only=True)
    assert first.uids == [1, 2, 3, 4, 5]

    # changes made behind the cache's back, as another session or process would
    info = await store.store_content(b"Subject: new\r\n\r\nnew\r\n")
    await store.append(info, [Delivery(inbox.id, flags=frozenset({"\\Flagged"}))])
    await store.set_flags(inbox.id, [2], ["\\Seen"], "add")
    await store.expunge(inbox.id, [1, 4])

    again = await open_view(store, inbox, read_only=True)
    truth = {e.uid: e for e in await store.list_mail(inbox.id)}
    assert again.uids == sorted(truth) == [2, 3, 5, 6]
    assert {u: again.entries[u].flags for u in again.uids} == {
        u: e.flags for u, e in truth.items()
    }
    assert again.entries[2].flags == frozenset({"\\Seen"})
    assert again.modseq == (await store.get_mailbox_by_id(inbox.id)).highestmodseq
