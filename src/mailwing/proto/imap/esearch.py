"""ESEARCH results (RFC 4731), the saved result of SEARCHRES (RFC 5182) and ESORT's use of
them (RFC 5267 section 3.2).

Why pure: which result options were asked decides both the ``* ESEARCH`` line and what
``$`` will mean afterwards; both are simple functions of the matched numbers.

- ``* ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [ALL set] [COUNT n]``; MIN, MAX and ALL are
  left out when nothing matched, COUNT never is (RFC 4731 section 3.1).
- With SAVE alone no ESEARCH line is sent (RFC 5182 section 2.4).
- What SAVE keeps (RFC 5182 section 2.4): the MIN and/or MAX message when only those are
  combined with it, every match otherwise.
- For ESORT, ``numbers`` is in sort order: MIN is the first, MAX the last and ALL keeps the
  order (runs are folded only where numbers ascend by one).
"""

from __future__ import annotations

from collections.abc import Sequence

from mailwing.proto.imap import wire
from mailwing.proto.imap.seqset import SequenceSet

__all__ = ["esearch", "saved_result"]


def esearch(tag: str, numbers: Sequence[int], options: Sequence[str], *, uid: bool,
            sort_order: bool = False) -> bytes | None:
    """The ``* ESEARCH`` line (CRLF included), or None when only SAVE was asked."""
    wanted = [o for o in options if o != "SAVE"]
    if not wanted:
        return None
    parts = [b"* ESEARCH (TAG " + wire.quoted(tag) + b")"]
    if uid:
        parts.append(b"UID")
    if numbers:
        first = numbers[0] if sort_order else min(numbers)
        last = numbers[-1] if sort_order else max(numbers)
        if "MIN" in wanted:
            parts.append(b"MIN %d" % first)
        if "MAX" in wanted:
            parts.append(b"MAX %d" % last)
        if "ALL" in wanted:
            ordered = numbers if sort_order else sorted(numbers)
            parts.append(b"ALL " + SequenceSet.format(ordered).encode("ascii"))
    if "COUNT" in wanted:
        parts.append(b"COUNT %d" % len(numbers))
    return b" ".join(parts) + b"\r\n"


def saved_result(numbers: Sequence[int], options: Sequence[str], *,
                 sort_order: bool = False) -> list[int]:
    """The numbers ``$`` refers to after ``RETURN (SAVE ...)``."""
    if not numbers:
        return []
    rest = {o for o in options if o != "SAVE"}
    if not rest or not rest <= {"MIN", "MAX"}:
        return list(numbers)
    first = numbers[0] if sort_order else min(numbers)
    last = numbers[-1] if sort_order else max(numbers)
    out = []
    if "MIN" in rest:
        out.append(first)
    if "MAX" in rest:
        out.append(last)
    return sorted(set(out))
