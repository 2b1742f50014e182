"""The admin ASGI application: API, console, health, metrics and autoconfiguration routes.

Every response carries a strict Content-Security-Policy (only our own scripts, styles and
images; no frames, no plugins, forms post only to us), ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: no-referrer`` and ``X-Frame-Options: DENY``: message HTML shown in the
console is sanitised, and the policy makes sure a remote image or script would not load even
if the sanitiser missed one. The interactive OpenAPI pages are off (they load from a CDN);
the document itself is at ``/api/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from mailwing import __version__
from mailwing.admin import api, console, public
from mailwing.admin.security import NeedLogin
from mailwing.admin.state import AdminState

__all__ = ["CSP", "create_app", "create_autoconfig_app"]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


#: The largest request body accepted (JSON, forms, Autodiscover requests are all small).
MAX_BODY = 1024 * 1024


class _TooLarge(Exception):
    pass


class SecurityHeaders:
    """Pure ASGI middleware (no body buffering, so streamed message downloads stay streamed):
    adds the security headers and bounds request bodies to :data:`MAX_BODY` (413)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY):
                await _refuse(send)
                return
        seen = 0

        async def bounded() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY:
                    raise _TooLarge
            return message

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + _HEADERS
            await send(message)

        try:
            await self.app(scope, bounded, with_headers)
        except _TooLarge:
            await _refuse(send)


async def _refuse(send: Any) -> None:
    body = b'{"detail":"request body too large"}'
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *_HEADERS]})
    await send({"type": "http.response.body", "body": body})


async def _need_login(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/login", status_code=303)


def create_app(state: AdminState) -> FastAPI:
    app = FastAPI(title="mailwing admin API", version=__version__,
                  openapi_url="/api/openapi.json", docs_url=None, redoc_url=None,
                  description="Domains, users, mailboxes, messages, the outbound queue, DKIM "
                              "and DNS records of a mailwing server. Authenticate with "
                              "`Authorization: Bearer <token>` (`mailwing admin token create`).")
    app.state.admin = state
    app.include_router(api.router)
    app.include_router(public.health_router)
    app.include_router(public.autoconfig_router)
    app.include_router(console.router)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")),
              name="static")
    app.add_exception_handler(NeedLogin, _need_login)
    app.add_middleware(SecurityHeaders)
    return app


def create_autoconfig_app(state: AdminState) -> FastAPI:
    """Only autoconfiguration and MTA-STS, for the optional plain-HTTP port."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.admin = state
    app.include_router(public.autoconfig_router)
    app.add_middleware(SecurityHeaders)
    return app
