"""Bounded least-recently-used maps, the one kind of cache this server keeps in memory.

Why a module of its own: POP3 maildrops, IMAP listings, encoded FETCH views and SORT's
header references each keep one, and each had its own copy of the same ``OrderedDict``
moves. ``functools.lru_cache`` does not fit: these are filled by coroutines after a storage
read, looked up without computing, and some must know what they evicted.

:func:`for_storage` gives each storage object its own map (process-wide tables are keyed by
the storage weakly, so a closed storage's entries go with it).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any, Generic, TypeVar

__all__ = ["Lru", "for_storage"]

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """At most ``size`` entries; :meth:`get` and :meth:`put` make an entry the most recent,
    and :meth:`put` drops the least recent ones beyond ``size``."""

    __slots__ = ("_data", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> list[V]:
        """Store ``value``; the values dropped to keep the bound (usually none)."""
        data = self._data
        data[key] = value
        data.move_to_end(key)
        dropped = []
        while len(data) > self.size:
            dropped.append(data.popitem(last=False)[1])
        return dropped

    def pop(self, key: K) -> None:
        self._data.pop(key, None)


def for_storage(table: weakref.WeakKeyDictionary[Any, Lru[K, V]], storage: object,
                size: int) -> Lru[K, V] | None:
    """``storage``'s map in ``table``, created on first use; None for a storage object that
    takes no weak reference (it is then not cached for)."""
    try:
        lru = table.get(storage)
        if lru is None:
            lru = table[storage] = Lru(size)
    except TypeError:
        return None
    return lru
