"""The customer's tracking answer: ``GET /track/{public_token}``, no API token.

The public token (192 random bits, ``oms_core.tracking.new_token``) is the credential,
so the answer holds only what its holder may see of their own order: number, state and
timeline, window, address, amount, the arrival window, the proof of delivery and their
complaints, never an internal id. A guessable tracking number never opens it. An
unknown or malformed token gets one fixed 404 after the same database lookup, so
neither the body nor the timing says which tokens exist.

The van's position is shown only while this order's stop is the trip's next open stop
(the lowest-sequence stop, not yet left, that still has an order on its way or at the
door), and never while the van is within ``NEAR_M`` of another stop of the trip: a
customer sees the van coming, never where another customer lives.

One SQL statement gathers the facts (one round trip); Python picks the labels in the
customer's language (``customers.language``, or ``?lang=``) and rounds the window.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

import psycopg
from aiohttp import web
from psycopg.rows import dict_row

from oms_core.api.context import CTX, run
from oms_core.api.errors import ApiError
from oms_core.api.spec import Operation, Param, parse_params
from oms_core.execution.reasons import REASONS
from oms_core.states import OrderState
from oms_core.verify import haversine_km

__all__ = [
    "LANGUAGES",
    "MAX_COMPLAINTS",
    "OPERATIONS",
    "TEXTS",
    "TOKEN_PARAM",
    "UNKNOWN_LINK",
    "complaint_json",
    "eta_window",
    "fetch",
    "file_url",
    "shape",
    "valid_token",
]

S = OrderState
TEXTS: dict[str, dict[str, Any]] = json.loads(
    (resources.files("oms_core") / "web" / "track" / "texts.json").read_text("utf-8")
)
LANGUAGES = ("id", "en")
MAX_COMPLAINTS = 5  # per order: the page is for customers, not for floods
NEAR_M = 300.0  # the van this close to another customer's stop is not shown
POSITION_MAX_AGE = timedelta(minutes=30)  # an older fix says nothing about where it is now
_CLOCK_SLACK = timedelta(minutes=2)  # trackers' clocks run a little ahead
_M_PER_DEG = 6_371_008.8 * math.pi / 180
_TOKEN_PATTERN, _TOKEN_MAX = "^[A-Za-z0-9_-]+$", 64  # URL-safe base64, as new_token makes
_TOKEN = {"type": "string", "minLength": 22, "maxLength": _TOKEN_MAX, "pattern": _TOKEN_PATTERN}
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{22,64}")
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}  # a secret URL
UNKNOWN_LINK = "no delivery is found for this link: check it against your confirmation message"
_OUTCOMES = frozenset({S.DELIVERED, S.PARTIALLY_DELIVERED, S.FAILED})
_CLOSED = _OUTCOMES | {S.COMPLETED, S.CANCELLED}
# order_events.to_state -> timeline step; the rank orders steps and says which the
# current state has reached (an un-planned order is no longer "scheduled").
_STEP = {
    "draft": "received", "verified": "confirmed", "scheduled": "scheduled",
    "out_for_delivery": "out_for_delivery", "arrived": "arrived", "delivered": "delivered",
    "partially_delivered": "partially_delivered", "failed": "failed", "cancelled": "cancelled",
}  # fmt: skip
_RANK = {
    "received": 0, "confirmed": 1, "scheduled": 2, "out_for_delivery": 3, "arrived": 4,
    "departed": 5, "delivered": 6, "partially_delivered": 6, "failed": 6, "cancelled": 7,
}  # fmt: skip
_REACHED = {
    S.DRAFT: 0, S.VERIFIED: 1, S.RESERVED: 1, S.SCHEDULED: 2, S.DISPATCHED: 2,
    S.OUT_FOR_DELIVERY: 3, S.ARRIVED: 4, S.DELIVERED: 6, S.PARTIALLY_DELIVERED: 6,
    S.FAILED: 6, S.COMPLETED: 6, S.CANCELLED: 7,
}  # fmt: skip
_STOP_TIMES = ("planned_arrival", "planned_departure", "actual_arrival", "actual_departure")
_AHEAD = ("confirmed", "scheduled", "out_for_delivery", "arrived", "delivered")

_NEAR_DEG2 = (NEAR_M / _M_PER_DEG) ** 2  # squared, in degrees of latitude
# Constants are written into the statement, not sent as parameters: a cheaper plan.
_QUERY = f"""
SELECT o.tracking_number, o.state, o.window_start, o.window_end, o.address_text,
       o.total_amount, o.payment_state, o.lat, o.lon, c.language, d.time_zone,
       s.id IS NOT NULL AS has_stop, s.planned_arrival, s.planned_departure,
       s.actual_arrival, s.actual_departure, s.eta, s.trip_state, nx.stops_before,
       fix.lat AS fix_lat, fix.lon AS fix_lon, fix.fix_time,
       ev.states AS event_states, ev.ats AS event_ats, ep.outcome, ep.reason_code,
       ep.recipient_name, ep.at AS epod_at, ep.signature_sha256,
       (SELECT array_agg(ph.sha256 ORDER BY ph.seq) FROM epod_photos ph
        WHERE ph.epod_id = ep.id) AS photos,
       (SELECT array_agg(json_build_array(ol.sku, pr.name, ol.qty, ol.delivered_qty)
                         ORDER BY ol.line_no)
        FROM order_lines ol JOIN products pr ON pr.sku = ol.sku
        WHERE ol.order_id = o.id AND ep.id IS NOT NULL) AS lines,
       (SELECT json_agg(json_build_array(x.category, x.text, x.state, x.created_at,
                                         x.photo_sha256) ORDER BY x.id)
        FROM complaints x WHERE x.order_id = o.id) AS complaints
FROM orders o
JOIN customers c ON c.id = o.customer_id
JOIN depots d ON d.id = o.depot_id
LEFT JOIN epods ep ON ep.order_id = o.id
    AND o.state IN ('delivered', 'partially_delivered', 'failed', 'completed')
LEFT JOIN LATERAL (  -- in id order, as the index reads them
    SELECT array_agg(e.to_state) AS states, array_agg(e.at) AS ats FROM (
        SELECT e.to_state, e.at FROM order_events e
        WHERE e.order_id = o.id AND e.kind = 'state' ORDER BY e.id
    ) e
) ev ON true
LEFT JOIN LATERAL (  -- the order's visit on its newest live trip
    SELECT s.id, s.trip_id, s.seq, s.planned_arrival, s.planned_departure, s.actual_arrival,
           s.actual_departure, s.eta, t.state AS trip_state, t.vehicle_id, t.driver_id
    FROM stop_orders so JOIN stops s ON s.id = so.stop_id JOIN trips t ON t.id = s.trip_id
    WHERE so.order_id = o.id AND t.state <> 'cancelled'
      AND o.state NOT IN ('draft', 'verified', 'reserved', 'cancelled')
    ORDER BY t.created_at DESC, t.id DESC LIMIT 1
) s ON true
LEFT JOIN LATERAL (  -- open stops up to this one: not left yet, an order on its way or here
    SELECT count(*) FILTER (WHERE l.seq < s.seq) AS stops_before, min(l.seq) = s.seq AS next
    FROM stops l
    WHERE o.state IN ('out_for_delivery', 'arrived') AND s.trip_state = 'in_progress'
      AND l.trip_id = s.trip_id AND l.seq <= s.seq AND l.actual_departure IS NULL
      AND EXISTS (SELECT 1 FROM stop_orders lo JOIN orders lor ON lor.id = lo.order_id
                  WHERE lo.stop_id = l.id AND lor.state IN ('out_for_delivery', 'arrived'))
) nx ON true
LEFT JOIN LATERAL (  -- the van's newest fix, only while this stop is next
    SELECT n.lat, n.lon, n.fix_time FROM (
        (SELECT p.lat, p.lon, p.fix_time FROM positions p
         WHERE nx.next AND p.fix_time BETWEEN %(oldest)s AND %(latest)s
           AND p.device_id = (SELECT v.tracker_device_id FROM vehicles v WHERE v.id = s.vehicle_id)
         ORDER BY p.fix_time DESC LIMIT 1)
        UNION ALL
        (SELECT p.lat, p.lon, p.fix_time FROM positions p
         WHERE nx.next AND p.fix_time BETWEEN %(oldest)s AND %(latest)s
           AND p.device_id = (SELECT d.phone_device_id FROM drivers d WHERE d.id = s.driver_id)
         ORDER BY p.fix_time DESC LIMIT 1)
        ORDER BY fix_time DESC LIMIT 1
    ) n
    WHERE NOT EXISTS (  -- never while the van is at another customer's stop
        SELECT 1 FROM stops x WHERE x.trip_id = s.trip_id AND x.id <> s.id
        AND (x.lat - n.lat) ^ 2 + ((x.lon - n.lon) * cos(radians(n.lat))) ^ 2 < {_NEAR_DEG2!r})
) fix ON true
WHERE o.public_token = %(token)s
"""


def valid_token(token: str) -> bool:
    """Whether ``token`` has the shape of a public token (it may still open nothing)."""
    return _TOKEN_RE.fullmatch(token) is not None


def file_url(token: str, sha256: str) -> str:
    """Where the tracking page serves one of the order's images."""
    return f"/t/{token}/files/{sha256}"


def eta_window(eta: datetime, width_min: int) -> tuple[datetime, datetime]:
    """A window ``width_min`` wide (in whole quarter hours) centred on ``eta``, its start
    on a quarter hour: a promise people can read, not a timestamp to the second."""
    quarters = max(1, round(width_min / 15))
    start = eta - timedelta(minutes=7.5 * quarters)
    epoch = start.timestamp()
    start = datetime.fromtimestamp(round(epoch / 900) * 900, eta.tzinfo or UTC)
    return start, start + timedelta(minutes=15 * quarters)


def fetch(conn: psycopg.Connection[Any], token: str, now: datetime) -> dict[str, Any] | None:
    """The facts behind ``token``'s page, or None. A malformed token is looked up as the
    empty string (which no order has), so it costs what an unknown one costs."""
    params = {
        "token": token if valid_token(token) else "",
        "oldest": now - POSITION_MAX_AGE,
        "latest": now + _CLOCK_SLACK,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_QUERY, params).fetchone()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _timeline(
    state: OrderState, events: list[tuple[str, datetime]], departed: datetime | None, t: Any
) -> list[dict[str, Any]]:
    last: dict[str, datetime] = {}
    for to_state, at in events:
        if to_state in _STEP:
            last[_STEP[to_state]] = at
    reached = _REACHED[state]
    if departed is not None:
        last["departed"], reached = departed, _RANK["departed"]
    done = sorted((s for s in last if _RANK[s] <= reached), key=_RANK.__getitem__)
    steps = [{"step": s, "label": t["step"][s], "at": _iso(last[s]), "done": True} for s in done]
    if state not in _CLOSED:
        steps += [
            {"step": s, "label": t["step"][s], "at": None, "done": False}
            for s in _AHEAD
            if _RANK[s] > reached
        ]
    return steps


def complaint_json(
    token: str, lang: str, category: str, text: str, state: str, at: datetime, photo: str | None
) -> dict[str, Any]:
    """One complaint as its customer sees it (``TrackingComplaint``)."""
    t = TEXTS[lang]
    return {
        "category": category,
        "category_label": t["category"][category],
        "text": text,
        "state": state,
        "state_label": t["complaint_state"][state],
        "created_at": at.isoformat(),
        "photo_url": None if photo is None else file_url(token, photo),
    }


def _epod(token: str, row: dict[str, Any], lang: str) -> dict[str, Any] | None:
    if row["outcome"] is None:
        return None
    t, reason, signature = TEXTS[lang], row["reason_code"], row["signature_sha256"]
    return {
        "outcome": row["outcome"],
        "label": t["state"][row["outcome"]],
        "recipient_name": row["recipient_name"],
        "at": _iso(row["epod_at"]),
        "reason_code": reason,
        "reason_label": None if reason is None else REASONS[reason][1 if lang == "id" else 0],
        "lines": [
            {"sku": sku, "name": name or sku, "qty": qty, "delivered_qty": delivered or 0}
            for sku, name, qty, delivered in row["lines"] or []
        ],
        "signature_url": None if signature is None else file_url(token, signature),
        "photo_urls": [file_url(token, sha) for sha in row["photos"] or []],
    }


def _next_steps(row: dict[str, Any], t: Any) -> str | None:
    """What happens after an attempt that fell short (``followup`` makes the re-delivery
    order, except for goods the customer refused)."""
    if row["outcome"] in (None, S.DELIVERED):
        return None
    if row["reason_code"] == "refused":
        return str(t["refused_note"])
    return str(t["failed_note" if row["outcome"] == S.FAILED else "partial_note"])


def _vehicle(row: dict[str, Any]) -> dict[str, Any] | None:
    if row["fix_lat"] is None:
        return None
    lat, lon = round(float(row["fix_lat"]), 5), round(float(row["fix_lon"]), 5)
    away = None
    if row["lat"] is not None:
        away = round(1000 * haversine_km(row["lat"], row["lon"], lat, lon))
    return {
        "lat": lat,
        "lon": lon,
        "at": _iso(row["fix_time"]),
        "distance_m": away,
        "map_url": f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=16/{lat}/{lon}",
    }


def shape(row: dict[str, Any], token: str, *, lang: str | None, window_min: int) -> dict[str, Any]:
    """The ``TrackingPage`` answer from ``fetch``'s row, in ``lang`` (default: the
    customer's language)."""
    lang = lang or row["language"]
    t, state = TEXTS[lang], OrderState(row["state"])
    events = list(zip(row["event_states"] or [], row["event_ats"] or [], strict=True))
    departed = row["actual_departure"] if state == S.ARRIVED else None
    shown = state
    if state == S.COMPLETED:  # closed after its outcome: the outcome is what counts
        shown = next((S(s) for s, _ in reversed(events) if s in _OUTCOMES), state)
    eta = None
    if state in (S.DISPATCHED, S.OUT_FOR_DELIVERY) and row["has_stop"]:
        at = row["eta"] or row["planned_arrival"]
        start, end = eta_window(at, window_min)
        eta = {"at": _iso(at), "window_start": _iso(start), "window_end": _iso(end),
               "live": row["eta"] is not None}  # fmt: skip
    on_its_way = state == S.OUT_FOR_DELIVERY and row["trip_state"] == "in_progress"
    complaints = [
        complaint_json(token, lang, cat, text, st, _at(at), photo)
        for cat, text, st, at, photo in row["complaints"] or []
    ]
    stop = {k: _iso(row[k]) for k in _STOP_TIMES} if row["has_stop"] else None
    return {
        "tracking_number": row["tracking_number"],
        "state": state.value,
        "state_label": t["departed_state"] if departed else t["state"][shown],
        "language": lang,
        "time_zone": row["time_zone"],
        "window_start": _iso(row["window_start"]),
        "window_end": _iso(row["window_end"]),
        "address_text": row["address_text"],
        "total_amount": str(Decimal(row["total_amount"])),
        "payment_state": row["payment_state"],
        "payment_label": t["payment_state"][row["payment_state"]],
        "notice": t["departed_note"] if departed else _next_steps(row, t),
        "stop": stop,
        "timeline": _timeline(state, events, departed, t),
        "eta": eta,
        "vehicle": _vehicle(row),
        "stops_before": int(row["stops_before"]) if on_its_way else None,
        "epod": _epod(token, row, lang),
        "complaints": complaints,
        "complaints_left": max(0, MAX_COMPLAINTS - len(complaints)),
    }


async def track(request: web.Request) -> web.Response:
    token, ctx = request.match_info["public_token"], request.app[CTX]
    row = await run(request, lambda c: fetch(c, token, ctx.now()))
    if row is None:
        raise ApiError(404, "not_found", UNKNOWN_LINK)
    lang = parse_params(request, _OPS["trackOrder"]).get("lang") if request.query else None
    page = shape(row, token, lang=lang, window_min=ctx.execution.eta_window_min)
    return web.json_response(page, headers=_HEADERS)


TOKEN_PARAM = Param("public_token", "path", _TOKEN, "the secret token of the order's link")
_LANG = Param("lang", "query", {"enum": list(LANGUAGES)}, "labels in this language")
OPERATIONS = (
    Operation(
        "trackOrder", "GET", "/track/{public_token}", track,
        "The customer's tracking page for one order (the link's token is the credential)",
        None,
        {
            200: ("what the customer may see of their order", "TrackingPage"),
            404: ("unknown link (the same answer whether or not anything exists)", "Error"),
        },
        params=(TOKEN_PARAM, _LANG),
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
