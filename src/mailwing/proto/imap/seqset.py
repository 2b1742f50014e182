"""IMAP sequence sets (RFC 3501 section 9, ``sequence-set``; semantics in section 6.4.8).

Why: message numbers and UIDs are addressed the same way, ``1:3,5,7:*``. A range may be
written in either order (``5:2`` is ``2:5``) and ``*`` means the largest number in use,
which only the session knows, so a parsed set keeps ``*`` symbolic until :meth:`resolve`
is given that maximum. For UID sets the RFC says ``n:*`` always includes the highest UID
even if n is larger, which falls out of treating ranges as unordered.

:meth:`SequenceSet.format` is the reverse, for COPYUID/APPENDUID (RFC 4315 section 3):
sorted numbers are folded into ``a:b`` runs.

RFC 5182 (SEARCHRES) adds ``$``, the result saved by ``SEARCH RETURN (SAVE)``: it parses to
:data:`SAVED` (no ranges, ``saved=True``), which only the session can turn into numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["SAVED", "STAR", "SequenceSet", "SequenceSetError"]

STAR = 0  # internal marker for "*" (0 is never a valid message number or UID)


class SequenceSetError(ValueError):
    """The text is not a valid sequence set."""


def _number(text: str) -> int:
    if text == "*":
        return STAR
    if not text.isdigit() or not text.isascii() or text[0] == "0":
        raise SequenceSetError(f"invalid number in sequence set: {text!r}")
    value = int(text)
    if value > 0xFFFFFFFF:
        raise SequenceSetError("number out of range in sequence set")
    return value


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A parsed set: ``ranges`` of (low, high) where either end may be ``STAR`` (0)."""

    ranges: tuple[tuple[int, int], ...]
    #: RFC 5182 ``$``: the session's saved search result, substituted by the session
    saved: bool = False

    @classmethod
    def parse(cls, text: str) -> SequenceSet:
        if not text:
            raise SequenceSetError("empty sequence set")
        ranges: list[tuple[int, int]] = []
        for part in text.split(","):
            first, sep, second = part.partition(":")
            a = _number(first)
            b = _number(second) if sep else a
            ranges.append((a, b))
        return cls(tuple(ranges))

    @classmethod
    def of(cls, numbers: Iterable[int]) -> SequenceSet:
        return cls(tuple((n, n) for n in sorted(set(numbers))))

    @property
    def has_star(self) -> bool:
        return any(STAR in r for r in self.ranges)

    def _bounds(self, max_value: int) -> Iterator[tuple[int, int]]:
        for a, b in self.ranges:
            a = max_value if a == STAR else a
            b = max_value if b == STAR else b
            lo, hi = (a, b) if a <= b else (b, a)
            if hi < 1:
                continue
            yield max(lo, 1), hi

    def resolve(self, max_value: int, *, clamp: bool = True) -> list[int]:
        """Sorted, de-duplicated numbers of the set. ``*`` is ``max_value``; with ``clamp``
        numbers above ``max_value`` are dropped (callers that must reject them, such as
        message sequence numbers in FETCH, check :meth:`exceeds` first)."""
        found: set[int] = set()
        for lo, hi in self._bounds(max_value):
            if clamp:
                hi = min(hi, max_value)
            found.update(range(lo, hi + 1))
        return sorted(found)

    def exceeds(self, max_value: int) -> bool:
        """True when an explicit number is above ``max_value`` (RFC 3501 section 9: a
        message sequence number outside the mailbox is an error)."""
        return any(hi > max_value for _, hi in self._bounds(max_value))

    def contains(self, n: int, max_value: int) -> bool:
        return any(lo <= n <= hi for lo, hi in self._bounds(max_value))

    def __str__(self) -> str:
        if self.saved:
            return "$"

        def fmt(v: int) -> str:
            return "*" if v == STAR else str(v)

        return ",".join(fmt(a) if a == b else f"{fmt(a)}:{fmt(b)}" for a, b in self.ranges)

    @staticmethod
    def format(numbers: Iterable[int]) -> str:
        """``[1, 2, 3, 5]`` -> ``"1:3,5"`` (the order of ``numbers`` is kept, runs of
        consecutive ascending numbers are folded; COPYUID pairs source and destination
        sets by position, so the caller decides the order)."""
        parts: list[str] = []
        start = prev = None
        for n in numbers:
            if prev is not None and n == prev + 1:
                prev = n
                continue
            if start is not None:
                parts.append(str(start) if start == prev else f"{start}:{prev}")
            start = prev = n
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
        return ",".join(parts)


#: ``$`` (RFC 5182 section 2.1): the session's saved search result.
SAVED = SequenceSet((), saved=True)
