"""What may legitimately differ between two IMAP servers, removed before comparing.

Each response of a command becomes one canonical text line:

- the tagged completion keeps its status and response code, not its text;
- untagged ``OK`` without a response code is dropped (server chatter such as Dovecot's
  ``* OK Still here`` during IDLE); ``NO``/``BAD``/``BYE`` keep status and code only;
- CAPABILITY and ID responses become bare keywords: capability lists and their order are
  each server's own (the scripts test capabilities by using them); a CAPABILITY response
  code on OK, and an untagged CAPABILITY outside the CAPABILITY command, are dropped (RFC
  3501 section 7.2.1 lets a server volunteer them or not);
- UIDVALIDITY values (also inside APPENDUID/COPYUID and STATUS) become ``V1``, ``V2``, ...
  in order of first appearance, so "a new UIDVALIDITY" is still checked;
- HIGHESTMODSEQ/NOMODSEQ codes, MODSEQ items and the value of SEARCH's ``(MODSEQ n)`` are
  dropped: each server numbers its own changes (RFC 7162 only asks for a strictly increasing
  sequence per mailbox). CONDSTORE/QRESYNC scripts compare everything else: which messages a
  CHANGEDSINCE FETCH returns, VANISHED sets, [MODIFIED] sets, SEARCH MODSEQ results;
- the RFC 8474 object ids (MAILBOXID code and STATUS item, EMAILID/THREADID FETCH items)
  are dropped: their values are each server's own, and Dovecot 2.3 does not implement
  OBJECTID;
- a UID item in FETCH responses is dropped unless the command names UID (RFC 3501 7.4.2
  lets a server add it to unsolicited FETCH responses; mailwing does, Dovecot does not);
- ``* n RECENT`` is compared in SELECT/EXAMINE answers only (RFC 3501 7.3.2: servers differ
  in when they announce a changed count later, e.g. after EXPUNGE);
- BODY/BODYSTRUCTURE are compared case-insensitively (MIME types, subtypes, parameter names
  and encodings are case-insensitive, RFC 2045 section 5.1);
- INTERNALDATE values within two days of now become ``<date>`` (APPEND without a date
  stamps "now"); dates given to APPEND are compared as the servers answer them;
- FETCH items are sorted by name, flag lists and LIST attributes sorted; LIST extended data
  tags (``CHILDINFO``) compare as astrings, quoted or not;
- untagged responses are sorted between EXPUNGE responses, which keep their places
  (RFC 3501 fixes no order among SELECT's responses, for example).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from tests.differential.wire import Atom, Literal, Value, parse

__all__ = ["Normaliser", "render"]

_DROP_CODES = {"HIGHESTMODSEQ", "NOMODSEQ", "MAILBOXID"}
#: RFC 8474 object ids: each server's own values, and Dovecot 2.3 has no OBJECTID at all
#: (mailwing's are tested in tests/protocol/test_imap_objectid_preview.py)
_DROP_ITEMS = {"HIGHESTMODSEQ", "MAILBOXID", "MODSEQ", "EMAILID", "THREADID"}
_UID_WORD = re.compile(r"\bUID\b", re.IGNORECASE)
_RECENT = re.compile(r"^\* \d+ RECENT$")


def render(value: Value) -> str:
    """Canonical text of a parsed value."""
    if value is None:
        return "NIL"
    if isinstance(value, list):
        return "(" + " ".join(render(v) for v in value) + ")"
    if isinstance(value, Literal):  # a literal and a quoted string are the same string
        return json.dumps(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, Atom):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _upper(value: Value) -> str:
    return str(value).upper() if isinstance(value, str) else ""


class Normaliser:
    """Normalises the responses of one server over one script (UIDVALIDITY symbols are
    numbered per script and server)."""

    def __init__(self) -> None:
        self._validities: dict[str, str] = {}
        self._keep_uid = True

    def validity(self, value: Value) -> str:
        key = str(value)
        if key not in self._validities:
            self._validities[key] = f"V{len(self._validities) + 1}"
        return self._validities[key]

    # -- one command's responses ----------------------------------------------------------
    def responses(self, raw: list[bytes], command: str = "") -> list[str]:
        self._keep_uid = _UID_WORD.search(command) is not None
        lines = [self.response(r) for r in raw]
        if not command.upper().startswith("CAPABILITY"):
            # capabilities may come as a response code or untagged (RFC 3501 7.2.1), or not
            lines = [x for x in lines if x != "* CAPABILITY"]
        if not command.upper().startswith(("SELECT", "EXAMINE")):
            lines = [x for x in lines if x is None or not _RECENT.match(x)]

        tagged = lines[-1:] if raw and not raw[-1].startswith((b"* ", b"+")) else []
        untagged = [x for x in (lines[:-1] if tagged else lines) if x is not None]
        return _sort_runs(untagged) + [x for x in tagged if x is not None]

    def response(self, raw: bytes) -> str | None:
        if raw.startswith(b"+"):
            return "+"
        tokens = parse(raw)
        if not tokens:
            return None
        head = tokens[0]
        tagged = head != "*"
        rest = tokens[1:]
        word = _upper(rest[0]) if rest else ""
        if word in ("OK", "NO", "BAD", "BYE", "PREAUTH"):
            code = self.code(rest[1:], tagged_ok=word in ("OK", "PREAUTH"))
            if code == "DROP" and not tagged:
                return None
            if code == "DROP":
                code = None
            if not tagged and word == "OK" and code is None:
                return None
            return ("TAGGED " if tagged else "* ") + word + (f" [{code}]" if code else "")
        if tagged:
            return "TAGGED " + " ".join(render(v) for v in rest)
        return "* " + self.data(rest)

    def code(self, rest: list[Value], tagged_ok: bool = False) -> str | None:
        if not rest or rest[0] != "[":
            return None
        try:
            end = rest.index("]")
        except ValueError:
            end = len(rest)
        inner = rest[1:end]
        if not inner:
            return ""
        name = _upper(inner[0])
        args = inner[1:]
        if name in _DROP_CODES:
            return "DROP"
        if name == "CAPABILITY":
            return "DROP" if tagged_ok else "CAPABILITY"
        if name == "UIDVALIDITY" and args:
            return f"UIDVALIDITY {self.validity(args[0])}"
        if name in ("APPENDUID", "COPYUID") and args:
            return " ".join([name, self.validity(args[0]), *(render(a) for a in args[1:])])
        if name == "PERMANENTFLAGS" and args and isinstance(args[0], list):
            return f"PERMANENTFLAGS {render(sorted(args[0], key=str))}"
        return " ".join([name, *(render(a) for a in args)])

    def data(self, rest: list[Value]) -> str:
        word = _upper(rest[0]) if rest else ""
        second = _upper(rest[1]) if len(rest) > 1 else ""
        if word in ("CAPABILITY", "ID"):
            return word
        if word == "FLAGS" and len(rest) > 1 and isinstance(rest[1], list):
            return "FLAGS " + render(sorted(rest[1], key=str))
        if word in ("LIST", "LSUB") and len(rest) > 1 and isinstance(rest[1], list):
            return " ".join([word, render(sorted(rest[1], key=lambda a: str(a).lower())),
                             *(render(v) for v in rest[2:4]),
                             *(_tags(v) for v in rest[4:])])
        if word == "STATUS" and len(rest) > 2 and isinstance(rest[2], list):
            return f"STATUS {render(rest[1])} {self.status_items(rest[2])}"
        if second == "FETCH" and len(rest) > 2 and isinstance(rest[2], list):
            return f"{render(rest[0])} FETCH {self.fetch_items(rest[2])}"
        if word == "SEARCH" and rest and isinstance(rest[-1], list) and rest[-1] \
                and _upper(rest[-1][0]) == "MODSEQ":
            return " ".join([*(render(v) for v in rest[:-1]), "(MODSEQ <n>)"])
        return " ".join(render(v) for v in rest)

    def status_items(self, items: list[Value]) -> str:
        pairs = []
        for name, value in zip(items[0::2], items[1::2], strict=False):
            key = _upper(name)
            if key in _DROP_ITEMS:
                continue
            pairs.append(f"{key} {self.validity(value) if key == 'UIDVALIDITY' else render(value)}")
        return "(" + " ".join(sorted(pairs)) + ")"

    def fetch_items(self, items: list[Value]) -> str:
        pairs = []
        for name, value in zip(items[0::2], items[1::2], strict=False):
            key = _upper(name)
            if key in _DROP_ITEMS or (key == "UID" and not self._keep_uid):
                continue
            if key == "INTERNALDATE" and _recent(value):
                text = "<date>"
            elif key == "FLAGS" and isinstance(value, list):
                text = render(sorted(value, key=str))
            elif key in ("BODY", "BODYSTRUCTURE"):
                text = render(value).lower()
            else:
                text = render(value)
            pairs.append(f"{key} {text}")
        return "(" + " ".join(sorted(pairs)) + ")"


def _recent(value: Value) -> bool:
    try:
        when = datetime.strptime(str(value).strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return True  # not a date-time: nothing to compare
    return abs((datetime.now(UTC) - when).total_seconds()) < 2 * 86400


def _tags(value: Value) -> str:
    """LIST extended data (RFC 5258 ``mbox-list-extended``): its tags are astrings, so
    ``CHILDINFO`` and ``"CHILDINFO"`` are the same tag."""
    if isinstance(value, list):
        return "(" + " ".join(_tags(v) for v in value) + ")"
    if isinstance(value, str) and not isinstance(value, Atom):
        return str(value).upper()
    return render(value)


_FIXED = re.compile(r"^\* \d+ EXPUNGE$")


def _sort_runs(lines: list[str]) -> list[str]:
    out: list[str] = []
    run: list[str] = []
    for line in lines:
        if _FIXED.match(line):
            out.extend(sorted(run))
            run = []
            out.append(line)
        else:
            run.append(line)
    out.extend(sorted(run))
    return out
