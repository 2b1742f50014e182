"""What changes for a session that enabled IMAP4rev2 (RFC 9051) or UTF8=ACCEPT (RFC 6855).

Why one module: RFC 9051 Appendix E lists the differences from IMAP4rev1; the ones that are
about responses live here, as small pure functions, and the handlers ask :func:`rev2` /
:func:`utf8` of the session's enabled set. Covered (Appendix E item: where):

- \\Recent and the RECENT response are gone (E.1/6.3.1): no ``* n RECENT`` in SELECT, EXAMINE
  or unsolicited updates, and no ``\\Recent`` in FLAGS (``services.imap_selected`` does not
  track it for such a session);
- SELECT/EXAMINE answer ``* LIST`` with the mailbox name and no ``[UNSEEN n]`` (6.3.2), and
  ``* OK [CLOSED]`` when a mailbox was selected before (7.1, from QRESYNC);
- SEARCH answers with ESEARCH (E.4, RFC 4731 form): :func:`esearch` (``ALL`` by default, or
  the ``RETURN (MIN MAX COUNT ALL)`` options asked for);
- mailbox names are UTF-8 (E.2, RFC 6855): ``wire.UTF8_NAMES``;
- BINARY, literal8 APPEND, MOVE, UIDPLUS, UNSELECT, NAMESPACE, ENABLE, IDLE, SASL-IR, ID,
  SPECIAL-USE and LITERAL+ (E.3, items now in the base protocol) are implemented for every
  session anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from mailwing.proto.imap.seqset import SequenceSet

__all__ = ["ENABLEABLE", "esearch", "rev2", "utf8"]

#: What ENABLE can turn on (RFC 5161), upper-cased as the parser gives them.
ENABLEABLE = ("IMAP4REV2", "UTF8=ACCEPT")
_ECHO = {"IMAP4REV2": "IMAP4rev2", "UTF8=ACCEPT": "UTF8=ACCEPT"}


def echo(cap: str) -> str:
    """The capability as ``* ENABLED`` writes it."""
    return _ECHO.get(cap, cap)


def rev2(enabled: Collection[str]) -> bool:
    return "IMAP4REV2" in enabled


def utf8(enabled: Collection[str]) -> bool:
    return "UTF8=ACCEPT" in enabled or "IMAP4REV2" in enabled


def _quote_tag(tag: str) -> str:
    return '"' + tag.replace("\\", "\\\\").replace('"', '\\"') + '"'


def esearch(tag: str, numbers: Sequence[int], *, uid: bool,
            options: Sequence[str] | None = None) -> bytes:
    """``* ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [COUNT n] [ALL set]`` (RFC 4731 section 3,
    RFC 9051 section 7.3.4); MIN/MAX/ALL are left out when nothing matched."""
    wanted = {o.upper() for o in options} if options else {"ALL"}
    if not wanted - {"SAVE"}:
        wanted.add("ALL")
    out = f"* ESEARCH (TAG {_quote_tag(tag)})"
    if uid:
        out += " UID"
    ordered = sorted(numbers)
    if ordered and "MIN" in wanted:
        out += f" MIN {ordered[0]}"
    if ordered and "MAX" in wanted:
        out += f" MAX {ordered[-1]}"
    if "COUNT" in wanted:
        out += f" COUNT {len(ordered)}"
    if ordered and "ALL" in wanted:
        out += f" ALL {SequenceSet.format(ordered)}"
    return out.encode("ascii") + b"\r\n"
