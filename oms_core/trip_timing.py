"""Timing and checking one trip by the planner's rules, for trips the planner did not make.

A trip is a one-route ``planning.Plan`` over its depot's day (``dispatch.load_day``):
timed here the way ``planning.schedule.time_route`` times a route (or with the times a
caller gave), and verified by the planner's independent checker (``planning.check``),
whose findings become ``Problem``s with stable codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from oms_core import dispatch, fleet, planning
from oms_core.errors import OmsError, Problem
from oms_core.planning.matrix import IntMatrix, vehicle_durations
from oms_core.planning.schedule import shift_bounds

__all__ = [
    "Setting",
    "TripInfeasible",
    "Visit",
    "check_route",
    "plan_vehicle",
    "time_given",
    "time_visits",
]

Conn = psycopg.Connection[Any]
Visit = tuple[planning.Site, tuple[planning.Job, ...]]  # where, and the orders served there
# The checker's findings, by the words that name each rule (first match wins).
_VIOLATIONS = (
    ("outside its window", "window_missed"),
    ("capacity", "over_capacity"),
    ("shift", "outside_shift"),
    ("depot closes", "outside_depot_hours"),
    ("too soon after", "too_fast"),
    ("service time is done", "service_too_short"),
    ("is for site", "mixed_stop"),
)


class TripInfeasible(OmsError):
    """The trip breaks rules (each a ``Problem`` with a code); nothing was stored."""

    code = "trip_infeasible"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.code}: {p.message}" for p in self.problems))


@dataclass(frozen=True)
class Setting:
    """The depot's day with only the trip's vehicle in it, and who drives it."""

    day: dispatch.DepotDay
    vehicle: planning.Vehicle
    driver_id: int
    assigned: bool  # the driver already drives this vehicle that day

    @classmethod
    def of(
        cls, d: dispatch.DepotDay, vehicle: planning.Vehicle, driver_id: int, assigned: bool
    ) -> Setting:
        problem = replace(d.problem, vehicles=(vehicle,))
        day = replace(d, problem=problem, drivers={int(vehicle.id): driver_id})
        return cls(day, vehicle, driver_id, assigned)


def plan_vehicle(
    conn: Conn, d: dispatch.DepotDay, day: date, vehicle_id: int, shift: tuple[time, time]
) -> planning.Vehicle | None:
    """The planning vehicle driven in ``shift`` (local times), as ``load_day`` makes it;
    None when the shift and the depot's hours do not overlap."""
    row = conn.execute(
        "SELECT lat, lon, time_zone FROM depots WHERE id = %s", (d.depot_id,)
    ).fetchone()
    assert row is not None  # the depot of a loaded day
    lat, lon, zone = row

    def local(t: time) -> int:
        return int((datetime.combine(day, t, ZoneInfo(zone)) - d.midnight).total_seconds())

    first = max(local(shift[0]), d.problem.depot_open_s)
    last = min(local(shift[1]), d.problem.depot_close_s)
    if first >= last:
        return None
    v = fleet.get_vehicle(conn, vehicle_id)
    home = planning.Site(f"depot:{d.depot_id}", float(lat), float(lon))
    kg, m3 = float(v.capacity_kg), float(v.capacity_m3)
    return planning.Vehicle(str(vehicle_id), home, kg, m3, first, last, v.max_speed_kmh)


def _matrices(
    s: Setting, visits: Sequence[Visit], matrix: planning.MatrixProvider
) -> tuple[dict[str, int], IntMatrix, IntMatrix]:
    """Index, distances and this vehicle's durations over the depot and the visits, the
    sites listed as the checker lists them (so a memoising provider is asked once)."""
    served = _served(s, {j.order_id for _, jobs in visits for j in jobs})
    known = {site.id: site for site in served.sites()}  # distinct by id already
    for site, _ in visits:
        known.setdefault(site.id, site)
    dist, dur = matrix.matrices(list(known.values()))
    index = {k: i for i, k in enumerate(known)}
    return index, dist, vehicle_durations(dist, dur, s.vehicle.max_speed_kmh)


def _window(jobs: Sequence[planning.Job], at: int) -> tuple[int, int]:
    """Where every order of a stop may start service (a stop of cancelled orders: ``at``)."""
    if not jobs:
        return at, at
    return max(j.window_start_s for j in jobs), min(j.window_end_s for j in jobs)


def time_visits(
    s: Setting, visits: Sequence[Visit], matrix: planning.MatrixProvider
) -> planning.Route:
    """The visits in this order, timed as the planner times a route: serve each as soon
    as the vehicle is there and its window is open, and leave the depot later by the
    first stop's wait (drivers wait at the depot, not at the customer)."""
    index, dist, dur = _matrices(s, visits, matrix)
    home = index[s.vehicle.depot.id]
    depart = shift_bounds(s.day.problem, s.vehicle)[0]
    while True:
        here, t, metres = home, depart, 0
        stops: list[planning.PlannedStop] = []
        for site, jobs in visits:
            there = index[site.id]
            arrival = t + int(dur[here, there])
            metres += int(dist[here, there])
            window = _window(jobs, arrival)
            service = sum(j.service_s for j in jobs)
            t = max(arrival, window[0]) + service
            ids = tuple(j.order_id for j in jobs)
            stops.append(planning.PlannedStop(ids, site, arrival, t, window, service))
            here = there
        back = t + int(dur[here, home])
        metres += int(dist[here, home])
        wait = stops[0].service_start_s - stops[0].arrival_s
        if wait <= 0:  # the second pass arrives exactly when the first stop opens
            return planning.Route(s.vehicle.id, tuple(stops), depart, back, metres, back - depart)
        depart += wait


def time_given(
    s: Setting,
    visits: Sequence[Visit],
    times: Sequence[tuple[datetime, datetime]],
    depart: datetime,
    back: datetime,
    matrix: planning.MatrixProvider,
) -> planning.Route:
    """The visits with the caller's times (arrival, departure per stop) in planner
    seconds; the distance is the matrix's, leg by leg."""
    index, dist, _ = _matrices(s, visits, matrix)

    def at(t: datetime) -> int:
        return int((t - s.day.midnight).total_seconds())

    stops, here, metres = [], index[s.vehicle.depot.id], 0
    for (site, jobs), (arrival, departure) in zip(visits, times, strict=True):
        metres += int(dist[here, index[site.id]])
        here = index[site.id]
        ids, service = tuple(j.order_id for j in jobs), sum(j.service_s for j in jobs)
        window = _window(jobs, at(arrival))
        stops.append(planning.PlannedStop(ids, site, at(arrival), at(departure), window, service))
    metres += int(dist[here, index[s.vehicle.depot.id]])
    start, end = at(depart), at(back)
    return planning.Route(s.vehicle.id, tuple(stops), start, end, metres, end - start)


def check_route(s: Setting, route: planning.Route, matrix: planning.MatrixProvider) -> None:
    """Raise ``TripInfeasible`` with the independent checker's findings, each coded."""
    problem = _served(s, {o for stop in route.stops for o in stop.order_ids})
    found = planning.check(problem, planning.Plan(routes=(route,)), matrix)
    if found:
        raise TripInfeasible([Problem(_code(v), v) for v in found])


def _served(s: Setting, order_ids: set[str]) -> planning.Problem:
    """The vehicle's day with only the trip's orders: what the checker is given."""
    return replace(
        s.day.problem, jobs=tuple(j for j in s.day.problem.jobs if j.order_id in order_ids)
    )


def _code(violation: str) -> str:
    return next((code for words, code in _VIOLATIONS if words in violation), "plan_check_failed")
