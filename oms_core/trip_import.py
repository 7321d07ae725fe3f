"""Trips planned elsewhere: store an explicit trip, and re-order a planned trip's stops.

Both go through the planner's own ground rules (``trip_timing``): the trip is timed the
way the planner times a route (or, for an import, with the times the caller sent) and
verified by the planner's independent checker, then written with the planner's writer
(``dispatch.store_route``), its orders moved reserved → scheduled in the same
transaction. Every refusal names what to fix with a stable code (``TripInfeasible``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg

from oms_core import dispatch, fleet, orders, planning, trips
from oms_core.errors import OmsError, Problem
from oms_core.planning.matrix import MemoMatrix
from oms_core.planning.routes import RouteProvider
from oms_core.states import OrderState
from oms_core.trip_timing import (
    Setting,
    TripInfeasible,
    Visit,
    check_route,
    plan_vehicle,
    time_given,
    time_visits,
)

__all__ = [
    "ImportedStop",
    "ImportedTrip",
    "TripInfeasible",
    "TripNotPlanned",
    "import_trip",
    "reorder_stops",
]

Conn = psycopg.Connection[Any]
Line = list[list[float]]


class TripNotPlanned(OmsError):
    """The trip has left the planned state (dispatched or later): its stops are fixed."""

    code = "trip_not_planned"


@dataclass(frozen=True)
class ImportedStop:
    """One stop: the orders served there, and optionally its planned times."""

    order_ids: tuple[int, ...]
    arrival: datetime | None = None
    departure: datetime | None = None


@dataclass(frozen=True)
class ImportedTrip:
    """A trip as another system planned it; ``None`` fields take the day's defaults."""

    vehicle_id: int
    day: date
    stops: tuple[ImportedStop, ...]
    driver_id: int | None = None
    depot_id: int | None = None
    departure: datetime | None = None
    back: datetime | None = None
    geometry: Line | None = None  # [[lon, lat], ...]


def _one(conn: Conn, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    return conn.execute(sql, params).fetchone()


def _setting(
    conn: Conn, day: date, vehicle_id: int, driver_id: int | None, depot_id: int | None
) -> tuple[Setting | None, list[Problem]]:
    """The depot day and vehicle for the trip, or the problems that rule it out."""
    row = _one(conn, "SELECT depot_id FROM vehicles WHERE id = %s", (vehicle_id,))
    if row is None:
        return None, [Problem("unknown_vehicle", f"no vehicle {vehicle_id}")]
    depot = depot_id if depot_id is not None else row[0]
    if depot is None:
        return None, [Problem("vehicle_has_no_depot", "give depot_id or set the vehicle's")]
    if row[0] != depot:
        msg = f"vehicle {vehicle_id} belongs to depot {row[0]}, not {depot}: move it first"
        return None, [Problem("vehicle_other_depot", msg)]
    taken = _one(
        conn, "SELECT driver_id FROM driver_assignments WHERE vehicle_id = %s AND day = %s",
        (vehicle_id, day),
    )  # fmt: skip
    driver = driver_id if driver_id is not None else (taken[0] if taken else None)
    if driver is None:
        msg = f"vehicle {vehicle_id} has no driver on {day}: send driver_id or assign one"
        return None, [Problem("no_driver", msg)]
    shift = _one(conn, "SELECT shift_start, shift_end FROM drivers WHERE id = %s", (driver,))
    if shift is None:
        return None, [Problem("unknown_driver", f"no driver {driver}")]
    problems: list[Problem] = []
    if taken is not None and taken[0] != driver:
        msg = f"vehicle {vehicle_id} is driven by driver {taken[0]} on {day}"
        problems.append(Problem("vehicle_taken", msg))
    other = _one(
        conn, "SELECT vehicle_id FROM driver_assignments WHERE driver_id = %s AND day = %s",
        (driver, day),
    )  # fmt: skip
    if other is not None and other[0] != vehicle_id:
        msg = f"driver {driver} drives vehicle {other[0]} on {day}"
        problems.append(Problem("driver_taken", msg))
    problems += _busy(conn, day, vehicle_id, driver)
    (d,) = dispatch.load_day(conn, day, depot_id=depot)
    vehicle = plan_vehicle(conn, d, day, vehicle_id, (shift[0], shift[1]))
    if vehicle is None:
        msg = f"driver {driver}'s shift does not overlap depot {depot}'s opening hours"
        problems.append(Problem(dispatch.SHIFT_OUTSIDE_DEPOT_HOURS, msg))
    if problems or vehicle is None:
        return None, problems
    return Setting.of(d, vehicle, driver, taken is not None), []


def _busy(conn: Conn, day: date, vehicle_id: int, driver_id: int) -> list[Problem]:
    """A vehicle and a driver drive one trip a day, as the planner plans them."""
    out: list[Problem] = []
    for tid, vid, did in conn.execute(
        "SELECT id, vehicle_id, driver_id FROM trips WHERE day = %s AND state <> 'cancelled'"
        " AND (vehicle_id = %s OR driver_id = %s) ORDER BY id",
        (day, vehicle_id, driver_id),
    ).fetchall():
        who = f"vehicle {vehicle_id}" if vid == vehicle_id else f"driver {did}"
        code = "vehicle_busy" if vid == vehicle_id else "driver_busy"
        out.append(Problem(code, f"{who} already has trip {tid} on {day}: cancel it first"))
    return out


def _order_problems(conn: Conn, s: Setting, ids: Sequence[int]) -> list[Problem]:
    """Orders the day's problem does not hold, each with the reason it is not plannable."""
    out = [
        Problem("duplicate_order", f"order {o} is on the trip {n} times")
        for o, n in Counter(ids).items()
        if n > 1
    ]
    jobs = {j.order_id for j in s.day.problem.jobs}
    for oid in dict.fromkeys(ids):
        if str(oid) in jobs:
            continue
        row = _one(conn, "SELECT state, depot_id FROM orders WHERE id = %s", (oid,))
        if row is None:
            out.append(Problem("unknown_order", f"no order {oid}"))
        elif row[0] != OrderState.RESERVED:
            msg = f"order {oid} is {row[0]}: only reserved orders (stock held) can be planned"
            out.append(Problem("order_not_reserved", msg))
        elif row[1] != s.day.depot_id:
            msg = f"order {oid} ships from depot {row[1]}, not {s.day.depot_id}"
            out.append(Problem("order_other_depot", msg))
        elif s.day.left_out.get(oid) == dispatch.NO_COORDINATES:
            out.append(Problem("no_coordinates", f"order {oid} has no delivery coordinates"))
        else:
            out.append(Problem("order_not_that_day", f"order {oid}'s window is not on that day"))
    return out


def _given_times(trip: ImportedTrip) -> list[tuple[datetime, datetime]] | None:
    """The caller's stop times when it sent all of them, None when it sent none."""
    times = [(s.arrival, s.departure) for s in trip.stops]
    given = [trip.departure, trip.back, *(t for pair in times for t in pair)]
    if all(t is None for t in given):
        return None
    if any(t is None for t in given):
        msg = "send planned_departure, planned_return and every stop's times, or none of them"
        raise TripInfeasible([Problem("times_incomplete", msg)])
    return [(a, b) for a, b in times if a is not None and b is not None]


def _matrix(matrix: planning.MatrixProvider | None) -> MemoMatrix:
    """The planner's default, asked once per site set for timing and checking alike."""
    return MemoMatrix(planning.HaversineMatrix() if matrix is None else matrix)


def import_trip(
    conn: Conn,
    trip: ImportedTrip,
    *,
    actor: str,
    matrix: planning.MatrixProvider | None = None,
    routes: RouteProvider | None = None,
) -> int:
    """Check and store ``trip`` as a planned trip; its id. Refusals: ``TripInfeasible``
    (nothing stored); an order or assignment changed meanwhile: ``IllegalTransition`` /
    ``FleetConflict`` (rolled back)."""
    provider = _matrix(matrix)
    times = _given_times(trip)
    s, problems = _setting(conn, trip.day, trip.vehicle_id, trip.driver_id, trip.depot_id)
    ids = [o for stop in trip.stops for o in stop.order_ids]
    if s is not None:
        problems += _order_problems(conn, s, ids)
    if s is None or problems:
        raise TripInfeasible(problems)
    jobs = {j.order_id: j for j in s.day.problem.jobs}
    visits = [
        (jobs[str(st.order_ids[0])].site, tuple(jobs[str(o)] for o in st.order_ids))
        for st in trip.stops
    ]
    if times is None:
        route = time_visits(s, visits, provider)
    else:
        assert trip.departure is not None and trip.back is not None  # _given_times checked
        route = time_given(s, visits, times, trip.departure, trip.back, provider)
    check_route(s, route, provider)
    line = trip.geometry or dispatch.route_line(routes, s.day, route)
    with conn.transaction():
        # Serialise with the planner (it takes the same lock), then look again.
        conn.execute("SELECT 1 FROM depots WHERE id = %s FOR NO KEY UPDATE", (s.day.depot_id,))
        again = _busy(conn, trip.day, trip.vehicle_id, s.driver_id)
        if again:
            raise TripInfeasible(again)
        if not s.assigned:
            fleet.assign(conn, s.driver_id, trip.vehicle_id, trip.day)
        trip_id = dispatch.store_route(conn, trip.day, s.day, route, line)
        for oid in dict.fromkeys(ids):
            why = f"trip {trip_id} (imported)"
            orders.transition(conn, oid, OrderState.SCHEDULED, actor=actor, reason=why)
    return trip_id


def _trip_setting(conn: Conn, trip: trips.Trip) -> Setting:
    """The planned trip's depot day (its orders back in the problem) and vehicle."""
    driver = trip.driver_id
    sql = "SELECT shift_start, shift_end FROM drivers WHERE id = %s"
    shift = None if driver is None else _one(conn, sql, (driver,))
    if driver is None or shift is None:
        raise TripInfeasible([Problem("no_driver", f"trip {trip.id} has no driver")])
    (d,) = dispatch.load_day(conn, trip.day, depot_id=trip.depot_id, replanning=True)
    vehicle = plan_vehicle(conn, d, trip.day, trip.vehicle_id, (shift[0], shift[1]))
    if vehicle is None:
        msg = f"trip {trip.id}'s driver's shift does not overlap the depot's opening hours"
        raise TripInfeasible([Problem(dispatch.SHIFT_OUTSIDE_DEPOT_HOURS, msg)])
    return Setting.of(d, vehicle, driver, True)


def reorder_stops(
    conn: Conn,
    trip_id: int,
    stop_ids: Sequence[int],
    *,
    matrix: planning.MatrixProvider | None = None,
    routes: RouteProvider | None = None,
) -> None:
    """Visit a planned trip's stops in the order of ``stop_ids`` (each of its stops once),
    re-timed and re-checked as the planner would; its geometry is drawn again.
    ``TripNotPlanned`` once dispatched, ``TripInfeasible`` if the new order breaks a rule."""
    provider = _matrix(matrix)
    trip = trips.get_trip(conn, trip_id)
    _planned(trip_id, trip.state)
    have = [st.id for st in trip.stops]
    if sorted(stop_ids) != sorted(have):
        msg = f"send each stop of trip {trip_id} once: {', '.join(map(str, have))}"
        raise TripInfeasible([Problem("stops_mismatch", msg)])
    s = _trip_setting(conn, trip)
    jobs = {j.order_id: j for j in s.day.problem.jobs}
    by_id = {st.id: st for st in trip.stops}
    visits: list[Visit] = []
    for sid in stop_ids:
        st = by_id[sid]
        live = tuple(jobs[str(o)] for o in st.order_ids if str(o) in jobs)  # not cancelled
        site = live[0].site if live else planning.Site(f"stop:{sid}", st.lat, st.lon)
        visits.append((site, live))
    route = time_visits(s, visits, provider)
    check_route(s, route, provider)
    line = dispatch.route_line(routes, s.day, route)
    at = s.day.at
    with conn.transaction():
        row = _one(conn, "SELECT state FROM trips WHERE id = %s FOR NO KEY UPDATE", (trip_id,))
        _planned(trip_id, "deleted" if row is None else row[0])
        # Out of the way first: (trip_id, seq) is unique at every statement.
        conn.execute("UPDATE stops SET seq = seq + %s WHERE trip_id = %s", (len(have), trip_id))
        for seq, (sid, stop) in enumerate(zip(stop_ids, route.stops, strict=True), 1):
            lo, hi = stop.window
            window = (at(lo), at(hi)) if hi > lo else (None, None)
            conn.execute(
                "UPDATE stops SET seq = %s, planned_arrival = %s, planned_departure = %s,"
                " service_time_s = %s, window_start = %s, window_end = %s WHERE id = %s",
                (seq, at(stop.arrival_s), at(stop.departure_s), stop.service_s, *window, sid),
            )
        conn.execute(
            "UPDATE trips SET planned_departure = %s, planned_return = %s, route_geometry = %s"
            " WHERE id = %s",
            (at(route.depart_s), at(route.return_s), json.dumps(line), trip_id),
        )


def _planned(trip_id: int, state: str) -> None:
    if state != "planned":
        raise TripNotPlanned(
            f"trip {trip_id} is {state}: stops can be re-ordered only while it is planned"
        )
