"""The driver's trip as the phone page shows it: stops in order, each with its address,
window, live ETA, instructions, the orders with their lines, cash to collect and a
navigation link; the cash each ePOD collected and, back at the depot, the trip's COD
settlement, so the page can say what to hand in and what was settled.

The current trip is the driver's running trip, else the earliest dispatched one, else
the latest of today's (planned, completed) at the trip's depot's local date or of those
completed in the last ``DONE_SHOWN`` hours, so the page opens on what the driver is doing
now even on a trip that runs past midnight, and still says "trip completed" and the cash
handed in after the driver comes back from one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from oms_core.api.context import jsonable
from oms_core.execution.reasons import REASONS

__all__ = ["DONE_SHOWN", "current_trip_id", "driver_today", "nav_links"]

Conn = psycopg.Connection[Any]
DONE_SHOWN = timedelta(hours=12)

_CURRENT = """
SELECT t.id FROM trips t JOIN depots d ON d.id = t.depot_id
WHERE t.driver_id = %(driver)s AND t.state <> 'cancelled'
  AND (t.state IN ('dispatched', 'in_progress')
       OR t.day = (%(now)s AT TIME ZONE d.time_zone)::date
       OR (t.state = 'completed' AND t.actual_return > %(now)s - %(shown)s))
ORDER BY t.state = 'in_progress' DESC, t.state = 'dispatched' DESC,
         CASE WHEN t.state = 'dispatched' THEN t.planned_departure END,
         t.planned_departure DESC
LIMIT 1
"""
_TRIP = """
SELECT t.id, t.day, t.state, t.planned_departure, t.planned_return, t.loaded_at,
       t.actual_departure, t.actual_return, v.plate, d.name AS depot_name,
       d.lat AS depot_lat, d.lon AS depot_lon, d.time_zone
FROM trips t JOIN vehicles v ON v.id = t.vehicle_id JOIN depots d ON d.id = t.depot_id
WHERE t.id = %s
"""
_STOPS = """
SELECT s.id, s.seq, s.lat, s.lon, s.planned_arrival, s.planned_departure, s.window_start,
       s.window_end, s.eta, s.actual_arrival, s.actual_departure, s.arrival_method,
       s.geofence_arrival, s.driver_arrival, s.unconfirmed_from, s.unconfirmed_to
FROM stops s WHERE s.trip_id = %s ORDER BY s.seq
"""
_ORDERS = """
SELECT so.stop_id, o.id, o.tracking_number, o.state, o.address_text, o.instructions,
       o.window_start, o.window_end, o.payment_method, o.payment_state, o.total_amount,
       c.name AS customer_name, c.phone AS customer_phone,
       e.outcome AS epod_outcome, e.reason_code AS epod_reason,
       e.cod_collected
FROM stops s JOIN stop_orders so ON so.stop_id = s.id JOIN orders o ON o.id = so.order_id
JOIN customers c ON c.id = o.customer_id LEFT JOIN epods e ON e.order_id = o.id
WHERE s.trip_id = %s AND o.state <> 'cancelled' ORDER BY s.seq, o.id
"""
_LINES = """
SELECT ol.order_id, ol.line_no, ol.sku, p.name, ol.qty, ol.unit_price, ol.loaded_qty,
       ol.delivered_qty
FROM order_lines ol JOIN products p ON p.sku = ol.sku
WHERE ol.order_id = ANY(%s) ORDER BY ol.order_id, ol.line_no
"""
_SETTLEMENT = """
SELECT orders, expected, collected, handed_in, difference FROM cod_settlements
WHERE trip_id = %s
"""


def nav_links(lat: float, lon: float) -> dict[str, str]:
    """A ``geo:`` URI (Android opens the driver's navigation app) and a maps link that
    works on every phone."""
    return {
        "geo": f"geo:{lat:.6f},{lon:.6f}?q={lat:.6f},{lon:.6f}",
        "maps": f"https://www.google.com/maps/dir/?api=1&destination={lat:.6f},{lon:.6f}",
    }


def current_trip_id(conn: Conn, driver_id: int, now: datetime) -> int | None:
    """The trip the driver's page opens on (module doc), or None."""
    row = conn.execute(_CURRENT, {"driver": driver_id, "now": now, "shown": DONE_SHOWN}).fetchone()
    return None if row is None else int(row[0])


def driver_today(conn: Conn, driver_id: int, now: datetime) -> dict[str, Any]:
    """The ``DriverToday`` answer: the driver, the current trip (or None) and the
    reason codes for partial and failed deliveries."""
    name = conn.execute("SELECT name FROM drivers WHERE id = %s", (driver_id,)).fetchone()
    trip_id = current_trip_id(conn, driver_id, now)
    return {
        "driver": {"id": driver_id, "name": "" if name is None else name[0]},
        "trip": None if trip_id is None else _trip(conn, trip_id),
        "reasons": [{"code": c, "en": en, "id": idn} for c, (en, idn) in REASONS.items()],
    }


def _trip(conn: Conn, trip_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        trip = cur.execute(_TRIP, (trip_id,)).fetchone()
        assert trip is not None  # current_trip_id found it
        stops = cur.execute(_STOPS, (trip_id,)).fetchall()
        orders = cur.execute(_ORDERS, (trip_id,)).fetchall()
        lines = cur.execute(_LINES, ([o["id"] for o in orders],)).fetchall()
        settled = cur.execute(_SETTLEMENT, (trip_id,)).fetchone()
    by_order: dict[int, list[dict[str, Any]]] = {}
    for ln in lines:
        by_order.setdefault(ln.pop("order_id"), []).append(ln)
    by_stop: dict[int, list[dict[str, Any]]] = {}
    for o in orders:
        o_lines = by_order.get(o["id"], [])
        due = sum((ln["unit_price"] * ln["qty"] for ln in o_lines), Decimal(0))
        by_stop.setdefault(o.pop("stop_id"), []).append(
            {
                **jsonable(o),
                "cod_due": str(due) if o["payment_method"] == "cod" else None,
                "lines": jsonable(o_lines),
            }
        )
    return {
        **jsonable(trip),
        "cod_settlement": jsonable(settled),
        "stops": [_stop(s, by_stop.get(s["id"], [])) for s in stops],
    }


def _stop(s: dict[str, Any], orders: Sequence[dict[str, Any]]) -> dict[str, Any]:
    first = orders[0] if orders else {}
    return {
        **jsonable(s),
        "address_text": first.get("address_text", ""),
        "window_start": jsonable(s["window_start"]) or first.get("window_start"),
        "window_end": jsonable(s["window_end"]) or first.get("window_end"),
        "nav": nav_links(float(s["lat"]), float(s["lon"])),
        "orders": list(orders),
    }
