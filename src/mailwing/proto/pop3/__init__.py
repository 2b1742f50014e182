"""Sans-IO POP3 (RFC 1939 with RFC 2449 CAPA, RFC 5034 SASL AUTH, RFC 2595 STLS).

``core`` is the state machine, ``commands`` the parser, ``states`` the state table, ``replies``
the reply catalogue, ``events`` the driver interface and ``encode`` the streaming dot-stuffer
for RETR/TOP. The asyncio driver is :mod:`mailwing.server.pop3_session`.
"""

from mailwing.proto.pop3.core import Pop3Core, Pop3UsageError
from mailwing.proto.pop3.encode import DotStuffer, TopLimiter
from mailwing.proto.pop3.events import AuthFailure, MaildropItem
from mailwing.proto.pop3.states import State

__all__ = [
    "AuthFailure", "DotStuffer", "MaildropItem", "Pop3Core", "Pop3UsageError", "State",
    "TopLimiter",
]
