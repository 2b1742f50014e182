"""The bounded LRU maps the server's in-memory caches share (``mailwing.lru``)."""

from __future__ import annotations

import weakref

from mailwing.lru import Lru, for_storage


def test_the_least_recently_used_entries_go_first_and_are_returned() -> None:
    lru: Lru[str, int] = Lru(2)
    assert lru.put("a", 1) == [] and lru.put("b", 2) == []
    assert lru.get("a") == 1  # "a" is now the most recent
    assert lru.put("c", 3) == [2]  # so "b" goes
    assert "b" not in lru and len(lru) == 2
    assert lru.get("b") is None
    lru.pop("a")
    lru.pop("a")  # popping what is gone is harmless
    assert "a" not in lru and lru.get("c") == 3


class _Storage:
    pass


def test_each_storage_gets_its_own_map_and_one_without_weak_references_none() -> None:
    table: weakref.WeakKeyDictionary[object, Lru[int, str]] = weakref.WeakKeyDictionary()
    one, two = _Storage(), _Storage()
    first = for_storage(table, one, 4)
    assert first is not None and for_storage(table, one, 4) is first
    assert for_storage(table, two, 4) is not first
    assert for_storage(table, object(), 4) is None  # a plain object takes no weak reference
    del one
    assert len(table) == 1  # a storage's entries go with it
