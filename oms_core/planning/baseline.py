"""A time-window-aware nearest-neighbour planner: the yardstick for the solver.

Vehicles are filled one after another. From where the vehicle is, it goes next to the
job it can *start serving* soonest (travel plus any wait for the window), among those
that still fit its load, can be reached inside their window, and leave time to get back
before the shift and the depot close. When none is left it goes home and the next
vehicle starts. Jobs no vehicle takes are unassigned with ``not_served_by_baseline``.
"""

from __future__ import annotations

import numpy as np

from oms_core.planning.matrix import HaversineMatrix, MatrixProvider
from oms_core.planning.model import Job, Plan, Problem, Route
from oms_core.planning.schedule import (
    NOT_SERVED_BY_BASELINE,
    Legs,
    precheck,
    shift_bounds,
    time_route,
)


def nearest_neighbour(problem: Problem, *, matrix: MatrixProvider | None = None) -> Plan:
    """Plan ``problem`` greedily (deterministic; ``matrix`` defaults to ``HaversineMatrix()``)."""
    legs = Legs.build(problem, HaversineMatrix() if matrix is None else matrix)
    unassigned = precheck(problem, legs)
    jobs = [j for j in problem.jobs if j.order_id not in unassigned]
    site = np.array([legs.index[j.site.id] for j in jobs], dtype=np.int64)
    early_w = np.array([j.window_start_s for j in jobs], dtype=np.int64)
    late_w = np.array([j.window_end_s for j in jobs], dtype=np.int64)
    service = np.array([j.service_s for j in jobs], dtype=np.int64)
    weight = np.array([j.weight_kg for j in jobs], dtype=np.float64)
    volume = np.array([j.volume_m3 for j in jobs], dtype=np.float64)
    left = np.ones(len(jobs), dtype=bool)
    routes: list[Route] = []
    for vehicle in problem.vehicles:
        if not left.any():
            break
        dur = legs.dur[vehicle.id]
        t, last = shift_bounds(problem, vehicle)
        here, home = legs.index[vehicle.start_site.id], legs.index[vehicle.depot.id]
        kg = m3 = 0.0
        order: list[Job] = []
        while True:
            begin = np.maximum(t + dur[here, site], early_w)
            ok = (
                left
                & (begin <= late_w)
                & (begin + service + dur[site, home] <= last)
                & (kg + weight <= vehicle.capacity_kg + 1e-9)
                & (m3 + volume <= vehicle.capacity_m3 + 1e-9)
            )
            if not ok.any():
                break
            pick = int(np.argmin(np.where(ok, begin, np.iinfo(np.int64).max)))
            left[pick] = False
            order.append(jobs[pick])
            kg, m3 = kg + weight[pick], m3 + volume[pick]
            t, here = int(begin[pick] + service[pick]), int(site[pick])
        if order:
            route = time_route(problem, vehicle, order, legs)
            assert route is not None, "the greedy only appends feasible jobs"
            routes.append(route)
    for i in np.flatnonzero(left):
        unassigned[jobs[int(i)].order_id] = NOT_SERVED_BY_BASELINE
    return Plan(routes=tuple(routes), unassigned=unassigned)
