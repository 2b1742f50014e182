"""What IMAP command handlers share: the session state they read and change, and how they
answer.

Why: handlers (one module per command group, see ``server/imap/__init__``) must not know
sockets or each other. Each receives the :class:`SessionState` and its typed command, queues
untagged responses with :meth:`SessionState.send` (a streamed FETCH body flushes them and
writes to the connection itself), and returns a :class:`Done` (the tagged completion) or
raises :class:`Refusal`, an error that knows its wire form (``NO [TRYCREATE] ...``,
``BAD ...``). The session loop writes the tagged line, after the untagged updates RFC 3501
section 7.4.1 allows at that moment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from mailwing.model import User
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap.reader import ImapReader
from mailwing.proto.imap.responses import Code
from mailwing.proto.imap.seqset import STAR, SequenceSet
from mailwing.server.connection import Connection
from mailwing.services.context import AppContext
from mailwing.services.imap_selected import (
    Exists,
    Expunged,
    FlagsChanged,
    FlagsListed,
    Recent,
    SelectedView,
    Update,
    refresh,
    wire_flags,
)
from mailwing.storage.errors import NotFound, StorageError

__all__ = [
    "Done", "Handler", "Refusal", "SessionState", "Status", "flags_response", "list_keywords",
    "resolve", "send_expunges", "sync_view", "unavailable", "update_response",
]

Status = Literal["OK", "NO", "BAD"]


@dataclass(frozen=True, slots=True)
class Done:
    """The tagged completion of a command."""

    status: Status = "OK"
    text: str = ""
    code: str | None = None
    sent: bool = False  # the handler wrote it already (STARTTLS must answer before the handshake)


class Refusal(Exception):
    """A command failed in a way the client is told about with a tagged NO or BAD."""

    def __init__(self, status: Status, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.done = Done(status, text, code)


def unavailable() -> Refusal:
    """Storage failed temporarily (RFC 5530 ``[UNAVAILABLE]``)."""
    return Refusal("NO", texts.STORAGE_UNAVAILABLE, "UNAVAILABLE")


@dataclass
class SessionState:
    """The mutable state of one IMAP session, as handlers see it."""

    ctx: AppContext
    conn: Connection
    reader: ImapReader
    user: User | None = None
    view: SelectedView | None = None
    logout: bool = False
    auth_failures: int = 0
    enabled: set[str] = field(default_factory=set)  # by ENABLE (RFC 5161)
    #: turned on by a command that implies it (RFC 7162 section 3.1), not by ENABLE: a later
    #: ``ENABLE CONDSTORE`` still answers ``* ENABLED CONDSTORE``
    implied: set[str] = field(default_factory=set)
    #: set when the session must end after this command (``* BYE`` text already queued)
    closing: bool = False
    #: set when the session must end with ``* BYE bye`` instead of the tagged completion
    #: (the selected mailbox was deleted by another session)
    bye: str | None = None
    #: set by a handler that caught up with storage itself during this command and changed
    #: nothing since but through its own view (EXPUNGE; STORE and APPEND to the selected
    #: mailbox, in their own transaction): the catch-up after the command is then skipped,
    #: saving a database round; changes committed meanwhile by others are reported after
    #: the next command, as if they had come a moment later
    caught_up: bool = False
    #: reads one raw line from the client (AUTHENTICATE continuations, IDLE's DONE)
    read_line: Callable[[], Awaitable[bytes]] | None = None

    @property
    def authenticated(self) -> bool:
        return self.user is not None

    def send(self, data: bytes) -> None:
        """Queue one response on the connection (:meth:`Connection.send`): written with the
        rest of its group when the session reads next, flushes, or starts TLS."""
        self.conn.send(data)

    async def flush(self) -> None:
        await self.conn.flush()

    def selected(self) -> SelectedView:
        assert self.view is not None  # the state table only lets selected-state commands in
        return self.view

    def require_user(self) -> User:
        assert self.user is not None
        return self.user

    # -- RFC 7162: extensions the client turned on (ENABLE, or a command that implies it) --
    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled or "CONDSTORE" in self.implied

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    def enable_condstore(self) -> None:
        """RFC 7162 section 3.1: a CONDSTORE-enabling command was used."""
        self.implied.add("CONDSTORE")


Handler = Callable[[SessionState, Any], Awaitable[Done]]


def resolve(view: SelectedView, seqset: SequenceSet, *, by_uid: bool) -> list[tuple[int, int]]:
    """(seq, uid) pairs of a sequence set in the session's numbering (RFC 3501 section 9:
    a message number beyond the mailbox is an error, BAD; a UID that does not exist is
    simply not matched, section 6.4.8)."""
    if seqset.saved:  # RFC 5182 "$": the same messages whether used by UID or number
        found = ((view.seq_of(u), u) for u in sorted(view.saved_uids))
        return [(seq, u) for seq, u in found if seq is not None]
    star = view.star(by_uid=by_uid)
    if not by_uid and not seqset.has_star and seqset.exceeds(view.exists):
        raise Refusal("BAD", texts.BAD_MESSAGE_NUMBER)
    ranges = [(star if a == STAR else a, star if b == STAR else b) for a, b in seqset.ranges]
    return view.resolve(ranges, by_uid=by_uid)


def flags_response(view: SelectedView, seq: int, uid: int, *, with_uid: bool,
                   condstore: bool, flags: bool = True) -> bytes:
    """``* seq FETCH ([UID u] [FLAGS (...)] [MODSEQ (m)])`` for a flag change: once CONDSTORE
    is on, MODSEQ is always included (RFC 7162 section 3.1.4); callers ask for UID for UID
    commands and once QRESYNC is on. ``flags=False``: a ``.SILENT`` STORE under CONDSTORE,
    which still reports the new mod-sequence (section 3.1.3)."""
    items = [("UID", b"%d" % uid)] if with_uid else []
    if flags:
        items.append(("FLAGS", view.wire_flags_of(uid)))
    if condstore:
        items.append(("MODSEQ", b"(%d)" % view.entries[uid].modseq))
    return responses.fetch(seq, items)


def update_response(update: Update, view: SelectedView | None = None,
                    condstore: bool = False) -> bytes:
    """The wire form of one pending update of the selected view."""
    match update:
        case Expunged(seq=seq):
            return responses.expunge(seq)
        case Exists(count=n):
            return responses.exists(n)
        case Recent(count=n):
            return responses.recent(n)
        case FlagsChanged(seq=seq, uid=uid, flags=flags):
            if view is not None and uid in view.entries:
                return flags_response(view, seq, uid, with_uid=True, condstore=condstore)
            return responses.fetch(seq, [("UID", b"%d" % uid), ("FLAGS", wire_flags(flags))])
        case FlagsListed(flags=flags, read_only=read_only):
            permanent = () if read_only else (*flags, "\\*")
            return responses.flags(flags) + responses.ok(
                "*", texts.PERMANENTFLAGS, Code.permanentflags(permanent))
    raise TypeError(update)


def list_keywords(s: SessionState, view: SelectedView, flag_sets: Iterable[Iterable[str]]
                  ) -> None:
    """Queue ``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` if ``flag_sets`` carry a keyword the
    client was not told of (RFC 3501 section 7.2.6), before the FETCH that carries it."""
    listed = view.list_keywords(flag_sets)
    if listed is not None:
        s.send(update_response(listed))


def send_expunges(s: SessionState, gone: list[Expunged]) -> None:
    """``* n EXPUNGE`` each, or one ``* VANISHED uids`` once QRESYNC is enabled (RFC 7162
    section 3.2.10: VANISHED replaces EXPUNGE for the rest of the session)."""
    if not gone:
        return
    if s.qresync:
        s.send(responses.vanished(g.uid for g in gone))
    else:
        for g in gone:
            s.send(responses.expunge(g.seq))


async def sync_view(s: SessionState, *, allow_expunge: bool) -> None:
    """Catch up with other sessions and queue what the client may be told now (RFC 3501
    section 7.4.1: no EXPUNGE while FETCH, STORE or SEARCH runs). A storage failure here only
    delays the news; the command's own result stands. With CONDSTORE on, flag changes wait
    while expunges must (RFC 7162 section 3.2), and expunges are followed by
    ``* OK [HIGHESTMODSEQ n]`` once nothing is pending, so the client's saved mod-sequence
    covers them."""
    view = s.view
    caught_up, s.caught_up = s.caught_up, False
    if view is None:
        return
    try:
        if not caught_up:
            await refresh(s.ctx.storage, view)
    except NotFound:
        # Deleted by another session: its numbering means nothing any more. RFC 3501 leaves
        # the answer open; like Dovecot, end the session (BYE, section 7.1.5).
        s.view = None
        s.bye = texts.BYE_MAILBOX_DELETED
        s.closing = True
        return
    except StorageError as exc:
        s.conn.log("refresh failed", error=str(exc))
    updates = view.take_updates(allow_expunge=allow_expunge, hold_flags=s.condstore)
    send_expunges(s, [u for u in updates if isinstance(u, Expunged)])
    for update in updates:
        if not isinstance(update, Expunged):
            s.send(update_response(update, view, s.condstore))
    if s.condstore and any(isinstance(u, Expunged) for u in updates) and not view.has_pending:
        s.send(responses.ok("*", texts.HIGHESTMODSEQ, Code.highestmodseq(view.modseq)))
