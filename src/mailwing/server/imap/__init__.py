"""IMAP command handlers, one module per group, joined into one table keyed by command class.

Groups: ``auth`` (any state and not authenticated, plus ID/ENABLE/NAMESPACE), ``mailboxes``
(CREATE/DELETE/RENAME/SUBSCRIBE/LIST/LSUB), ``select`` (SELECT/EXAMINE/STATUS/APPEND/CHECK/
CLOSE/UNSELECT), ``fetch``, ``search``, ``sort`` (SORT/THREAD), ``store`` (STORE/COPY/MOVE/
EXPUNGE), ``idle``, ``append`` (APPEND with MULTIAPPEND/CATENATE), ``compress``
(COMPRESS=DEFLATE), ``quota``, ``enable`` (ENABLE).
Whether a command is allowed in the current state is decided by
:func:`mailwing.proto.imap.states.allowed` before a handler runs (RFC 3501 section 3).

A handler is glue: it turns a parsed command into calls on ``services/imap_*`` (the selected
mailbox view, FETCH items, SEARCH, mailbox names: everything that is IMAP semantics but needs
no socket, and is unit-tested there) and on storage, and queues the responses. See the
:mod:`mailwing.services` docstring for where each piece lives.
"""

from __future__ import annotations

from mailwing.proto.imap.commands import Command
from mailwing.server.imap import (
    append,
    auth,
    compress,
    enable,
    fetch,
    idle,
    mailboxes,
    quota,
    search,
    select,
    sort,
    store,
)
from mailwing.server.imap.base import Handler

__all__ = ["HANDLERS"]

HANDLERS: dict[type[Command], Handler] = {
    **auth.HANDLERS, **mailboxes.HANDLERS, **select.HANDLERS, **fetch.HANDLERS,
    **search.HANDLERS, **sort.HANDLERS, **store.HANDLERS, **idle.HANDLERS, **append.HANDLERS,
    **compress.HANDLERS, **quota.HANDLERS, **enable.HANDLERS,
}
