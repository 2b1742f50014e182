"""The shared records (:mod:`mailwing.model`, storage steps and interface records) are
NamedTuples, not dataclasses (issue #9: no code generation at import for ``mailwing deliver``);
they keep what the code relies on: immutability, typed fields, defaults, ``_replace``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailwing.model import ContentInfo, HeaderFields, MailEntry
from mailwing.storage.interface import Delivery
from mailwing.storage.steps import Query, Volatile, q


def test_records_are_immutable_values() -> None:
    info = ContentInfo(sha256="a" * 64, size=3, crlf_size=3, crlf_clean=True)
    assert info.fields == HeaderFields() and info.fields.subject is None
    entry = MailEntry(id=1, mailbox_id=2, uid=3, modseq=4, internal_date=datetime.now(UTC),
                      flags=frozenset(), content=info)
    with pytest.raises(AttributeError):
        entry.uid = 5  # type: ignore[misc]
    changed = entry._replace(flags=frozenset({"\\Seen"}), modseq=5)
    assert (changed.flags, changed.modseq, changed.uid) == (frozenset({"\\Seen"}), 5, 3)
    assert entry.flags == frozenset() and hash(entry) == hash(entry._replace())
    assert Delivery(mailbox_id=1) == Delivery(1, frozenset(), None)
    assert repr(Delivery(1)) == "Delivery(mailbox_id=1, flags=frozenset(), internal_date=None)"


def test_steps() -> None:
    assert q("SELECT $1", 1) == Query("SELECT $1", (1,))
    assert Volatile() == Volatile() and hash(Volatile()) == hash(Volatile())
    assert bool(Volatile()) and repr(Volatile()) == "Volatile()"
    assert Volatile() != Query("x")
