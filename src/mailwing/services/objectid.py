"""Object identifiers of RFC 8474 (OBJECTID): MAILBOXID and EMAILID.

Why derived, not stored: both can be computed from what storage already keeps stable.

- MAILBOXID: UIDVALIDITY values come from one database-wide counter (unique across every
  mailbox ever created), RENAME keeps them, and a mailbox created again under an old name
  gets a new one: exactly the lifetime RFC 8474 section 4.1 asks of a MAILBOXID. So the id
  is ``M`` + the UIDVALIDITY in hex; no schema change is needed.
- EMAILID: contents are stored once by SHA-256 and never change, and COPY/MOVE share the
  content, so ``E`` + the first 24 hex digits (96 bits) of the digest gives the same id to
  a message and its copies (section 5.1), and to an identical message delivered twice,
  which the RFC allows.
- THREADID is not computed persistently; FETCH answers ``THREADID NIL`` (section 5.2 allows
  it) and ``SEARCH THREADID x`` matches nothing.
"""

from __future__ import annotations

from mailwing.model import ContentInfo, Mailbox

__all__ = ["email_id", "mailbox_id"]


def mailbox_id(box: Mailbox) -> str:
    return f"M{box.uidvalidity:08x}"


def email_id(content: ContentInfo) -> str:
    return "E" + content.sha256[:24]
