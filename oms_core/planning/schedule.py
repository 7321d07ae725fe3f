"""Shared ground for the solver and the baseline: legs, shift bounds, timing a route, pre-checks.

Both planners only decide *which* vehicle serves *which* orders in *what* order; the
times on the returned route always come from ``time_route`` here, so every plan is timed
by the same rules the checker verifies independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from oms_core.planning.matrix import IntMatrix, MatrixProvider, vehicle_durations
from oms_core.planning.model import Job, PlannedStop, Problem, Route, Vehicle

# Reason codes for orders that are not on any route (stable: stored and shown later).
INVALID_JOB = "invalid_job"
NO_VEHICLE = "no_vehicle"
TOO_HEAVY = "too_heavy_for_any_vehicle"
TOO_BULKY = "too_bulky_for_any_vehicle"
TOO_LARGE = "too_large_for_any_vehicle"
WINDOW_UNREACHABLE = "window_unreachable"
NO_RETURN_IN_SHIFT = "cannot_return_within_shift"
NOT_SERVED_BY_SOLVER = "not_served_by_solver"
NOT_SERVED_BY_BASELINE = "not_served_by_baseline"
DUPLICATE_ORDER = "duplicate_order_id"


def shift_bounds(problem: Problem, vehicle: Vehicle) -> tuple[int, int]:
    """(earliest departure, latest return) from the shift and the depot's opening hours.

    A vehicle re-planned from the road (``start`` set) is not held by the depot's
    opening time when it sets off, only when it comes back.
    """
    early = vehicle.shift_start_s
    if vehicle.start is None:
        early = max(early, problem.depot_open_s)
    return early, min(vehicle.shift_end_s, problem.depot_close_s)


@dataclass(frozen=True)
class Legs:
    """Matrices over ``problem.sites()`` with per-vehicle durations (speed caps applied)."""

    index: dict[str, int]
    dist: IntMatrix
    base_dur: IntMatrix
    dur: dict[str, IntMatrix]

    @classmethod
    def build(cls, problem: Problem, matrix: MatrixProvider) -> Legs:
        sites = problem.sites()
        dist, dur = matrix.matrices(sites)
        index = {s.id: i for i, s in enumerate(sites)}
        per_vehicle = {
            v.id: vehicle_durations(dist, dur, v.max_speed_kmh) for v in problem.vehicles
        }
        return cls(index=index, dist=dist, base_dur=dur, dur=per_vehicle)


def fits(job: Job, vehicle: Vehicle) -> bool:
    """Whether one job alone fits in the vehicle."""
    return job.weight_kg <= vehicle.capacity_kg and job.volume_m3 <= vehicle.capacity_m3


def time_route(problem: Problem, vehicle: Vehicle, jobs: Sequence[Job], legs: Legs) -> Route | None:
    """Time ``jobs`` in this order on ``vehicle``; None if a window, shift or capacity breaks.

    Service starts as soon as the vehicle is there and the window is open. Consecutive
    jobs at one site share a stop when the stop's service start lies in every window.
    The departure is then delayed by the wait at the first stop, so drivers wait at the
    depot rather than at the customer.
    """
    if sum(j.weight_kg for j in jobs) > vehicle.capacity_kg + 1e-9:
        return None
    if sum(j.volume_m3 for j in jobs) > vehicle.capacity_m3 + 1e-9:
        return None
    early, late = shift_bounds(problem, vehicle)
    route = _forward(vehicle, jobs, legs, early)
    if route is None:
        return None
    if route.stops:
        first = route.stops[0]
        delay = first.service_start_s - first.arrival_s
        if delay > 0:
            route = _forward(vehicle, jobs, legs, early + delay)
            assert route is not None  # same service starts, so still feasible
    return route if route.return_s <= late else None


def _forward(vehicle: Vehicle, jobs: Sequence[Job], legs: Legs, depart: int) -> Route | None:
    dur, dist, idx = legs.dur[vehicle.id], legs.dist, legs.index
    here = idx[vehicle.start_site.id]
    t, metres = depart, 0
    stops: list[PlannedStop] = []
    for job in jobs:
        nxt = idx[job.site.id]
        if stops and nxt == here:
            last = stops[-1]
            start = last.service_start_s
            if job.window_start_s <= start <= job.window_end_s:
                stops[-1] = PlannedStop(
                    order_ids=(*last.order_ids, job.order_id),
                    site=last.site,
                    arrival_s=last.arrival_s,
                    departure_s=last.departure_s + job.service_s,
                    window=(
                        max(last.window[0], job.window_start_s),
                        min(last.window[1], job.window_end_s),
                    ),
                    service_s=last.service_s + job.service_s,
                )
                t = stops[-1].departure_s
                continue
        arrival = t + int(dur[here, nxt])
        metres += int(dist[here, nxt])
        start = max(arrival, job.window_start_s)
        if start > job.window_end_s:
            return None
        t = start + job.service_s
        stops.append(
            PlannedStop(
                order_ids=(job.order_id,),
                site=job.site,
                arrival_s=arrival,
                departure_s=t,
                window=(job.window_start_s, job.window_end_s),
                service_s=job.service_s,
            )
        )
        here = nxt
    home = idx[vehicle.depot.id]
    back = t + int(dur[here, home])
    metres += int(dist[here, home])
    return Route(
        vehicle_id=vehicle.id,
        stops=tuple(stops),
        depart_s=depart,
        return_s=back,
        distance_m=metres,
        duration_s=back - depart,
    )


def precheck(problem: Problem, legs: Legs) -> dict[str, str]:
    """Orders no vehicle could serve even alone, each with the first reason that rules it out."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for job in problem.jobs:
        if job.order_id in seen:
            out[job.order_id] = DUPLICATE_ORDER
            continue
        seen.add(job.order_id)
        reason = _job_reason(problem, job, legs)
        if reason is not None:
            out[job.order_id] = reason
    return out


def _job_reason(problem: Problem, job: Job, legs: Legs) -> str | None:
    if (
        job.weight_kg < 0
        or job.volume_m3 < 0
        or job.service_s < 0
        or job.window_end_s < job.window_start_s
    ):
        return INVALID_JOB
    if not problem.vehicles:
        return NO_VEHICLE
    sized = [v for v in problem.vehicles if fits(job, v)]
    if not sized:
        if all(job.weight_kg > v.capacity_kg for v in problem.vehicles):
            return TOO_HEAVY
        if all(job.volume_m3 > v.capacity_m3 for v in problem.vehicles):
            return TOO_BULKY
        return TOO_LARGE
    reachable = False
    for v in sized:
        early, late = shift_bounds(problem, v)
        dur = legs.dur[v.id]
        start, site, home = (
            legs.index[v.start_site.id],
            legs.index[job.site.id],
            legs.index[v.depot.id],
        )
        begin = max(early + int(dur[start, site]), job.window_start_s)
        if begin > job.window_end_s:
            continue
        reachable = True
        if begin + job.service_s + int(dur[site, home]) <= late:
            return None
    return NO_RETURN_IN_SHIFT if reachable else WINDOW_UNREACHABLE
