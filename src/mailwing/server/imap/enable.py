"""ENABLE (RFC 5161) for the extensions that change a session's responses: IMAP4rev2
(RFC 9051), UTF8=ACCEPT (RFC 6855), CONDSTORE and QRESYNC (RFC 7162; QRESYNC implies
CONDSTORE, section 3.2.3).

``* ENABLED`` lists what this command newly turned on, and only what the server knows
(unknown names are ignored, section 3.1). After either of the two, mailbox names are sent as
UTF-8 (:data:`mailwing.proto.imap.wire.UTF8_NAMES`, set in this session's task only) and
``APPEND ... UTF8 (~{n})`` is accepted; after IMAP4rev2 the responses follow
:mod:`mailwing.proto.imap.rev2`.
"""

from __future__ import annotations

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap import wire as pw
from mailwing.proto.imap.rev2 import ENABLEABLE, echo, utf8
from mailwing.server.imap.base import Done, Handler, SessionState

__all__ = ["HANDLERS"]


_KNOWN = (*ENABLEABLE, "CONDSTORE", "QRESYNC")
_IMPLIES = {"QRESYNC": ("QRESYNC", "CONDSTORE")}


async def enable(s: SessionState, cmd: c.Enable) -> Done:
    new = [cap for cap in dict.fromkeys(cmd.capabilities)
           if cap in _KNOWN and cap not in s.enabled]
    for cap in new:
        s.enabled.update(_IMPLIES.get(cap, (cap,)))
    if utf8(s.enabled):
        pw.UTF8_NAMES.set(True)
    s.send(responses.enabled([echo(cap) for cap in new]))
    return Done("OK", texts.ENABLE_OK)


HANDLERS: dict[type[c.Command], Handler] = {c.Enable: enable}
