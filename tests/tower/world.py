"""A dispatched world for control-tower tests: one depot, and per vehicle a trip whose
stops, times and windows are laid out by hand so the expected alerts are obvious.

Stops sit on a line east of the depot; legs are driven at ``CRUISE_KMH`` along straight
legs (the route geometry the planner stores without OSRM). Each stop carries one order
that is moved draft → … → scheduled through the order core, then the trip is
dispatched with ``oms_core.trips.dispatch_trip`` (orders → dispatched), as in production.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from oms_core import orders, trips
from oms_core.model import LineIn, OrderIn
from oms_core.states import OrderState
from tests.oms_core import one, seed

CRUISE_KMH = 36.0
SERVICE_S = 300
WINDOW_HALF_S = 1800  # each order's window: planned arrival ± 30 min
Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class TripSpec:
    """A vehicle and its trip: stops as metres east/north of the depot."""

    plate: str
    device_id: str
    stops_m: tuple[tuple[float, float], ...]
    departure: datetime
    max_speed_kmh: float | None = None
    service_s: tuple[int, ...] = ()  # per stop; SERVICE_S where not given

    def service(self, k: int) -> int:
        """The planned (and driven) service time at stop ``k`` (from 0)."""
        return self.service_s[k] if k < len(self.service_s) else SERVICE_S


@dataclass(frozen=True)
class BuiltTrip:
    spec: TripSpec
    vehicle_id: int
    trip_id: int
    stop_ids: tuple[int, ...]
    order_ids: tuple[int, ...]
    route: tuple[tuple[float, float], ...]  # (lon, lat), depot → stops → depot
    stops_latlon: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Fleet:
    dsn: str
    depot_id: int
    depot_lat: float
    depot_lon: float
    trips: dict[str, BuiltTrip]  # by plate


def offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    """The point ``east_m``/``north_m`` metres from (lat, lon) (equirectangular)."""
    r = 6_371_008.8
    dlat = math.degrees(north_m / r)
    dlon = math.degrees(east_m / (r * math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon


def build(dsn: str, specs: list[TripSpec]) -> Fleet:
    """Seed the order core, then one dispatched trip per spec."""
    w = seed(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE devices, alerts, rule_state, telemetry_issues CASCADE")
        conn.execute("UPDATE stock SET on_hand = 1000")
        depot = conn.execute("SELECT lat, lon FROM depots WHERE id = %s", (w.depot_id,))
        row = depot.fetchone()
        assert row is not None
        dlat, dlon = float(row[0]), float(row[1])
        built = {s.plate: _trip(conn, w.customer_id, w.depot_id, dlat, dlon, s) for s in specs}
    return Fleet(dsn, w.depot_id, dlat, dlon, built)


def _trip(
    conn: Conn, customer: int, depot: int, dlat: float, dlon: float, s: TripSpec
) -> BuiltTrip:
    vid = one(
        conn,
        "INSERT INTO vehicles (plate, capacity_kg, capacity_m3, tracker_device_id,"
        " max_speed_kmh, depot_id) VALUES (%s, 1000, 10, %s, %s, %s)",
        (s.plate, s.device_id, s.max_speed_kmh, depot),
    )
    conn.execute(
        "INSERT INTO devices (device_id, protocol) VALUES (%s, 'menara-json')"
        " ON CONFLICT DO NOTHING",
        (s.device_id,),
    )
    points = [offset(dlat, dlon, e, n) for e, n in s.stops_m]
    t = s.departure
    prev = (0.0, 0.0)
    times: list[tuple[datetime, datetime]] = []
    for k, (e, n) in enumerate(s.stops_m):
        t += timedelta(seconds=math.dist(prev, (e, n)) / (CRUISE_KMH / 3.6))
        times.append((t, t + timedelta(seconds=s.service(k))))
        t += timedelta(seconds=s.service(k))
        prev = (e, n)
    back = t + timedelta(seconds=math.dist(prev, (0.0, 0.0)) / (CRUISE_KMH / 3.6))
    route = ((dlon, dlat), *((lon, lat) for lat, lon in points), (dlon, dlat))
    trip_id = one(
        conn,
        "INSERT INTO trips (vehicle_id, depot_id, day, planned_departure, planned_return,"
        " route_geometry) VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
        (vid, depot, s.departure.date(), s.departure, back, _json(route)),
    )
    stop_ids, order_ids = [], []
    for seq, ((lat, lon), (arr, dep)) in enumerate(zip(points, times, strict=True), 1):
        service = s.service(seq - 1)
        ws, we = arr - timedelta(seconds=WINDOW_HALF_S), arr + timedelta(seconds=WINDOW_HALF_S)
        oid = _scheduled_order(conn, customer, depot, lat, lon, ws, we)
        sid = one(
            conn,
            "INSERT INTO stops (trip_id, seq, lat, lon, planned_arrival, planned_departure,"
            " service_time_s, window_start, window_end) VALUES (%s, %s, %s, %s, %s, %s, %s,"
            " %s, %s)",
            (trip_id, seq, lat, lon, arr, dep, service, ws, we),
        )
        conn.execute("INSERT INTO stop_orders (stop_id, order_id) VALUES (%s, %s)", (sid, oid))
        stop_ids.append(sid)
        order_ids.append(oid)
    trips.dispatch_trip(conn, trip_id, actor="test")
    return BuiltTrip(s, vid, trip_id, tuple(stop_ids), tuple(order_ids), route, tuple(points))


def _scheduled_order(
    conn: Conn, customer: int, depot: int, lat: float, lon: float, ws: datetime, we: datetime
) -> int:
    new = OrderIn(
        customer_id=customer,
        depot_id=depot,
        address_text=f"{lat:.5f},{lon:.5f}",
        window_start=ws,
        window_end=we,
        lines=(LineIn("A", 1, Decimal("10.00")),),
        lat=lat,
        lon=lon,
    )
    oid = orders.create_order(conn, new, actor="test").id
    for state in (OrderState.VERIFIED, OrderState.RESERVED, OrderState.SCHEDULED):
        orders.transition(conn, oid, state, actor="test")
    return oid


def _json(route: tuple[tuple[float, float], ...]) -> str:
    return "[" + ",".join(f"[{lon},{lat}]" for lon, lat in route) + "]"
