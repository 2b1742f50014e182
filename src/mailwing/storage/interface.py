"""The one storage interface that every backend implements (SQLite and PostgreSQL).

It is deliberately narrow: backends store and fetch; protocol semantics (POP3 message numbers,
IMAP sequence numbers, \\Recent, pending updates) live in services and sessions above it. Every
method is a single transaction; every driver error surfaces as a :mod:`mailwing.storage.errors`
exception. The same contract test suite (``tests/storage``) runs against each backend.

Message contents are content-addressed: a :class:`ContentWriter` streams bytes in (so a 50 MB
message never sits whole in memory), makes them durable (fsync) and returns a
:class:`~mailwing.model.ContentInfo`; :meth:`Storage.append` then links that content into one or
more mailboxes in one transaction, taking each mailbox's next UID inside that transaction so
that concurrent deliveries from several processes never reuse or reorder UIDs.

The records are :class:`typing.NamedTuple` classes, as in :mod:`mailwing.model` (no per-class
code generation at import, which ``mailwing deliver`` would pay on every message).
No ``from __future__ import annotations`` here: a NamedTuple compiles each annotation
that is a string (as a ForwardRef) when its class is made; real ones cost nothing.
"""

from collections.abc import AsyncIterator, Collection, Hashable, Sequence
from datetime import datetime
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from mailwing.model import ContentInfo, Domain, Mailbox, MailEntry, User, UserUsage

__all__ = [
    "AdminToken",
    "Bounce",
    "ContentWriter",
    "Delivery",
    "FlagMode",
    "MailboxCounts",
    "Outbound",
    "QueueStatus",
    "QueuedMessage",
    "QueuedRecipient",
    "RecipientLookup",
    "RecipientOutcome",
    "Storage",
    "StorageStats",
]

FlagMode = Literal["add", "remove", "replace"]
#: A queued recipient: not tried yet, to be retried, done, or given up (a DSN was made).
QueueStatus = Literal["pending", "deferred", "delivered", "failed"]


class AdminToken(NamedTuple):
    """A bearer token of the admin HTTP API (only its SHA-256 digest is stored)."""

    id: int
    name: str
    token_hash: str  # hex SHA-256 of the token
    created_at: float  # UNIX seconds
    last_used_at: float | None  # updated at most about once a minute


class StorageStats(NamedTuple):
    """What the admin status page shows about storage."""

    backend: str  # "sqlite" or "postgresql"
    database_bytes: int  # the database's own size (rows and indexes)
    contents: int  # distinct message contents stored
    content_bytes: int  # their octets (each content counted once)


class MailboxCounts(NamedTuple):
    """What IMAP STATUS needs, counted in one query."""

    messages: int
    unseen: int  # entries without \\Seen
    recent: int  # entries with uid >= the mailbox's recent floor (not yet claimed by a SELECT)
    size: int = 0  # sum of the entries' RFC822.SIZE (CRLF size), for STATUS=SIZE (RFC 8438)


class Delivery(NamedTuple):
    """Where one copy of a content goes."""

    mailbox_id: int
    flags: frozenset[str] = frozenset()
    internal_date: datetime | None = None  # None: the commit time (UTC)


class RecipientLookup(NamedTuple):
    """What an SMTP RCPT needs to know about a local address, read in one statement
    (:meth:`Storage.lookup_recipient`). ``user_id`` is ``None`` when the domain is in the
    database but the user is not; ``inbox_id`` is ``None`` when the user has no INBOX."""

    user_id: int | None = None
    address: str = ""
    inbox_id: int | None = None
    quota_bytes: int = 0  # 0: unlimited
    used_bytes: int = 0  # the running counter that :meth:`Storage.usage` reads


class Outbound(NamedTuple):
    """A message to queue for remote delivery (its content is passed beside it)."""

    queue_id: str  # unique; the SMTP "queued as" id
    sender: str  # envelope sender, "" for the null sender (a DSN)
    recipients: tuple[str, ...]
    created_at: float  # UNIX seconds
    next_attempt: float | None = None  # None: due at once (created_at)


class QueuedRecipient(NamedTuple):
    address: str
    status: QueueStatus
    last_reply: str = ""  # the remote server's (or our own) last word about it
    remote_mta: str = ""  # the host that gave that reply


class QueuedMessage(NamedTuple):
    """One row of the outbound queue with its recipients (ordered by address)."""

    queue_id: str
    content: ContentInfo
    sender: str
    created_at: float
    next_attempt: float
    attempts: int  # claims so far (a claim counts as an attempt)
    lease_owner: str | None
    lease_until: float | None
    recipients: tuple[QueuedRecipient, ...]


class RecipientOutcome(NamedTuple):
    """What one delivery attempt gave for one recipient."""

    address: str
    status: QueueStatus  # "delivered", "deferred" or "failed"
    reply: str = ""
    remote_mta: str = ""


class Bounce(NamedTuple):
    """A delivery status notification made when a queued message is settled: stored in the
    same transaction as the outcome, into local mailboxes and/or the queue (never both lost,
    never made twice)."""

    content: ContentInfo
    deliveries: tuple[Delivery, ...] = ()
    outbound: Outbound | None = None


@runtime_checkable
class ContentWriter(Protocol):
    """Streams one message content into storage."""

    async def write(self, data: bytes) -> None:
        """Add the next chunk of raw message bytes."""

    async def finish(self) -> ContentInfo:
        """Make the content durable (fsynced or committed) and return its description.

        SQLite keeps a small content in its database: ``finish`` queues the insertion and
        returns, and the next request of this storage object (the append that links it, or
        a read) commits with it or after it (:mod:`mailwing.storage.sqlite.inline`).

        Identical bytes stored twice give the same ``sha256`` and are kept once."""

    async def abort(self) -> None:
        """Throw away what was written (idempotent; also safe after ``finish``)."""


@runtime_checkable
class Storage(Protocol):
    """A mail store. Obtain one with :func:`mailwing.storage.open_storage`."""

    #: The schema version this code needs; ``mailwing db upgrade`` brings a database to it.
    LATEST_SCHEMA: int

    async def close(self) -> None: ...

    # -- schema ---------------------------------------------------------------------------
    async def schema_version(self) -> int:
        """The version recorded in the database (0 for an empty database)."""

    async def upgrade(self) -> tuple[int, int]:
        """Apply pending migrations in order; return (version before, version after)."""

    async def check_schema(self) -> None:
        """Raise :class:`SchemaOutdated` (saying to run ``mailwing db upgrade``) unless the
        database is at ``LATEST_SCHEMA``."""

    # -- domains --------------------------------------------------------------------------
    async def add_domain(self, name: str) -> Domain: ...  # AlreadyExists
    async def get_domain(self, name: str) -> Domain | None: ...
    async def list_domains(self) -> list[Domain]: ...
    async def delete_domain(self, name: str) -> None: ...  # NotFound; InUse while it has users

    # -- users ----------------------------------------------------------------------------
    async def add_user(
        self, address: str, password_hash: str, *, quota_bytes: int = 0,
        create_domain: bool = False,
    ) -> tuple[User, bool]:
        """Create a user and its default mailboxes (:data:`mailwing.model.DEFAULT_MAILBOXES`).

        Returns the user and whether its domain was created by this call. Without
        ``create_domain`` an unknown domain raises :class:`NotFound`. Addresses are stored
        lower-case."""

    async def get_user(self, address: str) -> User | None: ...  # case-insensitive
    async def lookup_recipient(self, address: str) -> RecipientLookup | None:
        """The domain, user, INBOX and usage behind ``local@domain``, all in one read
        (one statement, one thread hop on SQLite): ``None`` when the domain is not in the
        database. Case-insensitive, like :meth:`get_user`."""

    async def set_password(self, address: str, password_hash: str) -> None: ...  # NotFound
    async def set_enabled(self, address: str, enabled: bool) -> None: ...  # NotFound
    async def delete_user(self, address: str) -> None:
        """Remove the user, its mailboxes and its mail (contents no one else uses go too)."""

    async def list_users(self) -> list[UserUsage]: ...  # ordered by address
    async def usage(self, user_id: int) -> tuple[int, int]:
        """(message count, bytes used) over all of the user's mailboxes, read from running
        counters that every transaction adding or removing mail keeps exact."""

    async def set_quota(self, address: str, limit_bytes: int | None) -> None:
        """Set the user's storage limit in bytes (``quota_bytes``); ``None`` or 0 removes it.
        NotFound; ValueError if negative. Who may do this is a service rule
        (:mod:`mailwing.services.quota`)."""

    # -- mailboxes ------------------------------------------------------------------------
    async def list_mailboxes(self, user_id: int) -> list[Mailbox]: ...  # ordered by name
    async def get_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        """``INBOX`` matches case-insensitively (RFC 3501); other names exactly."""

    async def create_mailbox(
        self, user_id: int, name: str, special_use: str | None = None
    ) -> Mailbox: ...  # AlreadyExists

    # -- contents -------------------------------------------------------------------------
    def new_content(self) -> ContentWriter: ...

    async def store_content(self, data: bytes) -> ContentInfo:
        """Convenience: write ``data`` through a :class:`ContentWriter`."""

    def open_content(self, sha256: str, *, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        """Yield the raw bytes of a content in chunks (NotFound if it is gone)."""

    async def read_content(self, sha256: str) -> bytes: ...

    # -- mail -----------------------------------------------------------------------------
    async def append(
        self, content: ContentInfo, deliveries: Sequence[Delivery],
        *, outbound: Outbound | None = None, enforce_quota: bool = False,
    ) -> list[MailEntry]:
        """Link ``content`` into each mailbox in one transaction (all or nothing).

        Each new entry gets its mailbox's UIDNEXT (which then increases) and a new MODSEQ
        (HIGHESTMODSEQ increases). The result is in the order of ``deliveries``. With
        ``outbound``, the same transaction also queues the content for those remote
        recipients (:meth:`enqueue`), so a message for local and remote recipients is
        accepted for all of them or for none; ``deliveries`` may then be empty. With
        ``enforce_quota`` (ignored when ``outbound`` is given), an owner whose use would exceed
        its quota makes the whole call fail with :class:`~mailwing.storage.errors.OverQuota`,
        checked in the transaction."""

    async def append_many(
        self, items: Sequence[tuple[ContentInfo, Delivery]], *, enforce_quota: bool = False,
    ) -> list[MailEntry]:
        """Like :meth:`append` for several contents at once, in one transaction (all or
        nothing: RFC 3502 MULTIAPPEND); UIDs follow the order of ``items``."""

    async def append_many_with_changes(
        self, items: Sequence[tuple[ContentInfo, Delivery]], *, mailbox_id: int,
        since_modseq: int, claim_from: int | None = None, enforce_quota: bool = False,
    ) -> tuple[list[MailEntry], tuple[int, list[MailEntry], list[int]], int | None]:
        """:meth:`append_many`, then :meth:`catch_up` of ``mailbox_id`` since
        ``since_modseq``, in the same transaction: (the new entries, the changes, the
        \\Recent floor or None). Why: an IMAP APPEND to the selected mailbox is followed by
        the session's catch-up, which finds the new mail and claims it: three transactions
        (one of them a write) become one."""

    async def list_mail(self, mailbox_id: int) -> list[MailEntry]:
        """Every entry of the mailbox, ascending by UID."""

    async def mailbox_digests(self, mailbox_id: int) -> list[tuple[str, str | None, int]]:
        """(content SHA-256, Message-ID, CRLF size) of every entry of the mailbox, in one
        query over the ``mail`` index: how an import tells, without reading any body, which
        messages a mailbox already holds (a second run, or a resumed one, imports nothing
        twice)."""

    async def expunge(self, mailbox_id: int, uids: Collection[int]) -> list[int]:
        """Remove those entries that still exist, in one transaction; return the UIDs removed,
        ascending. Contents left with no entry are deleted."""

    # -- IMAP support (mailbox tree, flags, copies, change tracking) ---------------------
    async def delete_mailbox(self, user_id: int, name: str) -> None:
        """Remove one mailbox and its mail (NotFound). Children are left alone: whether a
        parent with children may go (it becomes \\Noselect in IMAP) is the caller's rule."""

    async def rename_mailbox(self, user_id: int, old: str, new: str) -> Mailbox:
        """Rename ``old`` and every ``old/child`` to ``new``/``new/child`` in one transaction,
        keeping UIDVALIDITY (RFC 3501 6.3.5). Renaming INBOX is special: a new mailbox ``new``
        is created, every INBOX entry moves into it, and INBOX stays, empty. NotFound /
        AlreadyExists."""

    async def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        """Subscribe or unsubscribe a name, whether or not a mailbox has it (RFC 3501
        6.3.6/6.3.7): subscriptions are kept apart from the mailboxes, so DELETE keeps one
        and RENAME moves those of the renamed mailboxes. Idempotent; NotFound only for an
        unknown user. ``Mailbox.subscribed`` tells whether the mailbox's name is subscribed."""

    async def list_subscriptions(self, user_id: int) -> list[str]:
        """Every subscribed name of the user (INBOX first, then by name), including names
        with no mailbox."""

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        """The mailbox with fresh UIDNEXT/HIGHESTMODSEQ counters."""

    async def mailbox_counts(self, mailbox_id: int) -> MailboxCounts: ...

    async def set_flags(
        self, mailbox_id: int, uids: Collection[int], flags: Collection[str], mode: FlagMode,
        *, unchanged_since: int | None = None, expect_noop: bool = False,
    ) -> tuple[list[MailEntry], list[int]]:
        """Change the flags of those entries in one transaction.

        ``expect_noop``: the caller's own picture says nothing will change (an IMAP STORE of
        flags the messages already have); the storage then checks that with a read first
        and, if so, answers without a write transaction. The result is the same either way.

        Entries whose flag set really changes get one new MODSEQ (HIGHESTMODSEQ + 1, shared by
        the whole call). With ``unchanged_since`` (RFC 7162 UNCHANGEDSINCE), entries whose
        modseq is greater are not touched and their UIDs are returned as the second item
        (the MODIFIED set). The first item lists the entries as they are after the call,
        changed ones only, ascending by UID; missing UIDs are ignored."""

    async def set_flags_with_changes(
        self, mailbox_id: int, uids: Collection[int], flags: Collection[str], mode: FlagMode,
        *, since_modseq: int, claim_from: int | None = None,
        unchanged_since: int | None = None, expect_noop: bool = False,
    ) -> tuple[tuple[list[MailEntry], list[int]], tuple[int, list[MailEntry], list[int]],
               int | None]:
        """:meth:`set_flags`, then :meth:`catch_up` since ``since_modseq``, in the same
        transaction: (what ``set_flags`` returns, the changes, the \\Recent floor or None).
        The changes include this call's own and every change committed before it. Why: an
        IMAP STORE is followed by a catch-up with other sessions; together they are one
        transaction (one trip to the database thread, or one pool connection), not two."""

    async def expunge_with_changes(
        self, mailbox_id: int, deleted: Collection[int], *, highest_known: int,
        since_modseq: int, claim_from: int | None = None,
    ) -> tuple[list[int], tuple[int, list[MailEntry], list[int]], int | None]:
        """An IMAP EXPUNGE: :meth:`catch_up` since ``since_modseq``, then :meth:`expunge` of
        the UIDs up to ``highest_known`` that carry \\Deleted after it (``deleted``: those
        the session saw carrying it before), in one transaction where the backend can:
        (the UIDs removed, the changes, the \\Recent floor or None). Why: EXPUNGE must
        catch up first (a \\Deleted set by another session counts), and the catch-up, the
        expunge and the claim were two or three transactions."""

    async def catch_up(self, mailbox_id: int, since_modseq: int, *,
                       claim_from: int | None = None
                       ) -> tuple[tuple[int, list[MailEntry], list[int]], int | None]:
        """:meth:`mail_changes`, and when they hold an entry with a UID of at least
        ``claim_from`` (new mail for an IMAP session that knows UIDs below it), the
        :meth:`claim_recent` floor; None when nothing was claimed (no new mail, or
        ``claim_from`` None). An IMAP session's catch-up after each command: the two may
        then share one read (SQLite) when another session has claimed the mail already."""

    async def copy_mail(
        self, src_mailbox_id: int, uids: Collection[int], dst_mailbox_id: int,
        *, move: bool = False, enforce_quota: bool = False,
    ) -> list[tuple[int, int]]:
        """Copy (or, with ``move``, move: copy and expunge in the same transaction, RFC 6851)
        the entries to another mailbox, keeping flags and INTERNALDATE and sharing contents.
        Returns (source uid, new uid) pairs ascending by source uid (COPYUID, RFC 4315).
        ``enforce_quota``: see :meth:`append` (a move within one user adds nothing)."""

    async def mail_changes(
        self, mailbox_id: int, since_modseq: int
    ) -> tuple[int, list[MailEntry], list[int]]:
        """(HIGHESTMODSEQ now, entries with modseq > since ascending by UID, UIDs expunged
        with modseq > since ascending). What a session needs to catch up with other
        sessions' appends, flag changes and expunges."""

    async def open_mailbox(
        self, mailbox_id: int, since_modseq: int, *, claim: bool,
        named: tuple[int, str, int] | None = None,
    ) -> tuple[Mailbox | None, tuple[int, list[MailEntry], list[int]], int | None]:
        """What an IMAP SELECT of a mailbox whose listing the process kept (as of
        ``since_modseq``) reads after its change mark: with ``claim``, the \\Recent claim
        first (:meth:`claim_recent`'s floor; None without ``claim``), then the mailbox's row
        (None if gone meanwhile) and :meth:`mail_changes` since ``since_modseq``. NotFound
        for a missing mailbox. ``named`` (user id, name, UIDVALIDITY): the caller guessed
        the mailbox from the name it was last listed under; NotFound, and nothing claimed,
        unless it is still that user's mailbox of that name and UIDVALIDITY. PostgreSQL
        reads it all in one statement when there is nothing to claim (every SELECT of a
        mailbox without new mail)."""

    async def vanished_since(self, mailbox_id: int, since_modseq: int) -> list[int] | None:
        """UIDs expunged with a MODSEQ above ``since_modseq``, ascending (RFC 7162 VANISHED),
        or None when that history has been pruned (:meth:`prune_expunged`) and the list
        could be incomplete. NotFound for a missing mailbox."""

    async def prune_expunged(self, mailbox_id: int, keep: int) -> int:
        """Keep only about the newest ``keep`` expunged UIDs of the mailbox; later
        :meth:`vanished_since` calls from before the cut return None. Returns rows removed."""

    async def claim_recent(self, mailbox_id: int) -> int:
        """RFC 3501 \\Recent: atomically return the mailbox's recent floor and raise it to
        UIDNEXT. Entries with uid >= the returned value are \\Recent for the calling session
        only; a second session selecting later gets a higher floor."""

    async def get_content_cache(self, sha256: str) -> dict[str, bytes]:
        """Values cached for a content by :meth:`set_content_cache` (e.g. the IMAP ENVELOPE
        and BODYSTRUCTURE), so the MIME work is done once per content."""

    async def set_content_cache(self, sha256: str, values: dict[str, bytes]) -> None:
        """Insert or overwrite those keys (NotFound if no such content is stored); the values
        are removed with the content."""

    async def read_contents(self, contents: Sequence[ContentInfo]) -> dict[str, bytes]:
        """The stored bytes of several contents at once (what :meth:`read_content` returns
        for each), by digest; a content not stored (any more) is left out, and
        :meth:`read_content` then raises NotFound for it. For callers about to read many
        small messages whole (IMAP ``FETCH 1:* BODY[]``, POP3 RETR of the maildrop): one
        query on PostgreSQL, one query plus one thread hop for the files on SQLite, instead
        of one read (file open, thread hop, round trip) per content. Callers bound the total
        size (:data:`mailwing.services.imap_fetch.BATCH_OCTETS`)."""

    async def change_mark(self, mailbox_id: int, since: Hashable | None = None,
                          *, settled: bool = True) -> Hashable | None:
        """A cheap token for "has this mailbox changed?": equal to an earlier mark of the same
        mailbox only if no change to it (a HIGHESTMODSEQ rise, or its deletion) committed
        after that earlier mark was taken, counting every change committed (by any process or
        node) before this call began. None when the backend cannot tell cheaply: the caller
        must then ask :meth:`mail_changes`. An IMAP session takes one before catching up and
        skips the next catch-up when the next mark is equal. ``since``: the caller's previous
        mark, which lets the backend answer a different mark sooner when it already knows
        of a change (a later mark may then differ again without a change: never the other
        way round).

        ``settled=False``: the caller reads the mailbox *after* this call (SELECT), so the
        mark need not count changes whose news is still on its way: such a change committed
        before that read, and its late news only makes the next mark differ (one catch-up
        more, never one missed). PostgreSQL then skips its sync round trip."""

    async def wait_for_change(self, mailbox_id: int, since_modseq: int, timeout: float) -> bool:
        """Return True as soon as the mailbox's HIGHESTMODSEQ exceeds ``since_modseq`` (a
        change by this process, another worker, ``mailwing deliver``, or another node), or
        False after ``timeout`` seconds. PostgreSQL uses LISTEN/NOTIFY; SQLite a local
        wake-up between processes sharing the data folder; both also re-check periodically
        (every few seconds) so a lost wake-up only delays, never loses, a change. A mailbox
        that does not exist (any more) counts as changed: True."""

    # -- outbound queue (see mailwing.storage.scripts_queue) -----------------------------
    async def enqueue(self, content: ContentInfo, outbound: Outbound) -> None:
        """Queue ``content`` for ``outbound.recipients`` (durable on return; AlreadyExists if
        the queue id is taken). While any queue row references a content, no expunge or user
        deletion removes it."""

    async def claim_queued(
        self, worker: str, now: float, lease_until: float, limit: int
    ) -> list[QueuedMessage]:
        """Lease up to ``limit`` messages that are due (``next_attempt <= now``) and not
        leased (no lease, or one that expired before ``now``) to ``worker`` until
        ``lease_until``; each claim counts one attempt. Safe between processes and nodes:
        a message is held by at most one worker while its lease is alive."""

    async def renew_lease(self, queue_id: str, worker: str, lease_until: float) -> bool:
        """Extend ``worker``'s lease; False when the lease is no longer its own."""

    async def settle_queued(
        self, queue_id: str, worker: str, outcomes: Sequence[RecipientOutcome],
        *, next_attempt: float, bounce: Bounce | None = None,
    ) -> bool:
        """Record an attempt's per-recipient outcomes and release the lease, in one
        transaction. When no recipient is left pending or deferred the row is deleted (and
        its content, unless used elsewhere); otherwise it is due again at ``next_attempt``.
        ``bounce`` is stored in the same transaction. With no outcomes this is a plain
        release (a worker shutting down hands the message back). False (and nothing
        changed) when ``worker`` no longer holds the lease."""

    async def list_queued(self) -> list[QueuedMessage]:
        """Every queued message, oldest first."""

    async def get_queued(self, queue_id: str) -> QueuedMessage | None: ...

    async def retry_queued(self, queue_id: str, now: float) -> bool:
        """Make the message due at ``now`` (deferred recipients included); False if absent."""

    # -- background jobs and housekeeping (schema 6) -------------------------------------------
    async def take_lease(self, name: str, owner: str, now: float, until: float
                         ) -> tuple[str, float]:
        """Take or renew the lease ``name`` for ``owner`` until ``until`` if it is free,
        expired before ``now`` or ``owner``'s already; return (holder, until) afterwards."""
        ...

    async def release_lease(self, name: str, owner: str) -> None: ...

    async def collect_garbage(self, min_age: float = 3600.0) -> int:
        """Remove stored bytes and contents nothing refers to, older than ``min_age``
        seconds (never what a delivery in progress is about to link); how many."""
        ...

    async def delete_queued(self, queue_id: str) -> bool:
        """Remove the message from the queue without a DSN; False if absent."""

    # -- admin API tokens (schema 7, see mailwing.services.admin_tokens) -------------------
    async def add_admin_token(self, name: str, token_hash: str, now: float) -> AdminToken:
        """AlreadyExists when the name (or, never in practice, the digest) is taken."""

    async def list_admin_tokens(self) -> list[AdminToken]: ...  # ordered by name
    async def find_admin_token(self, token_hash: str) -> AdminToken | None: ...
    async def get_admin_token(self, token_id: int) -> AdminToken | None: ...
    async def touch_admin_token(self, token_id: int, now: float) -> None: ...
    async def delete_admin_token(self, name: str) -> bool:
        """Revoke a token; False if there is none of that name."""

    async def storage_stats(self) -> StorageStats: ...
