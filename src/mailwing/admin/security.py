"""Who may use the admin listener: bearer tokens for the API, a signed cookie for the console.

* API: ``Authorization: Bearer <token>`` checked by :class:`~mailwing.services.admin_tokens.
  TokenService`. A bad or missing token is answered 401 (with ``WWW-Authenticate: Bearer``),
  logged with the client IP, counted in a per-IP :class:`FailureThrottle` with the mail
  logins' limits and delays; an IP over the limit gets 429 without its token being looked at.
* Console: the login form takes a token; on success the browser gets a session cookie
  ``mw_session`` = ``<token id>.<expiry>.<HMAC-SHA256>`` keyed by ``data_dir/admin/
  session.key``, so every worker accepts it and it survives restarts. It is HttpOnly,
  SameSite=Strict, Path=/, and Secure when the listener speaks TLS. Each request re-checks
  that the token still exists, so ``mailwing admin token revoke`` also ends its sessions.
* CSRF: every console form carries a token derived from the session cookie by HMAC (so
  nothing is stored); the login form uses a double-submit cookie. SameSite=Strict already
  keeps cross-site requests cookie-less; the form token is the second, independent guard.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mailwing.admin.state import AdminState
from mailwing.config import parse_duration
from mailwing.storage.interface import AdminToken

__all__ = [
    "LOGIN_CSRF_COOKIE",
    "SESSION_COOKIE",
    "NeedLogin",
    "check_csrf",
    "client_ip",
    "console_user",
    "csrf_token",
    "make_session",
    "record_failure",
    "require_token",
    "state_of",
]

log = logging.getLogger("mailwing.admin")

SESSION_COOKIE = "mw_session"
LOGIN_CSRF_COOKIE = "mw_login_csrf"

_bearer = HTTPBearer(auto_error=False, description="An admin token from "
                     "`mailwing admin token create NAME`")


class NeedLogin(Exception):
    """A console page was asked for without a valid session: redirect to the login page."""


def state_of(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "?"


async def record_failure(state: AdminState, ip: str, what: str) -> None:
    delay = await state.throttle.record_failure(ip, None)
    log.warning("admin authentication failed (%s) from %s", what, ip,
                extra={"peer": ip, "fields": {"reason": what}})
    if delay > 0:
        await asyncio.sleep(delay)


async def _throttled(state: AdminState, ip: str) -> None:
    if await state.throttle.is_throttled(ip, None):
        log.warning("admin request from %s refused: too many failed logins", ip,
                    extra={"peer": ip, "fields": {}})
        raise HTTPException(429, "too many failed authentications; try again later",
                            headers={"Retry-After": str(int(state.throttle.window))})


async def require_token(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
) -> AdminToken:
    """FastAPI dependency of every ``/api/v1`` route."""
    state, ip = state_of(request), client_ip(request)
    await _throttled(state, ip)
    record = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        record = await state.tokens.verify(credentials.credentials)
    if record is None:
        await record_failure(state, ip, "missing token" if credentials is None
                             else "bad token")
        raise HTTPException(401, "a valid admin token is needed",
                            headers={"WWW-Authenticate": 'Bearer realm="mailwing"'})
    return record


# -- console sessions -----------------------------------------------------------------------

def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def make_session(state: AdminState, token: AdminToken) -> tuple[str, int]:
    """(cookie value, max-age seconds) for a console login with ``token``."""
    ttl = int(parse_duration(state.settings.admin.session_ttl))
    body = f"{token.id}.{int(time.time()) + ttl}.{secrets.token_hex(8)}"
    return f"{body}.{_sign(state.session_key, body)}", ttl


async def console_user(request: Request) -> AdminToken:
    """Dependency of every console page: the token its session was opened with."""
    state = state_of(request)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    body, _, mac = cookie.rpartition(".")
    parts = body.split(".")
    if (len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit()
            or not hmac.compare_digest(mac, _sign(state.session_key, body))
            or int(parts[1]) < time.time()):
        raise NeedLogin
    record = await state.tokens.by_id(int(parts[0]))
    if record is None:
        raise NeedLogin
    return record


def csrf_token(request: Request) -> str:
    """The form token of this session (or of this login form)."""
    state = state_of(request)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return _sign(state.session_key, "csrf:" + cookie)[:40]


def check_csrf(request: Request, submitted: str) -> None:
    if not submitted or not hmac.compare_digest(submitted, csrf_token(request)):
        raise HTTPException(403, "the form has expired; reload the page and try again")
