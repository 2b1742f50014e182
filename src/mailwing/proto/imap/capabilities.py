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
LIST-EXTENDED is not advertised: only the SPECIAL-USE subset of RFC 5258 is understood.
"""

from __future__ import annotations

from mailwing.proto.common.sasl import MECHANISMS

__all__ = ["capabilities"]

_EXTENSIONS = (
    "IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT",
    "UIDPLUS", "MOVE", "SPECIAL-USE", "CHILDREN", "CONDSTORE", "QRESYNC",
)


def capabilities(tls_active: bool, plaintext_allowed: bool, authenticated: bool) -> list[str]:
    caps = list(_EXTENSIONS)
    if authenticated:
        return caps
    if not tls_active:
        caps.append("STARTTLS")
    if tls_active or plaintext_allowed:
        caps += [f"AUTH={m}" for m in MECHANISMS]
    else:
        caps.append("LOGINDISABLED")
    return caps
