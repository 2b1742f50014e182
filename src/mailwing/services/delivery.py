"""Local delivery: put one message into one user's mailbox, as an LDA would.

Used by ``mailwing deliver`` (its direct path) and, one :class:`LocalDelivery` per recipient,
by the LMTP session (``server.lmtp_session``), so both give the same trace fields, quota,
unknown-user and mailbox answers. :func:`deliver_local` takes the message as an async
iterable of chunks (or plain bytes) and streams it through :meth:`Storage.new_content`: memory stays
bounded by the chunk size, whatever the message size.

Two trace fields are prepended, as Postfix's local(8) and Dovecot's LDA do: ``Return-Path``
(the envelope sender, RFC 5321 section 4.4; ``<>`` for a bounce) and ``Delivered-To`` (the
recipient, which lets mail loops be detected). Because ``Delivered-To`` differs per recipient,
each recipient gets its own content; :func:`deliver_to_many` is therefore a plain loop that
reports per-recipient results.

Quota is checked while the bytes arrive, so an oversized message is aborted before it is made
durable, and again inside the storing transaction (``enforce_quota``), so two deliveries
racing cannot both squeeze past the limit. Disabled accounts still receive mail (they cannot
log in).
"""

# No postponed annotations: the NamedTuple below would compile each one (see mailwing.model).
from collections.abc import AsyncIterable, Sequence
from typing import NamedTuple

from mailwing.model import MailEntry
from mailwing.storage.errors import OverQuota, StorageError
from mailwing.storage.interface import ContentWriter, Delivery, Storage

__all__ = [
    "DeliveryError",
    "EmptyMessage",
    "LocalDelivery",
    "QuotaExceeded",
    "RecipientResult",
    "Target",
    "UnknownMailbox",
    "UnknownRecipient",
    "deliver_local",
    "deliver_to_many",
    "over_quota",
    "resolve",
    "trace_headers",
]


class DeliveryError(Exception):
    """A message could not be delivered; the message says why in one line."""


class UnknownRecipient(DeliveryError):
    """No such user (SMTP 550 5.1.1; sysexits EX_NOUSER)."""


class UnknownMailbox(DeliveryError):
    """The user exists but the target mailbox does not."""


class QuotaExceeded(DeliveryError):
    """The message does not fit into the user's quota (SMTP 552 5.2.2)."""


class EmptyMessage(DeliveryError):
    """No bytes at all were given (sysexits EX_DATAERR)."""


def _qualify(return_path: str | None, hostname: str) -> str:
    """``<>`` for the null sender; a bare local part is qualified with our hostname."""
    if not return_path or return_path == "<>":
        return ""
    path = return_path.strip().removeprefix("<").removesuffix(">")
    if path and "@" not in path:
        path = f"{path}@{hostname}"
    return path


def _clean(value: str) -> str:
    """Keep header values on one line whatever the caller passed (no header injection)."""
    return "".join(ch for ch in value if ch not in "\r\n\0")


def trace_headers(address: str, return_path: str | None, hostname: str) -> bytes:
    """The ``Return-Path`` and ``Delivered-To`` lines, CRLF-terminated."""
    rp = _clean(_qualify(return_path, hostname))
    text = f"Return-Path: <{rp}>\r\nDelivered-To: {_clean(address)}\r\n"
    return text.encode("utf-8")


async def _as_chunks(chunks: AsyncIterable[bytes] | bytes) -> AsyncIterable[bytes]:
    if isinstance(chunks, bytes | bytearray | memoryview):
        yield bytes(chunks)
        return
    async for chunk in chunks:
        yield chunk


class Target(NamedTuple):
    """Where one recipient's copy goes, as :func:`resolve` found it."""

    address: str  # the user's own spelling, for Delivered-To
    user_id: int
    mailbox_id: int
    quota_bytes: int  # 0: unlimited
    room: int | None  # octets left under the quota when looked up; None: unlimited


async def resolve(storage: Storage, address: str, mailbox: str | None = None) -> Target:
    """The user and mailbox (INBOX by default) of ``address``, with its room under quota.

    Raises :class:`UnknownRecipient` or :class:`UnknownMailbox` (or a storage error)."""
    user = await storage.get_user(address)
    if user is None:
        raise UnknownRecipient(f"user {address.lower()} does not exist")
    target = await storage.get_mailbox(user.id, mailbox or "INBOX")
    if target is None:
        raise UnknownMailbox(f"mailbox {mailbox!r} of {user.address} does not exist")
    room: int | None = None
    if user.quota_bytes > 0:
        _, used = await storage.usage(user.id)
        room = user.quota_bytes - used
    return Target(user.address, user.id, target.id, user.quota_bytes, room)


def over_quota(target: Target) -> QuotaExceeded:
    """The refusal of a copy that does not fit ``target``'s quota."""
    return QuotaExceeded(f"{target.address} is over quota ({target.quota_bytes} bytes allowed)")


class LocalDelivery:
    """One recipient's copy on its way into storage: trace fields, then the chunks, then
    :meth:`finish`. Why a class: ``deliver_local`` pulls the chunks itself, while an LMTP
    session (``server.lmtp_session``) is handed them and feeds a copy for each recipient of
    the same message at once; both go through these same steps. Anything that ends it
    without :meth:`finish` returning must call :meth:`abort` (``finish`` aborts itself
    when it raises before the content is durable)."""

    def __init__(self, storage: Storage, target: Target, *, return_path: str | None,
                 hostname: str) -> None:
        self.storage = storage
        self.target = target
        self._header = trace_headers(target.address, return_path, hostname)
        self._writer: ContentWriter | None = None
        self.total = 0  # octets including the trace fields
        self.body = 0

    async def begin(self) -> None:
        self._writer = self.storage.new_content()
        await self._writer.write(self._header)
        self.total = len(self._header)

    async def write(self, chunk: bytes) -> None:
        """Add body bytes; :class:`QuotaExceeded` as soon as they no longer fit."""
        assert self._writer is not None, "begin() was not called"
        if not chunk:
            return
        self.body += len(chunk)
        self.total += len(chunk)
        room = self.target.room
        if room is not None and self.total > room:
            raise over_quota(self.target)
        await self._writer.write(chunk)

    async def finish(self) -> MailEntry:
        """Make the copy durable and link it into the mailbox (committed when this returns).
        Raises :class:`EmptyMessage`, :class:`QuotaExceeded` (another delivery filled the
        quota meanwhile) or a storage error; nothing is stored then."""
        writer = self._writer
        assert writer is not None, "begin() was not called"
        try:
            if self.body == 0:
                raise EmptyMessage("the message is empty")
            content = await writer.finish()
        except BaseException:
            await self.abort()
            raise
        self._writer = None
        try:
            entries = await self.storage.append(
                content, [Delivery(mailbox_id=self.target.mailbox_id)], enforce_quota=True)
        except OverQuota as exc:
            raise over_quota(self.target) from exc
        return entries[0]

    async def abort(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.abort()


async def deliver_local(
    storage: Storage,
    address: str,
    chunks: AsyncIterable[bytes] | bytes,
    *,
    mailbox: str | None = None,
    return_path: str | None = None,
    hostname: str,
) -> MailEntry:
    """Store the message for ``address`` in ``mailbox`` (INBOX by default).

    Raises :class:`UnknownRecipient`, :class:`UnknownMailbox`, :class:`QuotaExceeded`,
    :class:`EmptyMessage`, or a storage error (``TemporaryStorageError`` when retrying may
    help). Nothing is stored when it raises."""
    delivery = LocalDelivery(storage, await resolve(storage, address, mailbox),
                             return_path=return_path, hostname=hostname)
    try:
        await delivery.begin()
        async for chunk in _as_chunks(chunks):
            await delivery.write(chunk)
    except BaseException:
        await delivery.abort()
        raise
    return await delivery.finish()


class RecipientResult(NamedTuple):
    address: str
    entry: MailEntry | None = None
    error: DeliveryError | StorageError | None = None


async def deliver_to_many(
    storage: Storage,
    addresses: Sequence[str],
    message: bytes,
    *,
    return_path: str | None = None,
    hostname: str,
) -> list[RecipientResult]:
    """Deliver one in-memory message to several local users; one result per address, in
    order. A failure for one recipient does not stop the others."""
    results: list[RecipientResult] = []
    for address in addresses:
        try:
            entry = await deliver_local(storage, address, message,
                                        return_path=return_path, hostname=hostname)
        except (DeliveryError, StorageError) as exc:
            results.append(RecipientResult(address, error=exc))
        else:
            results.append(RecipientResult(address, entry=entry))
    return results
