"""``Storage.open_mailbox`` (an IMAP SELECT of a mailbox whose listing the process kept)
answers what its parts answer: the \\Recent claim first, then the mailbox row and the
changes since the kept listing's HIGHESTMODSEQ. PostgreSQL reads it in one statement when
there is nothing to claim; this checks the answers on both backends."""

from __future__ import annotations

import pytest

from mailwing.model import User
from mailwing.storage import Delivery, Storage
from mailwing.storage.errors import NotFound
from tests.storage.conftest import inbox_id


async def test_open_mailbox_answers_as_its_parts(storage: Storage, user: User) -> None:
    box = await inbox_id(storage, user)
    content = await storage.store_content(b"Subject: open\r\n\r\n")
    for _ in range(3):
        await storage.append(content, [Delivery(box)])
    found, changes, floor = await storage.open_mailbox(box, 0, claim=True)
    assert floor == 1  # UIDs 1-3 claimed by this call
    assert await storage.claim_recent(box) == 4
    assert found == await storage.get_mailbox_by_id(box)
    assert changes == await storage.mail_changes(box, 0)
    assert [e.uid for e in changes[1]] == [1, 2, 3] and changes[2] == []
    highest = changes[0]
    await storage.set_flags(box, [2], ["\\Seen"], "add")
    await storage.expunge(box, [3])
    found, changes, floor = await storage.open_mailbox(box, highest, claim=True)
    assert floor == 4  # nothing new: the floor stays
    assert found is not None and found.highestmodseq == changes[0] > highest
    assert [(e.uid, e.flags) for e in changes[1]] == [(2, {"\\Seen"})] and changes[2] == [3]
    found, changes, floor = await storage.open_mailbox(box, changes[0], claim=False)
    assert floor is None and changes[1:] == ([], [])
    with pytest.raises(NotFound):
        await storage.open_mailbox(987_654, 0, claim=True)
    with pytest.raises(NotFound):
        await storage.open_mailbox(987_654, 0, claim=False)


async def test_open_mailbox_by_a_guessed_name_checks_it_first(storage: Storage, user: User
                                                              ) -> None:
    """``named``: the caller skipped the lookup by name. A mailbox that no longer has that
    name (renamed, or another one re-created under it) is NotFound, and nothing in it is
    claimed; one that still has it answers as without ``named``."""
    box = await storage.create_mailbox(user.id, "Work")
    content = await storage.store_content(b"Subject: named\r\n\r\n")
    await storage.append(content, [Delivery(box.id)])
    named = (user.id, "Work", box.uidvalidity)
    found, changes, floor = await storage.open_mailbox(box.id, 0, claim=True, named=named)
    assert floor == 1 and found is not None and found.name == "Work"
    assert [e.uid for e in changes[1]] == [1]
    await storage.append(content, [Delivery(box.id)])  # UID 2, not claimed yet
    await storage.rename_mailbox(user.id, "Work", "Play")
    for guess in (named, (user.id, "Play", box.uidvalidity + 1), (user.id + 1, "Play",
                                                                  box.uidvalidity)):
        with pytest.raises(NotFound):
            await storage.open_mailbox(box.id, 0, claim=True, named=guess)
    assert await storage.claim_recent(box.id) == 2  # UID 2 was left for this claim
    again = await storage.create_mailbox(user.id, "Work")
    with pytest.raises(NotFound):
        await storage.open_mailbox(box.id, 0, claim=False, named=named)
    found, _, _ = await storage.open_mailbox(
        again.id, 0, claim=False, named=(user.id, "Work", again.uidvalidity))
    assert found is not None and found.id == again.id
