"""``/api/v1``: the JSON API. Thin: each route validates input (pydantic), calls one service
function and maps its refusal (:class:`AccountError`, :class:`QueueError`, ...) to a status.

Errors are ``{"detail": "..."}`` with 400 (invalid), 404 (not found), 409 (exists / in use),
401/429 (authentication, see :mod:`mailwing.admin.security`). Passwords are only accepted in
request bodies, and never logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from mailwing import __version__
from mailwing.admin import schemas as s
from mailwing.admin.security import require_token, state_of
from mailwing.admin.state import AdminState
from mailwing.mailauth.dkimkeys import DkimKeyError, dns_record, generate_key
from mailwing.model import MailEntry
from mailwing.services import accounts, mailview, queue_admin, quota
from mailwing.services.accounts import AccountError
from mailwing.services.dnsrecords import domain_records
from mailwing.services.queue_admin import QueueError
from mailwing.storage.errors import NotFound
from mailwing.storage.interface import QueuedMessage

__all__ = ["account_error", "queued_out", "router", "set_quota", "status"]

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)])

_STATUS = {"invalid": 400, "not_found": 404, "exists": 409, "in_use": 409}
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def account_error(exc: AccountError) -> HTTPException:
    return HTTPException(_STATUS.get(exc.kind, 400), str(exc))


def _state(request: Request) -> AdminState:
    return state_of(request)


State = Annotated[AdminState, Depends(_state)]


# -- domains --------------------------------------------------------------------------------

@router.get("/domains", response_model=list[s.DomainOut], tags=["domains"])
async def list_domains(st: State) -> list[s.DomainOut]:
    users = (await accounts.list_users(st.storage)).users
    counts: dict[str, int] = {}
    for u in users:
        d = u.address.rpartition("@")[2]
        counts[d] = counts.get(d, 0) + 1
    return [s.DomainOut(name=d.name, users=counts.get(d.name, 0))
            for d in await accounts.list_domains(st.storage)]


@router.post("/domains", status_code=201, response_model=s.DomainOut, tags=["domains"])
async def add_domain(body: s.DomainIn, st: State) -> s.DomainOut:
    try:
        domain = await accounts.add_domain(st.storage, body.name)
    except AccountError as exc:
        raise account_error(exc) from exc
    return s.DomainOut(name=domain.name, users=0)


@router.delete("/domains/{name}", status_code=204, tags=["domains"])
async def delete_domain(name: str, st: State, force: bool = False) -> Response:
    """Refused (409) while the domain has users, unless ``force`` (which deletes them)."""
    try:
        await accounts.delete_domain(st.storage, name, force=force)
    except AccountError as exc:
        raise account_error(exc) from exc
    return Response(status_code=204)


@router.get("/domains/{name}/dns", response_model=list[s.DnsRecordOut], tags=["dns"])
async def dns(name: str, st: State) -> list[s.DnsRecordOut]:
    domain = accounts.domain_name(name) if name else name
    if await st.storage.get_domain(domain) is None:
        raise HTTPException(404, f"domain {domain} does not exist")
    return [s.DnsRecordOut(kind=r.kind, name=r.name, type=r.type, value=r.value,
                           zone_line=r.zone_line)
            for r in domain_records(st.settings, domain)]


@router.post("/domains/{name}/dkim", status_code=201, response_model=s.DkimKeyOut,
             tags=["dns"])
async def dkim_keygen(name: str, body: s.DkimKeyIn, st: State) -> s.DkimKeyOut:
    """Make a new signing key for the domain, make it the active one, return its record."""
    try:
        domain = accounts.domain_name(name)
    except AccountError as exc:
        raise account_error(exc) from exc
    if await st.storage.get_domain(domain) is None:
        raise HTTPException(404, f"domain {domain} does not exist")
    selector = body.selector or time.strftime("mw%Y%m%d%H%M%S")
    try:
        key = await asyncio.to_thread(generate_key, st.settings.server.data_dir, domain,
                                      selector, body.algorithm)
    except DkimKeyError as exc:
        raise HTTPException(409 if "exists" in str(exc) else 400, str(exc)) from exc
    return s.DkimKeyOut(domain=key.domain, selector=key.selector, algorithm=key.algorithm,
                        record=dns_record(key))


# -- users ----------------------------------------------------------------------------------

@router.get("/users", response_model=s.UserPageOut, tags=["users"])
async def list_users(st: State, offset: Offset = 0, limit: Limit = 100,
                     domain: str | None = None) -> s.UserPageOut:
    try:
        page = await accounts.list_users(st.storage, offset=offset, limit=limit, domain=domain)
    except AccountError as exc:
        raise account_error(exc) from exc
    return s.UserPageOut(total=page.total, offset=page.offset, limit=page.limit, users=[
        s.UserOut(address=u.address, enabled=u.enabled, messages=u.message_count,
                  bytes_used=u.bytes_used, quota=u.quota_bytes) for u in page.users])


async def _user_out(st: AdminState, address: str) -> s.UserOut:
    user = await accounts.get_user(st.storage, address)
    messages, used = await st.storage.usage(user.id)
    return s.UserOut(address=user.address, enabled=user.enabled, messages=messages,
                     bytes_used=used, quota=user.quota_bytes)


@router.post("/users", status_code=201, response_model=s.UserOut, tags=["users"])
async def add_user(body: s.UserIn, st: State) -> s.UserOut:
    try:
        await accounts.add_user(st.storage, body.address, body.password, quota=body.quota)
        return await _user_out(st, body.address)
    except AccountError as exc:
        raise account_error(exc) from exc


@router.get("/users/{address}", response_model=s.UserOut, tags=["users"])
async def get_user(address: str, st: State) -> s.UserOut:
    try:
        return await _user_out(st, address)
    except AccountError as exc:
        raise account_error(exc) from exc


async def set_quota(st: AdminState, address: str, limit: int | None) -> None:
    """The per-user quota, through the same service as ``mailwing user quota``."""
    user = await accounts.get_user(st.storage, address)
    try:
        await quota.set_quota(st.storage, user.address, limit or None)
    except NotFound as exc:
        raise AccountError(f"user {user.address} does not exist", "not_found") from exc


@router.patch("/users/{address}", response_model=s.UserOut, tags=["users"])
async def change_user(address: str, body: s.UserPatch, st: State) -> s.UserOut:
    """Change the password, enable or disable logins, or set the quota."""
    try:
        if body.password is not None:
            await accounts.set_password(st.storage, address, body.password)
        if body.enabled is not None:
            await accounts.set_enabled(st.storage, address, body.enabled)
        if body.quota is not None:
            await set_quota(st, address, body.quota)
        return await _user_out(st, address)
    except AccountError as exc:
        raise account_error(exc) from exc


@router.delete("/users/{address}", status_code=204, tags=["users"])
async def delete_user(address: str, st: State) -> Response:
    try:
        await accounts.delete_user(st.storage, address)
    except AccountError as exc:
        raise account_error(exc) from exc
    return Response(status_code=204)


# -- mailboxes and messages -------------------------------------------------------------------

@router.get("/users/{address}/mailboxes", response_model=list[s.MailboxOut], tags=["mail"])
async def mailboxes(address: str, st: State) -> list[s.MailboxOut]:
    try:
        found = await mailview.list_mailboxes(st.storage, address)
    except AccountError as exc:
        raise account_error(exc) from exc
    return [s.MailboxOut(name=m.mailbox.name, special_use=m.mailbox.special_use,
                         messages=m.messages, unseen=m.unseen, bytes=m.bytes,
                         uidvalidity=m.mailbox.uidvalidity, uidnext=m.mailbox.uidnext)
            for m in found]


def message_out(e: MailEntry) -> s.MessageOut:
    f = e.content.fields
    return s.MessageOut(uid=e.uid, sender=f.from_, subject=f.subject,
                        date=f.date.isoformat() if f.date else None,
                        internal_date=e.internal_date.isoformat(), size=e.content.size,
                        flags=sorted(e.flags))


@router.get("/users/{address}/mailboxes/{mailbox:path}/messages",
            response_model=s.MessagePageOut, tags=["mail"])
async def messages(address: str, mailbox: str, st: State, offset: Offset = 0,
                   limit: Limit = 50) -> s.MessagePageOut:
    """Newest first."""
    try:
        page = await mailview.list_messages(st.storage, address, mailbox, offset=offset,
                                            limit=limit)
    except AccountError as exc:
        raise account_error(exc) from exc
    return s.MessagePageOut(total=page.total, offset=page.offset, limit=page.limit,
                            messages=[message_out(e) for e in page.entries])


@router.get("/users/{address}/mailboxes/{mailbox:path}/messages/{uid}",
            response_model=s.MessagePreviewOut, tags=["mail"])
async def message(address: str, mailbox: str, uid: int, st: State) -> s.MessagePreviewOut:
    """Headers and a text and sanitised HTML preview."""
    try:
        p = await mailview.preview(st.storage, address, mailbox, uid)
    except AccountError as exc:
        raise account_error(exc) from exc
    return s.MessagePreviewOut(uid=p.entry.uid, headers=p.headers, text=p.text, html=p.html,
                               truncated=p.truncated)


@router.get("/users/{address}/mailboxes/{mailbox:path}/messages/{uid}/raw",
            response_class=StreamingResponse, tags=["mail"],
            responses={200: {"content": {"message/rfc822": {}}}})
async def message_raw(address: str, mailbox: str, uid: int, st: State) -> StreamingResponse:
    """The exact RFC 5322 bytes as stored, streamed."""
    try:
        entry = await mailview.get_entry(st.storage, address, mailbox, uid)
    except AccountError as exc:
        raise account_error(exc) from exc

    async def body() -> AsyncIterator[bytes]:
        async for chunk in st.storage.open_content(entry.content.sha256):
            yield chunk

    return StreamingResponse(body(), media_type="message/rfc822",
                             headers={"Content-Length": str(entry.content.size)})


@router.delete("/users/{address}/mailboxes/{mailbox:path}/messages/{uid}", status_code=204,
               tags=["mail"])
async def delete_message(address: str, mailbox: str, uid: int, st: State) -> Response:
    try:
        await mailview.delete_message(st.storage, address, mailbox, uid)
    except AccountError as exc:
        raise account_error(exc) from exc
    return Response(status_code=204)


# -- queue ----------------------------------------------------------------------------------

def queued_out(m: QueuedMessage) -> s.QueuedOut:
    return s.QueuedOut(
        id=m.queue_id, sender=m.sender, size=m.content.size, subject=m.content.fields.subject,
        state=queue_admin.state_of(m), created_at=m.created_at, next_attempt=m.next_attempt,
        attempts=m.attempts, lease_owner=m.lease_owner,
        recipients=[s.RecipientOut(address=r.address, status=r.status,
                                   last_reply=r.last_reply, remote_mta=r.remote_mta)
                    for r in m.recipients])


@router.get("/queue", response_model=list[s.QueuedOut], tags=["queue"])
async def queue_list(st: State) -> list[s.QueuedOut]:
    return [queued_out(m) for m in await queue_admin.list_messages(st.storage)]


@router.get("/queue/{queue_id}", response_model=s.QueuedOut, tags=["queue"])
async def queue_show(queue_id: str, st: State) -> s.QueuedOut:
    try:
        return queued_out(await queue_admin.get(st.storage, queue_id))
    except QueueError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.post("/queue/{queue_id}/retry", response_model=s.QueuedOut, tags=["queue"])
async def queue_retry(queue_id: str, st: State) -> s.QueuedOut:
    """Make the message due now; the next worker poll sends it."""
    try:
        await queue_admin.retry(st.storage, queue_id)
        return queued_out(await queue_admin.get(st.storage, queue_id))
    except QueueError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.delete("/queue/{queue_id}", status_code=204, tags=["queue"])
async def queue_delete(queue_id: str, st: State) -> Response:
    """Remove the message without a bounce."""
    try:
        await queue_admin.delete(st.storage, queue_id)
    except QueueError as exc:
        raise HTTPException(404, str(exc)) from exc
    return Response(status_code=204)


# -- status ---------------------------------------------------------------------------------

async def status(st: AdminState) -> s.StatusOut:
    stats = await st.storage.storage_stats()
    return s.StatusOut(
        version=__version__, uptime_seconds=round(time.time() - st.started_at, 3),
        hostname=st.settings.server.hostname,
        listeners=[s.ListenerOut(name=x.name, protocol=x.protocol, host=x.host, port=x.port,
                                 tls=x.tls, connections=x.connections) for x in st.listeners()],
        queue=await queue_admin.depth(st.storage),
        storage=s.StorageOut(backend=stats.backend, database_bytes=stats.database_bytes,
                             contents=stats.contents, content_bytes=stats.content_bytes))


@router.get("/status", response_model=s.StatusOut, tags=["status"])
async def get_status(st: State) -> s.StatusOut:
    """Version, uptime, listeners with live connections (all workers), queue depth, storage."""
    return await status(st)
