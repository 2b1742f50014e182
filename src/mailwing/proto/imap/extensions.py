"""The search, sort, thread, list and object-id extensions the server implements, as they
appear in CAPABILITY.

Why a module of its own: ``capabilities.py`` is shared by every group of extensions; this
group adds its names here, each only once it is complete and tested:
ESEARCH (RFC 4731), SEARCHRES (RFC 5182), SORT and THREAD (RFC 5256), SORT=DISPLAY
(RFC 5957), ESORT (RFC 5267; CONTEXT=SORT is not implemented and not advertised), WITHIN
(RFC 5032), STATUS=SIZE (RFC 8438), OBJECTID (RFC 8474), PREVIEW (RFC 8970), LIST-EXTENDED
(RFC 5258) and LIST-STATUS (RFC 5819).
"""

from __future__ import annotations

__all__ = ["SEARCH_EXTENSIONS"]

SEARCH_EXTENSIONS: tuple[str, ...] = (
    "ESEARCH", "SEARCHRES", "SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT",
    "THREAD=REFERENCES", "WITHIN", "STATUS=SIZE", "OBJECTID", "PREVIEW",
    "LIST-EXTENDED", "LIST-STATUS",
)
