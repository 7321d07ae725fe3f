"""Every failure becomes one JSON shape, mapped here and nowhere else:
``{"error": {"code": ..., "message": ..., "details": [...]}}``.

Handlers raise ``ApiError`` or let domain errors (``oms_core.errors``) through; the
middleware picks the status from the error class, so a handler cannot answer the same
condition with two different statuses. A database that cannot be reached (refused or lost
connections, no pooled connection within the pool's timeout, the server shutting down)
is 503 ``database_unavailable`` with ``Retry-After``: the request may succeed later as
it is, unlike a 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
from aiohttp import web
from psycopg_pool import PoolClosed

from oms_core.api.schema_check import FieldProblem
from oms_core.devices import DeviceConflict
from oms_core.dispatch import DayAlreadyPlanned, PlanRejected
from oms_core.errors import IllegalTransition, InsufficientStock, InvalidOrder, NotFound, OmsError
from oms_core.execution.actions import IdempotencyConflict
from oms_core.files import UploadRefused
from oms_core.fleet import FleetConflict
from oms_core.reports import ReportError
from oms_core.trip_import import TripNotPlanned
from oms_core.trip_timing import TripInfeasible
from oms_core.trips import TripRefused

__all__ = [
    "RETRY_AFTER_S",
    "ApiError",
    "Handler",
    "error_middleware",
    "error_response",
    "invalid",
]

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Request-body problems, most fundamental first: the response's code is the first present.
_BODY_CODES = ("unknown_field", "missing_field", "wrong_type", "invalid_value")
_HTTP_CODES = {
    400: ("bad_request", "the request is malformed"),
    404: ("not_found", "no such resource: check the URL against /api/v1/openapi.json"),
    405: ("method_not_allowed", "this URL does not take that method: see the Allow header"),
    413: ("body_too_large", "the body is larger than this server accepts: send less"),
}
RETRY_AFTER_S = 5  # what a 503 asks clients to wait before trying again
# psycopg's OperationalError covers connection failures and server shutdown (SQLSTATE
# classes 08, 53, 57, 58) and the pool's errors (no connection in time, too many waiting);
# of these only a closed pool (never opened, or shut) is the server's own fault: a 500.
_UNAVAILABLE = psycopg.OperationalError
_LOG_EVERY_S = 60.0  # an outage is logged once a minute, not once a request


class ApiError(Exception):
    """An error answered as-is: HTTP status, stable code, message, optional details."""

    def __init__(
        self, status: int, code: str, message: str, details: Sequence[dict[str, Any]] = ()
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, list(details)


def invalid(problems: Sequence[FieldProblem], what: str = "request body") -> ApiError:
    """A 422 for schema problems, coded by the most fundamental kind present."""
    present = {p.code for p in problems}
    code = next(c for c in _BODY_CODES if c in present)
    return ApiError(
        422,
        code,
        f"the {what} does not match its schema: fix the listed fields",
        [{"code": p.code, "field": p.field, "message": p.message} for p in problems],
    )


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> web.Response:
    """The one error body."""
    body = {"error": {"code": code, "message": message, "details": list(details)}}
    return web.json_response(body, status=status, headers=headers)


def _from_domain(exc: OmsError) -> web.Response:
    if isinstance(exc, NotFound):
        return error_response(404, exc.code, str(exc))
    if isinstance(exc, IllegalTransition):
        detail = {"from": exc.from_state, "to": exc.to_state, "legal_next": list(exc.legal)}
        return error_response(409, exc.code, str(exc), [detail])
    if isinstance(exc, InsufficientStock):
        stock: dict[str, Any] = {
            "sku": exc.sku,
            "depot_id": exc.depot_id,
            "wanted": exc.wanted,
            "available": exc.available,
        }
        return error_response(409, exc.code, f"{exc}: restock or reduce the order", [stock])
    if isinstance(exc, UploadRefused):
        return error_response(exc.status, exc.code, str(exc))
    if isinstance(
        exc,
        FleetConflict
        | TripRefused
        | DayAlreadyPlanned
        | IdempotencyConflict
        | DeviceConflict
        | TripNotPlanned,
    ):
        return error_response(409, exc.code, str(exc))
    if isinstance(exc, InvalidOrder | TripInfeasible):
        problems = [{"code": p.code, "message": p.message} for p in exc.problems]
        said = (
            "the order was refused: fix the problems"
            if isinstance(exc, InvalidOrder)
            else "the trip was refused: fix the listed problems"
        )
        return error_response(422, exc.code, said, problems)
    if isinstance(exc, ReportError):
        detail = {"code": exc.code, "field": exc.field, "message": str(exc)}
        return error_response(422, exc.code, str(exc), [detail])
    if isinstance(exc, PlanRejected):
        # The server's own planner erred, not the caller: logged, and the violations are
        # shown so the dispatcher can see why the day was left unplanned.
        log.error("plan rejected by its checker: %s", exc)
        faults = [{"code": "violation", "message": v} for v in exc.violations]
        return error_response(500, exc.code, f"{exc}: nothing was stored", faults)
    log.error("unmapped order core error", exc_info=exc)
    return _internal()


def _internal() -> web.Response:
    return error_response(500, "internal_error", "the server failed; it was logged: try again")


class _OutageLog:
    """Log the first unavailable-database error, then one line a minute with a count."""

    def __init__(self) -> None:
        self.next_at, self.quiet = 0.0, 0

    def __call__(self, exc: Exception) -> None:
        now = time.monotonic()
        if now < self.next_at:
            self.quiet += 1
            return
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("database unavailable: %s (%d more since the last line)", first, self.quiet)
        self.next_at, self.quiet = now + _LOG_EVERY_S, 0


_log_outage = _OutageLog()


def _unavailable() -> web.Response:
    return error_response(
        503,
        "database_unavailable",
        f"the database cannot be reached: try again in {RETRY_AFTER_S} s",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn whatever the handler raised into the JSON error shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    except OmsError as exc:
        return _from_domain(exc)
    except _UNAVAILABLE as exc:
        if isinstance(exc, PoolClosed):
            log.exception("unhandled error in %s %s", request.method, request.path)
            return _internal()
        _log_outage(exc)
        return _unavailable()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_CODES.get(exc.status, (f"http_{exc.status}", exc.reason))
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return error_response(exc.status, code, message, headers=headers)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _internal()
