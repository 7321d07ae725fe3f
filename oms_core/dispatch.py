"""From the database to the planner and back: plan a day into trips, dispatch them.

``plan_day`` reads each depot's reserved orders and its vehicles with a driver that day,
plans them (``planning.plan``), refuses any plan the independent checker faults, and
writes trips, stops and stop orders and moves the orders to ``scheduled`` in one
transaction, so a day is either fully planned or untouched. With ``replace`` a day whose
trips are all still ``planned`` is planned again: its trips are deleted and their orders
un-planned (scheduled → reserved) in that same transaction. Times in the planner are
seconds since the depot's local midnight; arithmetic back to timestamps is done in UTC
so days with a daylight-saving change come out right. Each trip's geometry comes from a
``RouteProvider`` (OSRM's road geometry, or straight legs), fetched before the
transaction opens so no row is locked while a road server is asked; a trip whose road
geometry cannot be had keeps its straight legs, with a logged warning.

    day_plan = plan_day(conn, date(2026, 6, 2), depot_id=1)
    for trip_id in day_plan.trip_ids:
        trips.dispatch_trip(conn, trip_id, actor="control room")
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from oms_core import orders, planning
from oms_core.errors import NotFound, OmsError
from oms_core.planning.matrix import MemoMatrix, RoutingUnavailable
from oms_core.planning.routes import RouteProvider, StraightLegs
from oms_core.states import OrderState

__all__ = [
    "DEFAULT_SERVICE_S",
    "DayAlreadyPlanned",
    "DayPlan",
    "DepotDay",
    "PlanRejected",
    "load_day",
    "plan_day",
    "route_line",
    "store_route",
]

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
Line = list[list[float]]  # [[lon, lat], ...]
Progress = Callable[[str], None]
S = OrderState
# Time at the door per order (park, hand over, sign) when no better figure is known.
DEFAULT_SERVICE_S = 300
NO_COORDINATES = "no_coordinates"
SHIFT_OUTSIDE_DEPOT_HOURS = "shift_outside_depot_hours"
REPLAN_REASON = "re-plan"


class DayAlreadyPlanned(OmsError):
    """The day already has trips at the depot (or dispatched ones, for a re-plan); nothing
    was planned."""

    code = "day_already_planned"


class PlanRejected(OmsError):
    """The planner's answer broke a rule the checker verifies; nothing was stored."""

    code = "plan_rejected"

    def __init__(self, violations: list[str]) -> None:
        self.violations = tuple(violations)
        super().__init__("the plan failed its check: " + "; ".join(violations))


@dataclass(frozen=True)
class DepotDay:
    """One depot's planning problem for a day, and what was left out before planning.

    ``midnight`` is the UTC instant of the depot's local midnight: planner second ``s``
    is ``midnight + s``. Job ids are order ids and vehicle ids are vehicle ids, as text.
    """

    depot_id: int
    midnight: datetime
    problem: planning.Problem
    drivers: Mapping[int, int]  # vehicle id -> driver id
    left_out: Mapping[int, str]  # order id -> reason it could not be planned
    idle_vehicles: Mapping[int, str]  # vehicle id -> reason it cannot drive this day

    def at(self, seconds: int) -> datetime:
        """The instant ``seconds`` after local midnight."""
        return self.midnight + timedelta(seconds=seconds)


@dataclass(frozen=True)
class DayPlan:
    """What ``plan_day`` stored: trips, the orders it could not plan (still reserved)
    with a reason each, totals over all trips, and the trips a re-plan deleted."""

    day: date
    trip_ids: tuple[int, ...]
    scheduled: tuple[int, ...]
    unassigned: Mapping[int, str]
    idle_vehicles: Mapping[int, str]
    distance_m: int
    duration_s: int
    replaced: tuple[int, ...] = ()


def _order_site(lat: float, lon: float) -> planning.Site:
    """Orders at the same coordinates share a site, so the planner can serve them in one stop."""
    return planning.Site(f"{lat:.6f},{lon:.6f}", lat, lon)


def load_day(
    conn: Conn,
    day: date,
    *,
    depot_id: int | None = None,
    service_s: int = DEFAULT_SERVICE_S,
    replanning: bool = False,
) -> list[DepotDay]:
    """Each depot's problem for ``day`` (one depot, or all by id): its reserved orders whose
    window overlaps the local day, and its vehicles with a driver assigned that day.

    ``replanning`` adds the orders scheduled on the day's still-planned trips there, which
    a re-plan takes back and plans again."""
    with conn.cursor(row_factory=dict_row) as cur:
        depots = cur.execute(
            "SELECT id, lat, lon, open_time, close_time, time_zone FROM depots"
            " WHERE %(id)s::bigint IS NULL OR id = %(id)s ORDER BY id",
            {"id": depot_id},
        ).fetchall()
    if depot_id is not None and not depots:
        raise NotFound(f"no depot {depot_id}")
    return [_depot_day(conn, day, d, service_s, replanning) for d in depots]


def _depot_day(
    conn: Conn, day: date, depot: dict[str, Any], service_s: int, replanning: bool
) -> DepotDay:
    zone = ZoneInfo(depot["time_zone"])
    midnight = datetime.combine(day, time(), zone).astimezone(UTC)
    day_end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    day_s = int((day_end - midnight).total_seconds())

    def local(t: time) -> int:
        return int((datetime.combine(day, t, zone).astimezone(UTC) - midnight).total_seconds())

    open_s, close_s = local(depot["open_time"]), local(depot["close_time"])
    home = planning.Site(f"depot:{depot['id']}", depot["lat"], depot["lon"])
    jobs: list[planning.Job] = []
    left_out: dict[int, str] = {}
    for oid, lat, lon, start, end, kg, m3 in conn.execute(
        "SELECT o.id, o.lat, o.lon, o.window_start, o.window_end,"
        " sum(l.qty * p.unit_weight_kg), sum(l.qty * p.unit_volume_m3)"
        " FROM orders o JOIN order_lines l ON l.order_id = o.id"
        " JOIN products p ON p.sku = l.sku"
        " WHERE o.depot_id = %(depot)s AND o.window_start < %(end)s AND o.window_end > %(start)s"
        " AND (o.state = 'reserved' OR %(replanning)s AND o.state = 'scheduled' AND EXISTS ("
        "  SELECT 1 FROM stop_orders so JOIN stops s ON s.id = so.stop_id"
        "  JOIN trips t ON t.id = s.trip_id WHERE so.order_id = o.id"
        "  AND t.day = %(day)s AND t.depot_id = %(depot)s AND t.state = 'planned'))"
        " GROUP BY o.id ORDER BY o.id",
        {
            "depot": depot["id"],
            "end": day_end,
            "start": midnight,
            "day": day,
            "replanning": replanning,
        },
    ):
        if lat is None:
            left_out[oid] = NO_COORDINATES
            continue
        # Round inwards so a service start the planner picks is inside the real window.
        first = max(0, math.ceil((start - midnight).total_seconds()))
        last = min(day_s, math.floor((end - midnight).total_seconds()))
        jobs.append(
            planning.Job(
                str(oid), _order_site(lat, lon), float(kg), float(m3), service_s, first, last
            )
        )
    vehicles: list[planning.Vehicle] = []
    drivers: dict[int, int] = {}
    idle: dict[int, str] = {}
    for vid, driver, kg, m3, vmax, s_start, s_end in conn.execute(
        "SELECT v.id, d.id, v.capacity_kg, v.capacity_m3, v.max_speed_kmh,"
        " d.shift_start, d.shift_end"
        " FROM driver_assignments a JOIN vehicles v ON v.id = a.vehicle_id"
        " JOIN drivers d ON d.id = a.driver_id"
        " WHERE a.day = %s AND v.depot_id = %s ORDER BY v.id",
        (day, depot["id"]),
    ):
        first, last = max(local(s_start), open_s), min(local(s_end), close_s)
        if first >= last:
            idle[vid] = SHIFT_OUTSIDE_DEPOT_HOURS
            continue
        drivers[vid] = driver
        vehicles.append(planning.Vehicle(str(vid), home, float(kg), float(m3), first, last, vmax))
    problem = planning.Problem(tuple(jobs), tuple(vehicles), open_s, close_s)
    return DepotDay(depot["id"], midnight, problem, drivers, left_out, idle)


def _replaceable(conn: Conn, day: date, depot_ids: list[int], replace: bool) -> tuple[int, ...]:
    """The day's trips a plan would replace there, or ``DayAlreadyPlanned``: without
    ``replace`` any trip refuses the day; with it, any trip past ``planned`` does, since
    its orders have left (or are leaving) the depot."""
    trips = conn.execute(
        "SELECT id, state FROM trips WHERE day = %s AND depot_id = ANY(%s)"
        " AND state <> 'cancelled' ORDER BY id",
        (day, depot_ids),
    ).fetchall()
    if trips and not replace:
        raise DayAlreadyPlanned(
            f"{day} is already planned (trips {', '.join(str(t) for t, _ in trips)}):"
            " re-plan it with replace while none of its trips is dispatched"
        )
    moving = [f"trip {t} is {state}" for t, state in trips if state != "planned"]
    if moving:
        raise DayAlreadyPlanned(
            f"{day} cannot be re-planned: {', '.join(moving)}; cancel or finish those first"
        )
    return tuple(t for t, _ in trips)


def _unplan(conn: Conn, trip_ids: tuple[int, ...]) -> None:
    """Send the trips' scheduled orders back to reserved (audited), then delete the trips;
    their stops and stop orders go with them."""
    for (oid,) in conn.execute(
        "SELECT DISTINCT so.order_id FROM stops s JOIN stop_orders so ON so.stop_id = s.id"
        " JOIN orders o ON o.id = so.order_id"
        " WHERE s.trip_id = ANY(%s) AND o.state = 'scheduled' ORDER BY so.order_id",
        (list(trip_ids),),
    ).fetchall():
        orders.transition(conn, oid, S.RESERVED, actor="planner", reason=REPLAN_REASON)
    conn.execute("DELETE FROM trips WHERE id = ANY(%s)", (list(trip_ids),))


def plan_day(
    conn: Conn,
    day: date,
    *,
    depot_id: int | None = None,
    matrix: planning.MatrixProvider | None = None,
    time_limit_s: float = 10.0,
    seed: int = 1,
    max_iterations: int | None = None,
    service_s: int = DEFAULT_SERVICE_S,
    progress: Progress | None = None,
    replace: bool = False,
    routes: RouteProvider | None = None,
) -> DayPlan:
    """Plan the day's reserved orders of one depot (or every depot) into stored trips.

    ``matrix`` defaults to ``HaversineMatrix()``; ``time_limit_s`` and ``max_iterations``
    bound each depot's search (see ``planning.plan``). ``replace`` (default off) re-plans
    a day whose trips are all still planned, with their orders. ``routes`` gives each
    trip's stored geometry (default: straight legs). Raises
    ``DayAlreadyPlanned`` when the day has trips there (with ``replace``: dispatched
    ones), ``PlanRejected`` when the checker faults the plan; either leaves the day as it was.
    """
    # The solver and the checker ask for the same matrices: a road server is asked once.
    provider = MemoMatrix(planning.HaversineMatrix() if matrix is None else matrix)
    days = load_day(conn, day, depot_id=depot_id, service_s=service_s, replanning=replace)
    depot_ids = [d.depot_id for d in days]
    replaced = _replaceable(conn, day, depot_ids, replace)
    solved: list[tuple[DepotDay, planning.Plan]] = []
    for d in days:
        if not d.problem.jobs:
            solved.append((d, planning.Plan(routes=())))
            continue
        report = None if progress is None else _prefixed(progress, f"depot {d.depot_id}: ")
        result = planning.plan(
            d.problem,
            matrix=provider,
            time_limit_s=time_limit_s,
            seed=seed,
            max_iterations=max_iterations,
            progress=report,
        )
        violations = planning.check(d.problem, result, provider)
        if violations:
            raise PlanRejected(violations)
        solved.append((d, result))
    lines = {
        (d.depot_id, r.vehicle_id): route_line(routes, d, r)
        for d, res in solved
        for r in res.routes
    }
    with conn.transaction():
        # Serialise planners of the same depots, then look again: a concurrent run may
        # have stored, replaced or dispatched trips while this one was solving.
        conn.execute(
            "SELECT 1 FROM depots WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE", (depot_ids,)
        )
        if _replaceable(conn, day, depot_ids, replace) != replaced:
            raise DayAlreadyPlanned(f"the trips of {day} changed while planning: plan again")
        if replaced:
            _unplan(conn, replaced)
        trip_ids: list[int] = []
        scheduled: list[int] = []
        for d, result in solved:
            for route in result.routes:
                line = lines[d.depot_id, route.vehicle_id]
                trip_id = store_route(conn, day, d, route, line)
                trip_ids.append(trip_id)
                for stop in route.stops:
                    for oid in stop.order_ids:
                        why = f"trip {trip_id}"
                        orders.transition(conn, int(oid), S.SCHEDULED, actor="planner", reason=why)
                        scheduled.append(int(oid))
    unassigned = {oid: why for d, _ in solved for oid, why in d.left_out.items()}
    unassigned.update({int(o): why for _, r in solved for o, why in r.unassigned.items()})
    return DayPlan(
        day=day,
        trip_ids=tuple(trip_ids),
        scheduled=tuple(scheduled),
        unassigned=dict(sorted(unassigned.items())),
        idle_vehicles={v: why for d, _ in solved for v, why in d.idle_vehicles.items()},
        distance_m=sum(r.distance_m for _, r in solved),
        duration_s=sum(x.duration_s for _, r in solved for x in r.routes),
        replaced=replaced,
    )


def _prefixed(progress: Progress, prefix: str) -> Progress:
    return lambda message: progress(prefix + message)


def route_line(routes: RouteProvider | None, d: DepotDay, route: planning.Route) -> Line:
    """The route's line from depot through its stops back to the depot: the provider's,
    or straight legs (with a warning) when the provider fails for this trip."""
    depot = next(v.depot for v in d.problem.vehicles if v.id == route.vehicle_id)
    points = [(depot.lon, depot.lat), *((s.site.lon, s.site.lat) for s in route.stops)]
    points.append((depot.lon, depot.lat))
    straight = StraightLegs().geometry(points)
    if routes is None:
        return straight
    try:
        return routes.geometry(points)
    except RoutingUnavailable as exc:
        log.warning(
            "depot %s vehicle %s: road geometry unavailable, storing straight legs: %s",
            d.depot_id,
            route.vehicle_id,
            exc,
        )
        return straight


def store_route(conn: Conn, day: date, d: DepotDay, route: planning.Route, line: Line) -> int:
    """Insert one trip (geometry ``line``) with its stops and stop orders; returns its id."""
    vid = int(route.vehicle_id)
    times = d.at(route.depart_s), d.at(route.return_s)
    row = conn.execute(
        "INSERT INTO trips (vehicle_id, driver_id, depot_id, day, planned_departure,"
        " planned_return, state, route_geometry) VALUES (%s, %s, %s, %s, %s, %s, 'planned', %s)"
        " RETURNING id",
        (vid, d.drivers[vid], d.depot_id, day, *times, json.dumps(line)),
    ).fetchone()
    assert row is not None  # INSERT … RETURNING always returns the row
    trip_id = int(row[0])
    for seq, stop in enumerate(route.stops, 1):
        lo, hi = stop.window
        # Orders sharing a stop can have windows that only touch: no interval to store.
        window = (d.at(lo), d.at(hi)) if hi > lo else (None, None)
        times = d.at(stop.arrival_s), d.at(stop.departure_s)
        stop_row = conn.execute(
            "INSERT INTO stops (trip_id, seq, lat, lon, planned_arrival, planned_departure,"
            " service_time_s, window_start, window_end)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (trip_id, seq, stop.site.lat, stop.site.lon, *times, stop.service_s, *window),
        ).fetchone()
        assert stop_row is not None  # INSERT … RETURNING always returns the row
        conn.execute(
            "INSERT INTO stop_orders (stop_id, order_id) SELECT %s, unnest(%s::bigint[])",
            (stop_row[0], [int(o) for o in stop.order_ids]),
        )
    return trip_id
