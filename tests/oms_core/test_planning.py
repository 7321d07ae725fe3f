"""Planning on generated days around Jakarta: every plan passes the independent checker."""

from __future__ import annotations

import dataclasses

import pytest

from oms_core.planning import (
    HaversineMatrix,
    Job,
    Problem,
    Route,
    Site,
    Vehicle,
    check,
    from_position,
    nearest_neighbour,
    plan,
    random_problem,
    replan_remaining,
)
from oms_core.planning.generate import HOUR

MATRIX = HaversineMatrix()


@pytest.mark.parametrize(("n_jobs", "n_vehicles"), [(10, 2), (50, 3), (200, 10)])
def test_plans_of_several_sizes_pass_the_checker(n_jobs: int, n_vehicles: int) -> None:
    problem = random_problem(n_jobs, n_vehicles, seed=n_jobs)
    solved = plan(problem, time_limit_s=1.0)
    greedy = nearest_neighbour(problem)
    assert check(problem, solved, MATRIX) == []
    assert check(problem, greedy, MATRIX) == []
    assert dict(solved.unassigned) == {}
    assert solved.served == n_jobs
    assert greedy.served + len(greedy.unassigned) == n_jobs
    assert solved.distance_m < greedy.distance_m


def test_two_depots_each_vehicle_comes_home() -> None:
    problem = random_problem(60, 4, seed=5, n_depots=2)
    solved = plan(problem, time_limit_s=1.0)
    assert check(problem, solved, MATRIX) == []
    assert solved.served == 60
    depots = {v.id: v.depot.id for v in problem.vehicles}
    assert {depots[r.vehicle_id] for r in solved.routes} == {"D0", "D1"}


def test_depot_hours_and_a_speed_cap_shape_the_routes() -> None:
    base = random_problem(30, 3, seed=9)
    slow = tuple(dataclasses.replace(v, max_speed_kmh=20.0) for v in base.vehicles)
    problem = dataclasses.replace(base, vehicles=slow, depot_open_s=9 * HOUR)
    solved = plan(problem, time_limit_s=1.0)
    assert check(problem, solved, MATRIX) == []
    assert all(r.depart_s >= 9 * HOUR for r in solved.routes)
    # a departure before the depot opens is what the checker reports for this problem
    early = dataclasses.replace(solved.routes[0], depart_s=8 * HOUR)
    broken = dataclasses.replace(solved, routes=(early, *solved.routes[1:]))
    assert any("before its shift/depot opens" in v for v in check(problem, broken, MATRIX))


def _van(vid: str, depot: Site, kg: float = 1_000.0, m3: float = 8.0) -> Vehicle:
    return Vehicle(vid, depot, kg, m3, 7 * HOUR, 19 * HOUR)


def test_jobs_that_cannot_be_served_get_reasons() -> None:
    depot = Site("D", -6.2, 106.8166)
    near = Site("N", -6.21, 106.82)
    far = Site("F", -6.9, 107.6)  # about 150 km away, 6.5 h each way at 30 km/h

    def job(oid: str, site: Site = near, kg: float = 10.0, m3: float = 0.1, w: int = 9) -> Job:
        return Job(oid, site, kg, m3, 300, w * HOUR, (w + 2) * HOUR)

    problem = Problem(
        jobs=(
            job("ok"),
            job("heavy", kg=2_000.0),
            job("bulky", m3=20.0),
            job("large", kg=900.0, m3=7.0),
            job("early", w=3),
            job("far", site=far, w=14),
            Job("backwards", near, 1.0, 0.1, 60, 10 * HOUR, 9 * HOUR),
            job("ok"),
        ),
        vehicles=(_van("strong", depot, kg=1_000, m3=2), _van("roomy", depot, kg=100, m3=8)),
        depot_open_s=6 * HOUR,
        depot_close_s=20 * HOUR,
    )
    solved = plan(problem, time_limit_s=0.5)
    assert dict(solved.unassigned) == {
        "heavy": "too_heavy_for_any_vehicle",
        "bulky": "too_bulky_for_any_vehicle",
        "large": "too_large_for_any_vehicle",
        "early": "window_unreachable",
        "far": "cannot_return_within_shift",
        "backwards": "invalid_job",
        "ok": "duplicate_order_id",
    }
    assert nearest_neighbour(problem).unassigned == solved.unassigned


def test_what_fits_is_served_and_the_rest_is_left_by_the_solver() -> None:
    depot = Site("D", -6.2, 106.8166)
    jobs = tuple(
        Job(f"O{i}", Site(f"S{i}", -6.2 + i / 200, 106.82), 60.0, 0.1, 300, 8 * HOUR, 18 * HOUR)
        for i in range(3)
    )
    problem = Problem(jobs=jobs, vehicles=(_van("V", depot, kg=130.0),))
    solved = plan(problem, time_limit_s=0.5)
    assert check(problem, solved, MATRIX) == []
    assert solved.served == 2
    assert list(solved.unassigned.values()) == ["not_served_by_solver"]


def test_replan_remaining_from_the_road() -> None:
    problem = random_problem(40, 2, seed=11)
    solved = plan(problem, time_limit_s=0.5)
    route = max(solved.routes, key=lambda r: len(r.stops))
    here = route.stops[2]
    done = {o for s in route.stops[:3] for o in s.order_ids}
    left = {o for s in route.stops[3:] for o in s.order_ids}
    vehicle = next(v for v in problem.vehicles if v.id == route.vehicle_id)
    remaining = Problem(
        jobs=tuple(j for j in problem.jobs if j.order_id in left),
        vehicles=(vehicle,),
        depot_open_s=problem.depot_open_s,
        depot_close_s=problem.depot_close_s,
    )
    again = replan_remaining(remaining, here.site, here.departure_s, time_limit_s=0.5)
    assert check(from_position(remaining, here.site, here.departure_s), again, MATRIX) == []
    assert again.served == len(left) and not done & {
        o for r in again.routes for s in r.stops for o in s.order_ids
    }
    assert again.routes[0].depart_s >= here.departure_s
    # the replanned trip is no longer than what was left of the original one
    rest = route.distance_m - sum(_leg_distances(problem, route)[:3])
    assert again.distance_m <= rest
    with pytest.raises(ValueError, match="exactly one vehicle"):
        replan_remaining(problem, here.site, here.departure_s)


def _leg_distances(problem: Problem, route: Route) -> list[int]:
    """Metres of each leg up to each stop of ``route`` (from the depot)."""
    sites = problem.sites()
    dist, _ = MATRIX.matrices(sites)
    idx = {s.id: i for i, s in enumerate(sites)}
    vehicle = next(v for v in problem.vehicles if v.id == route.vehicle_id)
    here, out = idx[vehicle.depot.id], []
    for stop in route.stops:
        out.append(int(dist[here, idx[stop.site.id]]))
        here = idx[stop.site.id]
    return out


def test_same_seed_and_iterations_give_the_same_plan() -> None:
    problem = random_problem(50, 3, seed=4)
    first = plan(problem, time_limit_s=30.0, max_iterations=300, seed=7)
    again = plan(problem, time_limit_s=30.0, max_iterations=300, seed=7)
    assert first == again
    assert check(problem, first, MATRIX) == []


def test_progress_reports_start_and_end() -> None:
    seen: list[str] = []
    plan(random_problem(20, 2, seed=2), time_limit_s=1.5, progress=seen.append)
    assert seen[0].startswith("planning 20 jobs on 2 vehicles")
    assert any(m.startswith("best cost") for m in seen[1:-1])
    assert seen[-1].startswith("done in") and "20 orders served" in seen[-1]
