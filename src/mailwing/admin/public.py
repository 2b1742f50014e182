"""Routes without a token: health probes, ``/metrics``, autoconfiguration, MTA-STS.

``/metrics`` is unauthenticated like most Prometheus targets: the admin listener binds
loopback by default; expose it only where scrapers may see it. The autoconfiguration
documents reveal only what DNS SRV records already publish (host names and ports).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from mailwing.admin import autoconfig
from mailwing.admin.security import state_of
from mailwing.services import accounts, metrics, queue_admin
from mailwing.services.accounts import AccountError
from mailwing.services.dnsrecords import mta_sts_policy
from mailwing.storage.errors import StorageError

__all__ = ["autoconfig_router", "health_router"]

log = logging.getLogger("mailwing.admin")

health_router = APIRouter(tags=["health"])
autoconfig_router = APIRouter(tags=["autoconfig"])


@health_router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@health_router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """The database answers and this worker's listeners are bound (503 otherwise)."""
    st = state_of(request)
    problems = []
    try:
        await st.storage.schema_version()
    except StorageError as exc:
        problems.append(f"database: {exc}")
    if not st.ready():
        problems.append("listeners are not bound")
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


@health_router.get("/metrics", response_class=PlainTextResponse)
async def metrics_text(request: Request) -> Response:
    """Prometheus text exposition (every worker's figures summed)."""
    from prometheus_client import CONTENT_TYPE_LATEST
    from prometheus_client.core import GaugeMetricFamily

    st = state_of(request)
    depth = GaugeMetricFamily("mailwing_queue_depth", "Queued outbound messages by state",
                              labels=["state"])
    try:
        for state, count in (await queue_admin.depth(st.storage)).items():
            depth.add_metric([state], count)
        extra = [depth]
    except StorageError:
        extra = []
    return Response(metrics.render(extra), media_type=CONTENT_TYPE_LATEST)


# -- autoconfiguration ----------------------------------------------------------------------

async def _local_domain(request: Request, address: str | None) -> tuple[str, str]:
    """(domain, address) of the request; 404 unless the domain is one of ours."""
    st = state_of(request)
    if address:
        try:
            address = accounts.normalize_address(address)
        except AccountError as exc:
            raise HTTPException(400, str(exc)) from exc
        domain = address.rpartition("@")[2]
    else:
        host = (request.headers.get("host") or "").rsplit(":", 1)[0].lower()
        for prefix in ("autoconfig.", "autodiscover.", "mta-sts."):
            host = host.removeprefix(prefix)
        domain = host or st.settings.server.hostname
        address = f"%EMAILADDRESS%@{domain}"
    if await st.storage.get_domain(domain) is None and domain not in (
            st.settings.mail.local_domains):
        raise HTTPException(404, f"{domain} is not a domain of this server")
    return domain, address


@autoconfig_router.get("/.well-known/autoconfig/mail/config-v1.1.xml")
@autoconfig_router.get("/mail/config-v1.1.xml")
async def thunderbird(request: Request,
                      emailaddress: str | None = Query(default=None, max_length=254)
                      ) -> Response:
    """Thunderbird autoconfig (clientConfig 1.1)."""
    domain, _ = await _local_domain(request, emailaddress)
    return Response(autoconfig.thunderbird_config(state_of(request).settings, domain),
                    media_type="application/xml")


@autoconfig_router.post("/autodiscover/autodiscover.xml")
@autoconfig_router.post("/Autodiscover/Autodiscover.xml", include_in_schema=False)
async def outlook(request: Request) -> Response:
    """Outlook Autodiscover (POX): answers the EMailAddress of the request."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > 65536:
            raise HTTPException(413, "request too large")
    address = autoconfig.autodiscover_address(body)
    if address is None:
        raise HTTPException(400, "no EMailAddress in the request")
    _, address = await _local_domain(request, address)
    return Response(autoconfig.autodiscover_response(state_of(request).settings, address),
                    media_type="application/xml")


@autoconfig_router.get("/apple/mail.mobileconfig")
async def apple(request: Request,
                emailaddress: str = Query(min_length=3, max_length=254)) -> Response:
    """An Apple configuration profile (unsigned) for iOS and macOS Mail."""
    _, address = await _local_domain(request, emailaddress)
    return Response(autoconfig.apple_profile(state_of(request).settings, address),
                    media_type="application/x-apple-aspen-config",
                    headers={"Content-Disposition": 'attachment; filename="mail.mobileconfig"'})


@autoconfig_router.get("/.well-known/mta-sts.txt", response_class=PlainTextResponse)
async def mta_sts(request: Request) -> Response:
    """The MTA-STS policy (RFC 8461 section 3.2)."""
    return Response(mta_sts_policy(state_of(request).settings), media_type="text/plain")
