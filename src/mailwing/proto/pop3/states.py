"""The POP3 state table (RFC 1939 section 3), as data.

Why: "which command is allowed when" is decided here and only here. The core looks up
``(state, type(command))``; a missing entry is the client's mistake and gets
``-ERR <CMD> not allowed in the <state> state``. Extensions slot in where their RFCs put
them: CAPA in every state (RFC 2449 section 5), AUTH in AUTHORIZATION (RFC 5034 section 4),
STLS in AUTHORIZATION only (RFC 2595 section 4) -- whether STLS is still *offered* (TLS not
yet active) is checked by its handler, because that is a property of the connection, not of
the protocol state.

The UPDATE state has no commands: it is entered by QUIT from TRANSACTION and left by closing
the connection, so anything pipelined behind QUIT is never acted upon (RFC 1939 section 6).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from mailwing.proto.pop3 import commands as c

__all__ = ["ALLOWED", "State"]


class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


ALLOWED: Mapping[State, frozenset[type[c.Command]]] = {
    State.AUTHORIZATION: frozenset(
        {c.User, c.Pass, c.Auth, c.Apop, c.Stls, c.Capa, c.Quit}
    ),
    State.TRANSACTION: frozenset(
        {c.Stat, c.List, c.Retr, c.Top, c.Uidl, c.Dele, c.Noop, c.Rset, c.Capa, c.Quit}
    ),
    State.UPDATE: frozenset(),
}
