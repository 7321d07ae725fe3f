"""The application factory: routes from the operation table, then two middlewares —
errors outermost (so even auth failures are JSON), authentication and roles inside."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from aiohttp import web
from psycopg_pool import ConnectionPool

from oms_core.api import (
    alerts,
    complaints,
    customers,
    depots,
    devices,
    driver,
    epods,
    fleet,
    imports,
    orders,
    payments,
    plans,
    ratelimit,
    reports,
    stock,
    track_page,
    tracking,
    trips_import,
    webhooks,
    zones,
)
from oms_core.api.auth import lookup
from oms_core.api.context import CTX, PRINCIPAL, Context, Execution, run
from oms_core.api.errors import ApiError, Handler, error_middleware
from oms_core.api.pages import add_pages
from oms_core.api.spec import PREFIX, Operation, document
from oms_core.geocode import Geocoder
from oms_core.planning.matrix import MatrixProvider
from oms_core.planning.routes import RouteProvider
from oms_core.verify import Radius, ServiceArea

__all__ = ["DEFAULT_SERVICE_AREA", "OPERATIONS", "make_app", "utc_now"]

OPERATIONS: tuple[Operation, ...] = ratelimit.documented((
    *orders.OPERATIONS,
    *customers.OPERATIONS,
    *payments.OPERATIONS,
    *imports.OPERATIONS,
    *depots.OPERATIONS,
    *stock.OPERATIONS,
    *fleet.OPERATIONS,
    *devices.OPERATIONS,
    *plans.OPERATIONS,
    *trips_import.OPERATIONS,
    *tracking.OPERATIONS,
    *driver.OPERATIONS,
    *epods.OPERATIONS,
    *alerts.OPERATIONS,
    *zones.OPERATIONS,
    *webhooks.OPERATIONS,
    *complaints.OPERATIONS,
    *reports.OPERATIONS,
))  # fmt: skip
DEFAULT_SERVICE_AREA: ServiceArea = Radius()  # 50 km from the order's depot


def utc_now() -> datetime:
    """The default clock: aware UTC (verification compares it with stored windows)."""
    return datetime.now(UTC)


def make_app(
    pool: ConnectionPool[psycopg.Connection[Any]] | str,
    *,
    max_body_bytes: int = 1_048_576,
    db_timeout_s: float = 5.0,
    now: Callable[[], datetime] = utc_now,
    min_lead_s: float = 3600,
    service_area: ServiceArea = DEFAULT_SERVICE_AREA,
    geocoder: Geocoder | None = None,
    matrix: MatrixProvider | None = None,
    routes: RouteProvider | None = None,
    execution: Execution | None = None,
) -> web.Application:
    """The OMS API under ``/api/v1``.

    ``pool`` is a psycopg pool the caller owns, or a DSN: then the app opens its own pool
    on startup and closes it on cleanup; a request that gets no connection within
    ``db_timeout_s`` is answered 503. ``max_body_bytes`` caps request bodies (413);
    ``now`` is the clock verification uses; ``min_lead_s`` and ``service_area`` are
    passed to ``oms_core.verify.verify`` (defaults: one hour, 50 km from the depot).
    ``geocoder`` finds coordinates for addresses sent without them (default none: such
    customer addresses are refused); ``matrix`` and ``routes`` give plans their travel
    times and trip geometry (default: haversine and straight legs). ``execution`` holds
    the driver app's and public pages' settings: where files are stored, upload caps,
    the ePOD checks, link lifetimes, the public rate limit and the positions sink
    (default: files under ./menara-files, the settings' defaults, no positions).
    """
    owned = isinstance(pool, str)
    if isinstance(pool, str):
        pool = ConnectionPool(pool, open=False, kwargs={"autocommit": True}, timeout=db_timeout_s)
    by_id = {op.operation_id: op for op in OPERATIONS}
    ctx = Context(pool, now, min_lead_s, service_area, geocoder, matrix, routes)
    ctx = ctx if execution is None else replace(ctx, execution=execution)
    limiter = ratelimit.RateLimiter(ctx.execution.public_rate_per_min)
    public = ratelimit.middleware(limiter, track_page.too_many_page)
    app = web.Application(
        client_max_size=max_body_bytes, middlewares=[error_middleware, public, _auth(by_id)]
    )
    app[CTX] = ctx
    app[ratelimit.RATE_LIMITER] = limiter  # its counters, for /metrics
    alerts.attach_stream(app)  # the live alert stream's shared LISTEN
    for op in OPERATIONS:
        app.router.add_route(op.method, PREFIX + _route(op), op.handler, name=op.operation_id)
    spec = document(OPERATIONS)

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(spec)

    app.router.add_get(PREFIX + "/openapi.json", openapi, name="openapi")
    add_pages(app)
    if owned:
        app.cleanup_ctx.append(_pool_lifetime)
    return app


def _route(op: Operation) -> str:
    """The path with integer parameters matching digits only, so ``/orders/import`` is
    not also ``/orders/{id}`` (whose GET would then be advertised in its Allow header)."""
    path = op.path
    for p in op.params:
        if p.where == "path" and p.schema.get("type") == "integer":
            path = path.replace("{" + p.name + "}", "{" + p.name + ":[0-9]+}")
    return path


async def _pool_lifetime(app: web.Application) -> AsyncIterator[None]:
    pool = app[CTX].pool
    await _in_thread(pool.open, wait=True)
    yield
    await _in_thread(pool.close)


async def _in_thread(fn: Callable[..., Any], **kwargs: Any) -> None:
    await asyncio.to_thread(fn, **kwargs)


def _auth(by_id: dict[str, Operation]) -> Any:
    """Check the bearer token and the operation's roles; public and unknown routes pass."""

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        op = by_id.get(request.match_info.route.name or "")
        if op is None or op.roles is None:
            return await handler(request)
        scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(
                401, "unauthenticated", "send an API token as 'Authorization: Bearer <token>'"
            )
        principal = await run(request, lambda c: lookup(c, secret.strip()))
        if principal is None:
            raise ApiError(401, "invalid_token", "the token is unknown or revoked: get a new one")
        if principal.role not in op.roles:
            allowed = ", ".join(sorted(op.roles))
            raise ApiError(
                403, "forbidden", f"a {principal.role} token may not do this; needs: {allowed}"
            )
        request[PRINCIPAL] = principal
        return await handler(request)

    return auth_middleware
