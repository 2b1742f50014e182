"""The SMTP command sequence (RFC 5321 sections 3.3, 4.1.4 and 4.3.2), as data.

Why a table: "503 need MAIL" and friends are decided here and only here. The core looks up
``(state, type(command))``; a miss is answered with the reply named in ``REFUSAL`` (or a
generic ``503 5.5.1``). Properties of the *connection* rather than the dialogue (TLS active,
authenticated, login allowed) are checked by the handlers, like POP3's STLS.

States:

- ``CONNECTED``: greeting sent, no HELO/EHLO yet. RFC 5321 4.1.4 wants EHLO/HELO before a
  transaction; STARTTLS and AUTH are EHLO extensions, so they wait for it too.
- ``READY``: greeted, no transaction. ``MAIL`` starts one.
- ``MAIL``: a sender was accepted. ``RCPT`` follows.
- ``RCPT``: at least one recipient accepted. ``DATA`` or ``BDAT`` moves the body.
- ``BDAT``: a non-LAST BDAT chunk was accepted (RFC 3030 section 2): only more BDAT, RSET,
  NOOP and QUIT until BDAT LAST.

DATA's body is not a state here: while it is read the core is in its body reader and no
command is parsed at all (so nothing inside the body can ever act as a command).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from mailwing.proto.smtp import commands as c
from mailwing.proto.smtp.replies import R, Reply

__all__ = ["ALLOWED", "REFUSAL", "State"]


class State(enum.Enum):
    CONNECTED = "connected"
    READY = "ready"
    MAIL = "mail"
    RCPT = "rcpt"
    BDAT = "bdat"


_ANYTIME = frozenset({c.Helo, c.Ehlo, c.Rset, c.Noop, c.Help, c.Vrfy, c.Expn, c.Quit})

ALLOWED: Mapping[State, frozenset[type[c.Command]]] = {
    State.CONNECTED: _ANYTIME,
    State.READY: _ANYTIME | {c.StartTls, c.Auth, c.Mail},
    State.MAIL: _ANYTIME | {c.Rcpt, c.StartTls, c.Auth},
    State.RCPT: _ANYTIME | {c.Rcpt, c.Data, c.Bdat, c.StartTls, c.Auth},
    State.BDAT: frozenset({c.Bdat, c.Rset, c.Noop, c.Quit}),
}

#: Specific 503 replies for the common mistakes; other misses get ``R.bad_sequence``.
REFUSAL: Mapping[tuple[State, type[c.Command]], Reply] = {
    **{(State.CONNECTED, cmd): R.NEED_HELO
       for cmd in (c.Mail, c.Rcpt, c.Data, c.Bdat, c.StartTls, c.Auth)},
    (State.READY, c.Rcpt): R.NEED_MAIL,
    (State.READY, c.Data): R.NEED_MAIL,
    (State.READY, c.Bdat): R.NEED_MAIL,
    (State.MAIL, c.Mail): R.NESTED_MAIL,
    (State.RCPT, c.Mail): R.NESTED_MAIL,
    (State.MAIL, c.Data): R.NEED_RCPT,
    (State.MAIL, c.Bdat): R.NEED_RCPT,
    **{(State.BDAT, cmd): R.BDAT_IN_PROGRESS
       for cmd in (c.Helo, c.Ehlo, c.Help, c.Vrfy, c.Expn, c.Mail, c.Rcpt, c.StartTls,
                   c.Auth)},
    (State.BDAT, c.Data): R.DATA_AFTER_BDAT,
}


def refusal(state: State, command: type[c.Command], name: str) -> Reply:
    return REFUSAL.get((state, command)) or R.bad_sequence(name)
