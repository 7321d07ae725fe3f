"""Stored trips: read them with their stops and orders, and move them along.

A trip moves planned → dispatched → in_progress together with every order it carries
(scheduled → dispatched → out_for_delivery), in one transaction: if any order refuses,
nothing moves. Written by ``dispatch.plan_day``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from oms_core import orders
from oms_core.errors import IllegalTransition, NotFound, OmsError
from oms_core.states import OrderState

__all__ = [
    "TRIP_MOVES",
    "Stop",
    "Trip",
    "TripRefused",
    "dispatch_trip",
    "ensure_started",
    "get_trip",
    "list_trips",
    "record_departure",
    "start_trip",
]

Conn = psycopg.Connection[Any]
S = OrderState
TRIP_MOVES = {
    "planned": ("dispatched",),
    "dispatched": ("in_progress",),
    "in_progress": ("completed",),
}


class TripRefused(OmsError):
    """An order on the trip cannot make the move; neither the trip nor any order changed."""

    code = "trip_refused"


@dataclass(frozen=True, slots=True)
class Stop:
    """A stored stop with the orders served there."""

    id: int
    seq: int
    lat: float
    lon: float
    planned_arrival: datetime
    planned_departure: datetime
    service_time_s: int
    window_start: datetime | None
    window_end: datetime | None
    order_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Trip:
    """A stored trip; ``route_geometry`` is [(lon, lat), ...] from depot to depot."""

    id: int
    vehicle_id: int
    driver_id: int | None
    depot_id: int
    day: date
    planned_departure: datetime
    planned_return: datetime
    state: str
    route_geometry: tuple[tuple[float, float], ...]
    stops: tuple[Stop, ...]


def _trips(conn: Conn, where: str, params: tuple[Any, ...]) -> list[Trip]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT id, vehicle_id, driver_id, depot_id, day, planned_departure, planned_return,"
            f" state, route_geometry FROM trips WHERE {where} ORDER BY id",
            params,
        ).fetchall()
        stops = cur.execute(
            "SELECT s.id, s.trip_id, s.seq, s.lat, s.lon, s.planned_arrival,"
            " s.planned_departure, s.service_time_s, s.window_start, s.window_end,"
            " array_agg(so.order_id ORDER BY so.order_id) FILTER (WHERE so.order_id IS NOT NULL)"
            " AS order_ids FROM stops s LEFT JOIN stop_orders so ON so.stop_id = s.id"
            " WHERE s.trip_id = ANY(%s) GROUP BY s.id ORDER BY s.trip_id, s.seq",
            ([r["id"] for r in rows],),
        ).fetchall()
    by_trip: dict[int, list[Stop]] = {r["id"]: [] for r in rows}
    for s in stops:
        trip_id, ids = s.pop("trip_id"), s.pop("order_ids")
        by_trip[trip_id].append(Stop(**s, order_ids=tuple(ids or ())))
    return [
        Trip(
            **{k: v for k, v in r.items() if k != "route_geometry"},
            route_geometry=tuple((float(p[0]), float(p[1])) for p in r["route_geometry"]),
            stops=tuple(by_trip[r["id"]]),
        )
        for r in rows
    ]


def get_trip(conn: Conn, trip_id: int) -> Trip:
    """The trip with its stops and their order ids, or ``NotFound``."""
    found = _trips(conn, "id = %s", (trip_id,))
    if not found:
        raise NotFound(f"no trip {trip_id}")
    return found[0]


def list_trips(conn: Conn, day: date, depot_id: int | None = None) -> list[Trip]:
    """The day's trips (of one depot, or all), by id, each with its stops."""
    return _trips(
        conn, "day = %s AND (%s::bigint IS NULL OR depot_id = %s)", (day, depot_id, depot_id)
    )


def _move_trip(
    conn: Conn, trip_id: int, frm: str, to: str, order_to: OrderState, actor: str
) -> Trip:
    """Trip ``frm`` → ``to`` and each of its orders one step to ``order_to``, all or nothing.

    Orders cancelled since planning stay on their stop but are not carried.
    """
    with conn.transaction():
        row = conn.execute(
            "SELECT state FROM trips WHERE id = %s FOR NO KEY UPDATE", (trip_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no trip {trip_id}")
        if row[0] != frm:
            raise IllegalTransition(row[0], to, TRIP_MOVES.get(row[0], ()), f"trip {trip_id}")
        conn.execute("UPDATE trips SET state = %s WHERE id = %s", (to, trip_id))
        for (oid,) in conn.execute(
            "SELECT so.order_id FROM stops s JOIN stop_orders so ON so.stop_id = s.id"
            " JOIN orders o ON o.id = so.order_id"
            " WHERE s.trip_id = %s AND o.state <> 'cancelled' ORDER BY s.seq, so.order_id",
            (trip_id,),
        ).fetchall():
            try:
                orders.transition(conn, oid, order_to, actor=actor, reason=f"trip {trip_id}")
            except IllegalTransition as exc:
                raise TripRefused(f"trip {trip_id} stays {frm}: order {oid}: {exc}") from exc
        return get_trip(conn, trip_id)


def dispatch_trip(conn: Conn, trip_id: int, *, actor: str) -> Trip:
    """Planned trip → dispatched, its scheduled orders → dispatched; all or nothing."""
    return _move_trip(conn, trip_id, "planned", "dispatched", S.DISPATCHED, actor)


def start_trip(conn: Conn, trip_id: int, *, actor: str, at: datetime | None = None) -> Trip:
    """Dispatched trip → in progress (left the depot), its orders → out for delivery;
    ``at`` (when it left) is kept as the trip's ``actual_departure``."""
    with conn.transaction():
        trip = _move_trip(conn, trip_id, "dispatched", "in_progress", S.OUT_FOR_DELIVERY, actor)
        if at is not None:
            record_departure(conn, trip_id, at)
        return trip


def ensure_started(conn: Conn, trip_id: int, state: str, *, actor: str, at: datetime) -> None:
    """Before something happens on the road: a dispatched trip (in ``state``, its row
    locked by the caller) starts now, its orders going out for delivery; a running one
    stays; a planned or closed one refuses (``IllegalTransition``)."""
    if state in ("completed", "cancelled"):
        raise IllegalTransition(state, "in_progress", (), f"trip {trip_id}")
    if state == "dispatched":
        start_trip(conn, trip_id, actor=actor, at=at)
    elif state == "planned":
        raise IllegalTransition(state, "in_progress", ("dispatched",), f"trip {trip_id}")


def record_departure(conn: Conn, trip_id: int, at: datetime) -> None:
    """Keep the earliest time anyone saw the trip leave the depot (geofence or driver)."""
    conn.execute(
        "UPDATE trips SET actual_departure = least(actual_departure, %s) WHERE id = %s",
        (at, trip_id),
    )
