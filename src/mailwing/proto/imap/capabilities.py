"""What the server advertises in CAPABILITY (RFC 3501 section 6.1.1, 7.2.1).

Why: the list must say exactly what is implemented, and it changes with the connection:
before TLS, ``STARTTLS`` is offered (RFC 3501 6.2.1) and, when plaintext logins are not
allowed, ``LOGINDISABLED`` replaces ``AUTH=PLAIN`` (RFC 3501 6.2.3, RFC 2595 section 3.2).
After login the AUTH=, STARTTLS and LOGINDISABLED items are dropped (RFC 3501 7.2.1 allows
the list to change; the session sends it in the ``[CAPABILITY ...]`` code of the tagged OK).
The extensions are listed in both lists: some clients read capabilities only once.

Extensions listed are those whose syntax ``parser.py`` accepts and the session implements:
LITERAL+ (7888), SASL-IR (4959), ID (2971), ENABLE (5161), IDLE (2177), NAMESPACE (2342),
UNSELECT (3691), UIDPLUS (4315), MOVE (6851), SPECIAL-USE (6154), CHILDREN (3348),
CONDSTORE and QRESYNC (7162).
The search/sort/list extensions are listed in ``extensions.py`` (one place for that group).

Append and transport extensions: MULTIAPPEND (3502), CATENATE (4469), BINARY (3516),
COMPRESS=DEFLATE (4978; left out once compression is active), QUOTA with QUOTA=RES-STORAGE
(9208), UTF8=ACCEPT (6855), APPENDLIMIT=n (7889, the configured maximum message size);
IMAP4rev2 (9051) beside IMAP4rev1, its differences after ``ENABLE IMAP4rev2`` (``rev2.py``).
"""

from __future__ import annotations

from mailwing.proto.common.sasl import MECHANISMS
from mailwing.proto.imap.extensions import SEARCH_EXTENSIONS

__all__ = ["capabilities"]

_EXTENSIONS = (
    "IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE",
    "UNSELECT", "UIDPLUS", "MOVE", "SPECIAL-USE", "CHILDREN", "CONDSTORE", "QRESYNC",
    *SEARCH_EXTENSIONS,
)
_APPEND_EXTENSIONS = (
    "MULTIAPPEND", "CATENATE", "BINARY", "QUOTA", "QUOTA=RES-STORAGE", "UTF8=ACCEPT",
)


def capabilities(tls_active: bool, plaintext_allowed: bool, authenticated: bool, *,
                 append_limit: int | None = None, compressed: bool = False) -> list[str]:
    caps = [*_EXTENSIONS, *_APPEND_EXTENSIONS]
    if not compressed:
        caps.append("COMPRESS=DEFLATE")
    if append_limit is not None:
        caps.append(f"APPENDLIMIT={append_limit}")
    if authenticated:
        return caps
    if not tls_active:
        caps.append("STARTTLS")
    if tls_active or plaintext_allowed:
        caps += [f"AUTH={m}" for m in MECHANISMS]
    else:
        caps.append("LOGINDISABLED")
    return caps
