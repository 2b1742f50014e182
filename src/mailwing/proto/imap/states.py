"""The IMAP connection states (RFC 3501 section 3) and which commands each allows, as data.

Why: "is this command allowed now" is decided here and only here; the session answers
``BAD`` with ``texts.NOT_ALLOWED_STATE`` when :func:`allowed` says no. Placement follows
RFC 3501 section 6 (6.1 any state, 6.2 not authenticated, 6.3 authenticated, 6.4 selected)
and the extensions: IDLE (RFC 2177) in authenticated and selected, NAMESPACE (RFC 2342),
ENABLE (RFC 5161, authenticated only: it must come before SELECT), ID (RFC 2971, any
state), UNSELECT (RFC 3691) and MOVE (RFC 6851) in selected. The LOGOUT state accepts
nothing. Whether STARTTLS or LOGIN is *offered* (TLS active, plaintext policy) is a property
of the connection, checked by the session against ``capabilities``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from mailwing.proto.imap import commands as c

__all__ = ["ALLOWED", "State", "allowed"]


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


_ANY: frozenset[type[c.Command]] = frozenset({c.Capability, c.Noop, c.Logout, c.Id})
# RFC 4978 COMPRESS: after login (section 3: a server may refuse it before); RFC 9208 QUOTA.
_APPEND_TRANSPORT: frozenset[type[c.Command]] = frozenset({
    c.Compress, c.GetQuota, c.GetQuotaRoot, c.SetQuota,
})
_NOT_AUTH = _ANY | {c.StartTls, c.Authenticate, c.Login}
_AUTH = _ANY | {
    c.Select, c.Create, c.Delete, c.Rename, c.Subscribe, c.Unsubscribe, c.List, c.Lsub,
    c.Status, c.Append, c.Idle, c.Namespace, *_APPEND_TRANSPORT,
}
_SELECTED = _AUTH | {
    c.Check, c.Close, c.Unselect, c.Expunge, c.Search, c.Fetch, c.Store, c.Copy, c.Move,
    c.Sort, c.Thread,
}

ALLOWED: Mapping[State, frozenset[type[c.Command]]] = {
    State.NOT_AUTHENTICATED: _NOT_AUTH,
    State.AUTHENTICATED: _AUTH | {c.Enable},
    State.SELECTED: _SELECTED,
    State.LOGOUT: frozenset(),
}


def allowed(state: State, command: c.Command | type[c.Command]) -> bool:
    cls = command if isinstance(command, type) else type(command)
    return cls in ALLOWED[state]
