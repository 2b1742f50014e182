"""Base subject extraction and the i;ascii-casemap collation (RFC 5256 section 2.1, RFC 4790).

Why here: SORT SUBJECT, THREAD ORDEREDSUBJECT and THREAD REFERENCES (step 6) all compare
messages by the subject with reply/forward decorations removed, and REFERENCES also needs to
know whether anything of the kind was removed. Pure text work, stdlib only.

The caller hands over the subject with RFC 2047 encoded-words already decoded (step 1 of
section 2.1 starts from the UTF-8 form). The steps below follow the RFC's numbering:

1. tabs and line breaks become spaces, runs of spaces become one;
2. trailing ``(fwd)`` and white space are removed, repeatedly;
3. a leading ``subj-leader`` is removed (``[blob] re:``, ``fw:``, ``fwd [x]:`` or one space);
4. a leading ``[blob]`` is removed when something is left after it;
5. 3 and 4 repeat until nothing changes;
6. ``[fwd: ... ]`` around the whole text is removed and the steps repeat from 2.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["base_subject", "casemap"]

_SPACES = re.compile(r"[ \t\r\n]+")
_TRAILER = re.compile(r"(?:\(fwd\)| )$", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\] *"
_REFWD = re.compile(rf"^(?:{_BLOB})*(?:re|fwd?) *(?:{_BLOB})?:", re.IGNORECASE)
_LEADING_BLOB = re.compile(rf"^{_BLOB}")
_MAX_ROUNDS = 1000  # each round removes at least one character; this only bounds bad input
_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def casemap(text: str) -> bytes:
    """The i;ascii-casemap sort key (RFC 4790 section 9.2): ASCII letters upper-cased, then
    compared as octets (UTF-8)."""
    return text.translate(_UPPER).encode("utf-8", "surrogatepass")


@lru_cache(maxsize=65536)  # pure; SORT and THREAD ask again for every message and round
def base_subject(subject: str | None) -> tuple[str, bool]:
    """(base subject, whether a reply/forward marker was removed) of a decoded subject."""
    text = _SPACES.sub(" ", subject or "")
    is_reply = False
    for _ in range(_MAX_ROUNDS):
        # step 2: trailers
        while True:
            m = _TRAILER.search(text)
            if m is None:
                break
            if m.group(0) != " ":
                is_reply = True
            text = text[: m.start()]
        # steps 3-5: leaders and blobs
        while True:
            m = _REFWD.match(text)
            if m is not None:
                text = text[m.end():]
                is_reply = True
                continue
            if text.startswith(" "):
                text = text[1:]
                continue
            m = _LEADING_BLOB.match(text)
            if m is not None and text[m.end():]:
                text = text[m.end():]
                continue
            break
        # step 6: [fwd: ...]
        if text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            is_reply = True
            continue
        break
    return text, is_reply
