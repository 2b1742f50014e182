"""The web console: server-rendered pages over the same services as the API.

Every page needs a console session (:func:`mailwing.admin.security.console_user`); every
form is a POST carrying the session's CSRF token and answered by a redirect (POST/redirect/
GET) with a one-line notice or error in the query string, which the template escapes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from mailwing.admin.api import set_quota, status
from mailwing.admin.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    client_ip,
    console_user,
    csrf_token,
    make_session,
    record_failure,
    state_of,
)
from mailwing.mailauth.dkimkeys import DkimKeyError, active_key, generate_key
from mailwing.services import accounts, mailview, metrics, queue_admin
from mailwing.services import quota as quota_service
from mailwing.services.accounts import AccountError
from mailwing.services.dnsrecords import domain_records
from mailwing.services.queue_admin import QueueError

__all__ = ["router", "templates"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
Csrf = Annotated[str, Form(max_length=100)]


def _filesize(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _timestamp(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


templates.env.filters["filesize"] = _filesize
templates.env.filters["timestamp"] = _timestamp


def _page(request: Request, name: str, title: str, section: str = "", **context: Any
          ) -> HTMLResponse:
    ctx = {"title": title, "section": section, "csrf": csrf_token(request),
           "notice": request.query_params.get("notice", "")[:300],
           "error": request.query_params.get("error", "")[:300], **context}
    return templates.TemplateResponse(request, name, ctx)


def _back(path: str, **params: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


User = Annotated[Any, Depends(console_user)]


# -- login ----------------------------------------------------------------------------------

@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    value = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(request, "login.html", {
        "title": "Log in", "login_csrf": value, "csrf": "",
        "error": request.query_params.get("error", "")[:300], "notice": ""})
    response.set_cookie(LOGIN_CSRF_COOKIE, value, max_age=3600, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form(max_length=200)],
                csrf: Csrf) -> Response:
    st, ip = state_of(request), client_ip(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf):
        raise HTTPException(403, "the login form has expired; reload it")
    if await st.throttle.is_throttled(ip, None):
        return _back("/login", error="too many failed logins; try again later")
    record = await st.tokens.verify(token)
    if record is None:
        await record_failure(st, ip, "console login")
        return _back("/login", error="that token is not valid")
    value, ttl = make_session(st, record)
    response = _back("/")
    response.set_cookie(SESSION_COOKIE, value, max_age=ttl, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Csrf) -> Response:
    check_csrf(request, csrf)
    response = _back("/login", error="")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- dashboard ------------------------------------------------------------------------------

def _uptime(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, _: User) -> Response:
    st = state_of(request)
    info = await status(st)
    received, sent = metrics.recent_activity()
    return _page(request, "dashboard.html", "Dashboard", "Dashboard", status=info,
                 listeners=info.listeners, queue=info.queue,
                 queue_total=sum(info.queue.values()),
                 connections=sum(x.connections for x in info.listeners),
                 received=received, sent=sent, uptime=_uptime(info.uptime_seconds))


# -- domains and DNS ------------------------------------------------------------------------

@router.get("/domains", response_class=HTMLResponse)
async def domains_page(request: Request, _: User) -> Response:
    st = state_of(request)
    counts: dict[str, int] = {}
    for u in (await accounts.list_users(st.storage)).users:
        d = u.address.rpartition("@")[2]
        counts[d] = counts.get(d, 0) + 1
    rows = [{"name": d.name, "users": counts.get(d.name, 0)}
            for d in await accounts.list_domains(st.storage)]
    return _page(request, "domains.html", "Domains", "Domains", domains=rows)


@router.post("/domains")
async def domains_add(request: Request, _: User, csrf: Csrf,
                      name: Annotated[str, Form(max_length=253)]) -> Response:
    check_csrf(request, csrf)
    try:
        domain = await accounts.add_domain(state_of(request).storage, name)
    except AccountError as exc:
        return _back("/domains", error=str(exc))
    return _back("/domains", notice=f"domain {domain.name} added")


@router.post("/domains/delete")
async def domains_delete(request: Request, _: User, csrf: Csrf,
                         name: Annotated[str, Form(max_length=253)],
                         force: Annotated[str, Form(max_length=5)] = "") -> Response:
    check_csrf(request, csrf)
    try:
        removed = await accounts.delete_domain(state_of(request).storage, name,
                                               force=bool(force))
    except AccountError as exc:
        return _back("/domains", error=str(exc))
    extra = f" with {removed} user(s)" if removed else ""
    return _back("/domains", notice=f"domain {name} deleted{extra}")


@router.get("/domains/{name}/dns", response_class=HTMLResponse)
async def dns_page(request: Request, name: str, _: User) -> Response:
    st = state_of(request)
    domain = await st.storage.get_domain(name.lower())
    if domain is None:
        return _back("/domains", error=f"domain {name} does not exist")
    return _page(request, "dns.html", f"DNS for {domain.name}", "Domains", domain=domain.name,
                 records=domain_records(st.settings, domain.name),
                 has_dkim=active_key(st.settings.server.data_dir, domain.name) is not None)


@router.post("/domains/{name}/dkim")
async def dkim_keygen(request: Request, name: str, _: User, csrf: Csrf,
                      algorithm: Annotated[str, Form(pattern="^(rsa|ed25519)$")] = "rsa"
                      ) -> Response:
    check_csrf(request, csrf)
    st = state_of(request)
    back = f"/domains/{name}/dns"
    if await st.storage.get_domain(name.lower()) is None:
        return _back("/domains", error=f"domain {name} does not exist")
    try:
        key = await asyncio.to_thread(generate_key, st.settings.server.data_dir, name.lower(),
                                      time.strftime("mw%Y%m%d%H%M%S"), algorithm)
    except DkimKeyError as exc:
        return _back(back, error=str(exc))
    return _back(back, notice=f"DKIM key {key.selector} ({key.algorithm}) is now active; "
                              "publish its record")


# -- users ----------------------------------------------------------------------------------

@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request, _: User,
                     offset: Annotated[int, Query(ge=0)] = 0,
                     domain: Annotated[str, Query(max_length=253)] = "") -> Response:
    st = state_of(request)
    limit = 100
    try:
        page = await accounts.list_users(st.storage, offset=offset, limit=limit,
                                         domain=domain or None)
    except AccountError as exc:
        return _back("/users", error=str(exc))
    return _page(request, "users.html", "Users", "Users", users=page.users, total=page.total,
                 offset=offset, limit=limit, domain=domain,
                 quota_supported=True)


@router.post("/users")
async def users_add(request: Request, _: User, csrf: Csrf,
                    address: Annotated[str, Form(max_length=254)],
                    password: Annotated[str, Form(max_length=1024)],
                    quota: Annotated[str, Form(max_length=12)] = "") -> Response:
    check_csrf(request, csrf)
    try:
        limit = quota_service.parse_size(quota) if quota.strip() else None
        await accounts.add_user(state_of(request).storage, address, password,
                                quota=limit or 0)
    except ValueError:
        return _back("/users", error=f"{quota[:20]!r} is not a size like 500M or 2G")
    except AccountError as exc:
        return _back("/users", error=str(exc))
    return _back("/users", notice=f"user {address.strip().lower()} created")


@router.post("/users/action")
async def users_action(request: Request, _: User, csrf: Csrf,
                       address: Annotated[str, Form(max_length=254)],
                       action: Annotated[str, Form(max_length=10)],
                       password: Annotated[str, Form(max_length=1024)] = "",
                       quota: Annotated[str, Form(max_length=12)] = "") -> Response:
    check_csrf(request, csrf)
    st = state_of(request)
    try:
        if action in ("enable", "disable"):
            await accounts.set_enabled(st.storage, address, action == "enable")
            done = f"{address} {action}d"
        elif action == "password":
            await accounts.set_password(st.storage, address, password)
            done = f"password of {address} changed"
        elif action == "quota":
            try:
                limit = quota_service.parse_size(quota)
            except ValueError:
                return _back("/users", error=f"{quota[:20]!r} is not a size like 500M or 2G")
            await set_quota(st, address, limit)
            done = f"quota of {address} set to {quota_service.format_size(limit)}"
        elif action == "delete":
            await accounts.delete_user(st.storage, address)
            done = f"user {address} deleted"
        else:
            return _back("/users", error=f"unknown action {action[:10]}")
    except AccountError as exc:
        return _back("/users", error=str(exc))
    except HTTPException as exc:
        return _back("/users", error=str(exc.detail))
    return _back("/users", notice=done)


# -- mail browser ---------------------------------------------------------------------------

@router.get("/mail", response_class=HTMLResponse)
async def mail_page(request: Request, _: User,
                    user: Annotated[str, Query(max_length=254)],
                    mailbox: Annotated[str, Query(max_length=1000)] = "",
                    uid: Annotated[int, Query(ge=0)] = 0,
                    offset: Annotated[int, Query(ge=0)] = 0,
                    view: Annotated[str, Query(pattern="^(html|text)$")] = "html") -> Response:
    st = state_of(request)
    try:
        if not mailbox:
            boxes = await mailview.list_mailboxes(st.storage, user)
            return _page(request, "mailboxes.html", f"Mailboxes of {user}", "Users",
                         user=user, mailboxes=boxes)
        if not uid:
            limit = 50
            page = await mailview.list_messages(st.storage, user, mailbox, offset=offset,
                                                limit=limit)
            return _page(request, "messages.html", mailbox, "Users", user=user,
                         mailbox=mailbox, entries=page.entries, total=page.total,
                         offset=offset, limit=limit)
        p = await mailview.preview(st.storage, user, mailbox, uid)
    except AccountError as exc:
        return _back("/users", error=str(exc))
    subject = next((v for k, v in p.headers if k == "Subject"), "")
    return _page(request, "message.html", subject or "Message", "Users", user=user,
                 mailbox=mailbox, p=p, subject=subject,
                 view=view if p.html else "text")


@router.post("/mail/delete")
async def mail_delete(request: Request, _: User, csrf: Csrf,
                      user: Annotated[str, Form(max_length=254)],
                      mailbox: Annotated[str, Form(max_length=1000)],
                      uid: Annotated[int, Form(ge=1)]) -> Response:
    check_csrf(request, csrf)
    try:
        await mailview.delete_message(state_of(request).storage, user, mailbox, uid)
    except AccountError as exc:
        return _back("/mail", user=user, mailbox=mailbox, error=str(exc))
    return _back("/mail", user=user, mailbox=mailbox, notice=f"message {uid} deleted")


# -- queue ----------------------------------------------------------------------------------

@router.get("/queue", response_class=HTMLResponse)
async def queue_page(request: Request, _: User) -> Response:
    st = state_of(request)
    found = await queue_admin.list_messages(st.storage)
    now = time.time()
    return _page(request, "queue.html", "Queue", "Queue", messages=found,
                 states={m.queue_id: queue_admin.state_of(m, now) for m in found})


@router.post("/queue/action")
async def queue_action(request: Request, _: User, csrf: Csrf,
                       id: Annotated[str, Form(max_length=100)],
                       action: Annotated[str, Form(pattern="^(retry|delete)$")]) -> Response:
    check_csrf(request, csrf)
    st = state_of(request)
    try:
        if action == "retry":
            await queue_admin.retry(st.storage, id)
            return _back("/queue", notice=f"{id} is due now")
        await queue_admin.delete(st.storage, id)
        return _back("/queue", notice=f"{id} deleted")
    except QueueError as exc:
        return _back("/queue", error=str(exc))
