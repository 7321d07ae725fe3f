"""Plan a day's deliveries with PyVRP behind a small adapter.

The adapter maps our model onto PyVRP's (locations = distinct sites, one PyVRP depot per
depot or road-start site, one vehicle type per group of identical vehicles, loads as
[grams, cm³]) and maps PyVRP's visit order back; the times on each route come from
``schedule.time_route``. Orders no vehicle could serve are taken out before solving, with
a reason. The rest are optional clients with a prize far above any detour, so PyVRP
serves every one it can fit and leaves out only what capacity or time cannot take.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from pyvrp import Client, Depot, Location, ProblemData, VehicleType, solve
from pyvrp.constants import MAX_VALUE

from oms_core.planning.matrix import HaversineMatrix, MatrixProvider, vehicle_durations
from oms_core.planning.model import (
    CM3_PER_M3,
    GRAMS_PER_KG,
    Job,
    Plan,
    Problem,
    Route,
    Site,
    Vehicle,
)
from oms_core.planning.schedule import (
    NOT_SERVED_BY_SOLVER,
    Legs,
    precheck,
    shift_bounds,
    time_route,
)

Progress = Callable[[str], None]
# A served order is worth this many longest legs: more than any detour it can cost.
PRIZE_IN_LONGEST_LEGS = 100
PROGRESS_EVERY_S = 1.0


def demand(job: Job) -> list[int]:
    """[grams, cm³], rounded up so the solver never under-counts a load."""
    return [
        math.ceil(round(job.weight_kg * GRAMS_PER_KG, 6)),
        math.ceil(round(job.volume_m3 * CM3_PER_M3, 6)),
    ]


def capacity(vehicle: Vehicle) -> list[int]:
    """[grams, cm³], rounded down so a full vehicle is never over its real capacity."""
    return [
        math.floor(round(vehicle.capacity_kg * GRAMS_PER_KG, 6)),
        math.floor(round(vehicle.capacity_m3 * CM3_PER_M3, 6)),
    ]


class _Stop:
    """PyVRP stopping criterion: time limit, optional iteration cap, progress reports."""

    def __init__(self, limit_s: float, max_iterations: int | None, progress: Progress | None):
        self.limit_s, self.max_iterations, self.progress = limit_s, max_iterations, progress
        self.start = time.perf_counter()
        self.next_report = self.start + PROGRESS_EVERY_S
        self.iterations = 0

    def __call__(self, best_cost: int) -> bool:
        now = time.perf_counter()
        self.iterations += 1
        if self.progress is not None and now >= self.next_report:
            self.progress(f"best cost {best_cost} after {now - self.start:.1f} s")
            self.next_report = now + PROGRESS_EVERY_S
        if self.max_iterations is not None and self.iterations > self.max_iterations:
            return True
        return now - self.start > self.limit_s


def from_position(problem: Problem, start_site: Site, start_time_s: int) -> Problem:
    """The same problem with every vehicle setting off from ``start_site`` at ``start_time_s``."""
    vehicles = tuple(
        dataclasses.replace(v, start=start_site, shift_start_s=max(v.shift_start_s, start_time_s))
        for v in problem.vehicles
    )
    return dataclasses.replace(problem, vehicles=vehicles)


def replan_remaining(
    problem_for_one_vehicle: Problem,
    start_site: Site,
    start_time_s: int,
    *,
    matrix: MatrixProvider | None = None,
    time_limit_s: float = 2.0,
    seed: int = 1,
    max_iterations: int | None = None,
    progress: Progress | None = None,
) -> Plan:
    """Re-order the remaining stops of one trip from where the vehicle is now (open start).

    Check the answer with ``check(from_position(problem, start_site, start_time_s), ...)``.
    """
    if len(problem_for_one_vehicle.vehicles) != 1:
        raise ValueError("replan_remaining takes a problem with exactly one vehicle")
    return plan(
        from_position(problem_for_one_vehicle, start_site, start_time_s),
        matrix=matrix,
        time_limit_s=time_limit_s,
        seed=seed,
        max_iterations=max_iterations,
        progress=progress,
    )


def plan(
    problem: Problem,
    *,
    matrix: MatrixProvider | None = None,
    time_limit_s: float = 10.0,
    seed: int = 1,
    max_iterations: int | None = None,
    progress: Progress | None = None,
) -> Plan:
    """Assign, order and time the problem's jobs; every job ends up routed or unassigned.

    ``matrix`` defaults to ``HaversineMatrix()``. The search stops after ``time_limit_s``
    or ``max_iterations`` (set it for runs that must repeat exactly: with a fixed seed
    the same iterations give the same plan, a time limit does not).
    """
    provider = HaversineMatrix() if matrix is None else matrix
    started = time.perf_counter()
    legs = Legs.build(problem, provider)
    unassigned = precheck(problem, legs)
    jobs = [j for j in problem.jobs if j.order_id not in unassigned]
    if progress is not None:
        progress(
            f"planning {len(jobs)} jobs on {len(problem.vehicles)} vehicles"
            f" ({len(unassigned)} ruled out before solving)"
        )
    routes: list[Route] = []
    if jobs:
        routes, dropped = _solve(problem, jobs, legs, time_limit_s, seed, max_iterations, progress)
        unassigned.update(dict.fromkeys(dropped, NOT_SERVED_BY_SOLVER))
    result = Plan(routes=tuple(routes), unassigned=unassigned)
    if progress is not None:
        progress(
            f"done in {time.perf_counter() - started:.1f} s: {len(routes)} routes,"
            f" {result.served} orders served, {len(unassigned)} unassigned,"
            f" {result.distance_m} m"
        )
    return result


def _solve(
    problem: Problem,
    jobs: list[Job],
    legs: Legs,
    time_limit_s: float,
    seed: int,
    max_iterations: int | None,
    progress: Progress | None,
) -> tuple[list[Route], list[str]]:
    sites = problem.sites()
    locations = [Location(x=s.lon, y=s.lat, name=s.id) for s in sites]

    depots: list[Depot] = []
    depot_of: dict[tuple[str, bool], int] = {}

    def depot(site: Site, on_road: bool) -> int:
        key = (site.id, on_road)
        if key not in depot_of:
            early, late = (
                (0, MAX_VALUE) if on_road else (problem.depot_open_s, problem.depot_close_s)
            )
            depot_of[key] = len(depots)
            depots.append(Depot(legs.index[site.id], tw_early=early, tw_late=late, name=site.id))
        return depot_of[key]

    speeds = sorted({v.max_speed_kmh for v in problem.vehicles if v.max_speed_kmh is not None})
    profile_of: dict[float | None, int] = {None: 0, **{s: i + 1 for i, s in enumerate(speeds)}}
    groups: dict[tuple[int, int, tuple[int, ...], int, int, int], list[Vehicle]] = defaultdict(list)
    for v in problem.vehicles:
        early, late = shift_bounds(problem, v)
        start = depot(v.start_site, v.start is not None)
        end = depot(v.depot, False)
        key = (start, end, tuple(capacity(v)), early, late, profile_of[v.max_speed_kmh])
        groups[key].append(v)
    vehicle_types = [
        VehicleType(
            num_available=len(vs),
            capacity=list(key[2]),
            start_depot=key[0],
            end_depot=key[1],
            tw_early=key[3],
            tw_late=key[4],
            profile=key[5],
            name=",".join(v.id for v in vs),
        )
        for key, vs in groups.items()
    ]

    dist = legs.dist
    prize = PRIZE_IN_LONGEST_LEGS * max(1, int(dist.max()))
    clients = [
        Client(
            legs.index[j.site.id],
            delivery=demand(j),
            service_duration=j.service_s,
            tw_early=j.window_start_s,
            tw_late=j.window_end_s,
            prize=prize,
            required=False,
            name=j.order_id,
        )
        for j in jobs
    ]
    # PyVRP's stubs spell its matrix type as ``np.ndarray[int]``, which numpy's typing rejects.
    distances: list[Any] = [dist] * (len(speeds) + 1)
    durations: list[Any] = [vehicle_durations(dist, legs.base_dur, s) for s in (None, *speeds)]
    data = ProblemData(
        locations,
        clients,
        depots,
        vehicle_types,
        distances,
        durations,
    )
    stop = _Stop(time_limit_s, max_iterations, progress)
    best = solve(data, stop=stop, seed=seed, display=False).best

    routes: list[Route] = []
    dropped: list[str] = []
    served: set[int] = set()
    pools = [list(vs) for vs in groups.values()]
    for r in best.routes():
        vehicle = pools[r.vehicle_type()].pop(0)
        order = [a.idx for a in r if a.is_client()]
        timed = time_route(problem, vehicle, [jobs[i] for i in order], legs)
        if timed is None:
            dropped.extend(jobs[i].order_id for i in order)
        else:
            routes.append(timed)
            served.update(order)
    lost = set(dropped)
    dropped.extend(
        j.order_id for i, j in enumerate(jobs) if i not in served and j.order_id not in lost
    )
    return routes, dropped
