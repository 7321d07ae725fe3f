"""The customer's tracking page: ``GET /track/{public_token}``, no API token.

The public token (192 random bits, ``oms_core.tracking.new_token``) is the credential,
so the page shows only what its holder may see: their own order's number, state, window,
address, amount and planned visit, never an internal id. A guessable tracking number
never opens it. An unknown or malformed token gets one fixed 404, so the answer says
nothing about which tokens exist.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from aiohttp import web
from psycopg.rows import dict_row

from oms_core.api.context import run
from oms_core.api.errors import ApiError
from oms_core.api.spec import Operation, Param
from oms_core.states import OrderState

__all__ = ["LABELS", "OPERATIONS", "tracking_page"]

S = OrderState
LABELS: dict[OrderState, str] = {
    S.DRAFT: "Order received",
    S.VERIFIED: "Order confirmed",
    S.RESERVED: "Being prepared",
    S.SCHEDULED: "Delivery scheduled",
    S.DISPATCHED: "Loaded for delivery",
    S.OUT_FOR_DELIVERY: "Out for delivery",
    S.ARRIVED: "The driver has arrived",
    S.DELIVERED: "Delivered",
    S.PARTIALLY_DELIVERED: "Partly delivered",
    S.FAILED: "Delivery failed",
    S.COMPLETED: "Completed",
    S.CANCELLED: "Cancelled",
}
# States in which the order has a planned stop worth showing.
_PLANNED = frozenset(
    {
        S.SCHEDULED,
        S.DISPATCHED,
        S.OUT_FOR_DELIVERY,
        S.ARRIVED,
        S.DELIVERED,
        S.PARTIALLY_DELIVERED,
        S.FAILED,
        S.COMPLETED,
    }
)
_TOKEN_PATTERN, _TOKEN_MAX = "^[A-Za-z0-9_-]+$", 64  # URL-safe base64, as new_token makes
_TOKEN = {"type": "string", "minLength": 22, "maxLength": _TOKEN_MAX, "pattern": _TOKEN_PATTERN}
_TOKEN_RE = re.compile(_TOKEN_PATTERN)
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}  # a secret URL
_UNKNOWN = "no delivery is found for this link: check it against your confirmation message"


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def tracking_page(conn: psycopg.Connection[Any], token: str) -> dict[str, Any] | None:
    """The page for ``token`` as the ``TrackingPage`` schema describes it, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        order = cur.execute(
            "SELECT id, tracking_number, state, window_start, window_end, address_text,"
            " total_amount, payment_state FROM orders WHERE public_token = %s",
            (token,),
        ).fetchone()
        if order is None:
            return None
        stop = None
        if OrderState(order["state"]) in _PLANNED:
            stop = cur.execute(
                "SELECT s.planned_arrival, s.planned_departure, s.actual_arrival,"
                " s.actual_departure FROM stop_orders so JOIN stops s ON s.id = so.stop_id"
                " JOIN trips t ON t.id = s.trip_id"
                " WHERE so.order_id = %s AND t.state <> 'cancelled'"
                " ORDER BY t.created_at DESC, t.id DESC LIMIT 1",
                (order["id"],),
            ).fetchone()
    return {
        "tracking_number": order["tracking_number"],
        "state": order["state"],
        "state_label": LABELS[OrderState(order["state"])],
        "window_start": _iso(order["window_start"]),
        "window_end": _iso(order["window_end"]),
        "address_text": order["address_text"],
        "total_amount": str(order["total_amount"]),
        "payment_state": order["payment_state"],
        "stop": None if stop is None else {k: _iso(v) for k, v in stop.items()},
    }


async def track(request: web.Request) -> web.Response:
    token = request.match_info["public_token"]
    page = None
    if len(token) <= _TOKEN_MAX and _TOKEN_RE.fullmatch(token):
        page = await run(request, lambda c: tracking_page(c, token))
    if page is None:
        raise ApiError(404, "not_found", _UNKNOWN)
    return web.json_response(page, headers=_HEADERS)


OPERATIONS = (
    Operation(
        "trackOrder", "GET", "/track/{public_token}", track,
        "The customer's tracking page for one order (the link's token is the credential)",
        None,
        {
            200: ("what the customer may see of their order", "TrackingPage"),
            404: ("unknown link (the same answer whether or not anything exists)", "Error"),
        },
        params=(Param("public_token", "path", _TOKEN, "the secret token of the order's link"),),
    ),
)  # fmt: skip
