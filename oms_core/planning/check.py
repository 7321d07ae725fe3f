"""An independent plan checker: re-derives every rule from the problem, not from the solver.

It shares only the model and the matrix provider with the planners (it times nothing
itself; it checks the times a plan states against the matrix). An empty list means the
plan is valid; each string names the order, vehicle or stop that breaks a rule.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from oms_core.planning.matrix import IntMatrix, MatrixProvider
from oms_core.planning.model import Job, Plan, Problem, Route, Site, Vehicle

_EPS = 1e-9


def check(problem: Problem, plan: Plan, matrix: MatrixProvider) -> list[str]:
    """Every rule the plan breaks: orders once, windows, capacities, shifts, depot hours, times."""
    jobs = {j.order_id: j for j in problem.jobs}
    vehicles = {v.id: v for v in problem.vehicles}
    out = _orders_once(problem, plan)
    sites: dict[str, Site] = {}
    for s in problem.sites():
        sites.setdefault(s.id, s)
    for r in plan.routes:
        for stop in r.stops:
            sites.setdefault(stop.site.id, stop.site)
    order = list(sites.values())
    index = {s.id: i for i, s in enumerate(order)}
    dist, dur = matrix.matrices(order)
    used: set[str] = set()
    for route in plan.routes:
        vehicle = vehicles.get(route.vehicle_id)
        if vehicle is None:
            out.append(f"route for unknown vehicle {route.vehicle_id}")
            continue
        if route.vehicle_id in used:
            out.append(f"vehicle {route.vehicle_id} has more than one route")
        used.add(route.vehicle_id)
        legs = _capped(dist, dur, vehicle.max_speed_kmh)
        out.extend(_route(problem, vehicle, route, jobs, index, dist, legs))
    return out


def _orders_once(problem: Problem, plan: Plan) -> list[str]:
    out: list[str] = []
    known = Counter(j.order_id for j in problem.jobs)
    out.extend(f"order {o} appears {n} times in the problem" for o, n in known.items() if n > 1)
    routed = Counter(o for r in plan.routes for s in r.stops for o in s.order_ids)
    for order_id in known:
        n = routed[order_id]
        if n > 1:
            out.append(f"order {order_id} is on routes {n} times")
        if n and order_id in plan.unassigned:
            out.append(f"order {order_id} is both routed and unassigned")
        if not n and order_id not in plan.unassigned:
            out.append(f"order {order_id} is neither routed nor unassigned")
    for order_id in [*routed, *plan.unassigned]:
        if order_id not in known:
            out.append(f"order {order_id} is not in the problem")
    return out


def _capped(dist: IntMatrix, dur: IntMatrix, max_speed_kmh: float | None) -> IntMatrix:
    if max_speed_kmh is None:
        return dur
    capped: IntMatrix = np.maximum(dur, np.ceil(dist * 3.6 / max_speed_kmh).astype(np.int64))
    return capped


def _route(
    problem: Problem,
    vehicle: Vehicle,
    route: Route,
    jobs: dict[str, Job],
    index: dict[str, int],
    dist: IntMatrix,
    dur: IntMatrix,
) -> list[str]:
    out: list[str] = []
    who = f"vehicle {vehicle.id}"
    earliest = vehicle.shift_start_s
    if vehicle.start is None and problem.depot_open_s > earliest:
        earliest = problem.depot_open_s
    if route.depart_s < earliest:
        out.append(f"{who} departs at {route.depart_s}, before its shift/depot opens ({earliest})")
    if route.return_s > vehicle.shift_end_s:
        out.append(f"{who} returns at {route.return_s}, after its shift ({vehicle.shift_end_s})")
    if route.return_s > problem.depot_close_s:
        out.append(f"{who} returns at {route.return_s}, after the depot closes")
    if route.duration_s != route.return_s - route.depart_s:
        out.append(f"{who} duration {route.duration_s} is not return - depart")
    weight = volume = 0.0
    here, free_at, metres = index[vehicle.start_site.id], route.depart_s, 0
    for n, stop in enumerate(route.stops):
        where = f"{who} stop {n}"
        there = index[stop.site.id]
        if stop.arrival_s < free_at + int(dur[here, there]):
            out.append(f"{where} arrives at {stop.arrival_s}, too soon after {free_at} for the leg")
        metres += int(dist[here, there])
        served = [jobs[o] for o in stop.order_ids if o in jobs]
        service = sum(j.service_s for j in served)
        begin = stop.departure_s - service
        if begin < stop.arrival_s:
            out.append(f"{where} leaves at {stop.departure_s}, before its service time is done")
        for job in served:
            weight += job.weight_kg
            volume += job.volume_m3
            if job.site.id != stop.site.id:
                out.append(f"{where}: order {job.order_id} is for site {job.site.id}")
            if not job.window_start_s <= begin <= job.window_end_s:
                out.append(
                    f"{where}: order {job.order_id} served at {begin}, outside its window"
                    f" [{job.window_start_s}, {job.window_end_s}]"
                )
        here, free_at = there, stop.departure_s
    home = index[vehicle.depot.id]
    if route.return_s < free_at + int(dur[here, home]):
        out.append(f"{who} is back at {route.return_s}, too soon after {free_at} for the leg")
    metres += int(dist[here, home])
    if route.distance_m != metres:
        out.append(f"{who} distance {route.distance_m} m, the legs add up to {metres} m")
    if weight > vehicle.capacity_kg + _EPS:
        out.append(f"{who} carries {weight:g} kg, capacity {vehicle.capacity_kg:g} kg")
    if volume > vehicle.capacity_m3 + _EPS:
        out.append(f"{who} carries {volume:g} m³, capacity {vehicle.capacity_m3:g} m³")
    return out
