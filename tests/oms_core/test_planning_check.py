"""The checker on a hand-timed trip along a line, broken one rule at a time.

Sites sit on a line: ``lat`` is the position in km, so D→A is 1,000 m and 100 s at the
``LineMatrix``'s 36 km/h. The valid trip: leave D at 400, A at 500–560, B at 660–720,
back at D at 920; 4,000 m.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import numpy as np
import pytest

from oms_core.planning import (
    Job,
    OsrmMatrix,
    Plan,
    PlannedStop,
    Problem,
    Route,
    Site,
    Vehicle,
    check,
    nearest_neighbour,
    plan,
)
from oms_core.planning.matrix import HaversineMatrix, IntMatrix


class LineMatrix:
    """Distance = |Δlat| km in metres, driven at 10 m/s."""

    def matrices(self, sites: Sequence[Site]) -> tuple[IntMatrix, IntMatrix]:
        km = np.array([s.lat for s in sites])
        dist = np.rint(np.abs(km[:, None] - km[None, :]) * 1000).astype(np.int64)
        return dist, dist // 10


D, A, B = Site("D", 0.0, 0.0), Site("A", 1.0, 0.0), Site("B", 2.0, 0.0)
JOB_A = Job("a", A, 10.0, 0.5, 60, 500, 1000)
JOB_B = Job("b", B, 10.0, 0.5, 60, 0, 5000)
VAN = Vehicle("v", D, 25.0, 1.5, 0, 10_000)
PROBLEM = Problem(jobs=(JOB_A, JOB_B), vehicles=(VAN,), depot_open_s=0, depot_close_s=10_000)
STOP_A = PlannedStop(("a",), A, 500, 560, (500, 1000), 60)
STOP_B = PlannedStop(("b",), B, 660, 720, (0, 5000), 60)
ROUTE = Route("v", (STOP_A, STOP_B), 400, 920, 4000, 520)
VALID = Plan(routes=(ROUTE,))
M = LineMatrix()


def _with(**changes: object) -> Plan:
    return Plan(routes=(dataclasses.replace(ROUTE, **changes),))  # type: ignore[arg-type]


def _stop_a(**changes: object) -> Plan:
    return _with(stops=(dataclasses.replace(STOP_A, **changes), STOP_B))  # type: ignore[arg-type]


def test_the_hand_timed_trip_is_valid() -> None:
    assert check(PROBLEM, VALID, M) == []


def test_the_planners_find_the_obvious_trip() -> None:
    for found in (plan(PROBLEM, matrix=M, time_limit_s=0.2), nearest_neighbour(PROBLEM, matrix=M)):
        assert check(PROBLEM, found, M) == []
        assert sorted(s.order_ids for s in found.routes[0].stops) == [("a",), ("b",)]
        assert found.distance_m == 4000  # out and back along the line, either order
        first = found.routes[0].stops[0]
        assert first.arrival_s == first.service_start_s  # waits at the depot, not on site


@pytest.mark.parametrize(
    ("problem", "broken", "expected"),
    [
        (
            PROBLEM,
            Plan(routes=(), unassigned={"a": "x"}),
            "order b is neither routed nor unassigned",
        ),
        (
            PROBLEM,
            Plan(routes=(ROUTE,), unassigned={"a": "x"}),
            "order a is both routed and unassigned",
        ),
        (
            PROBLEM,
            _with(
                stops=(STOP_A, STOP_B, dataclasses.replace(STOP_B, arrival_s=720, departure_s=780))
            ),
            "order b is on routes 2 times",
        ),
        (PROBLEM, Plan(routes=(ROUTE,), unassigned={"zz": "x"}), "order zz is not in the problem"),
        (PROBLEM, Plan(routes=(ROUTE, ROUTE)), "vehicle v has more than one route"),
        (
            PROBLEM,
            Plan(routes=(dataclasses.replace(ROUTE, vehicle_id="w"),)),
            "route for unknown vehicle w",
        ),
        (
            dataclasses.replace(
                PROBLEM, jobs=(dataclasses.replace(JOB_A, window_start_s=700), JOB_B)
            ),
            VALID,
            "order a served at 500, outside its window [700, 1000]",
        ),
        (
            dataclasses.replace(
                PROBLEM, jobs=(dataclasses.replace(JOB_A, window_end_s=499), JOB_B)
            ),
            VALID,
            "outside its window [500, 499]",
        ),
        (
            dataclasses.replace(PROBLEM, vehicles=(dataclasses.replace(VAN, capacity_kg=15.0),)),
            VALID,
            "carries 20 kg, capacity 15 kg",
        ),
        (
            dataclasses.replace(PROBLEM, vehicles=(dataclasses.replace(VAN, capacity_m3=0.9),)),
            VALID,
            "carries 1 m³, capacity 0.9 m³",
        ),
        (
            dataclasses.replace(PROBLEM, vehicles=(dataclasses.replace(VAN, shift_start_s=450),)),
            VALID,
            "departs at 400, before its shift/depot opens (450)",
        ),
        (
            dataclasses.replace(PROBLEM, vehicles=(dataclasses.replace(VAN, shift_end_s=900),)),
            VALID,
            "returns at 920, after its shift (900)",
        ),
        (
            dataclasses.replace(PROBLEM, depot_open_s=450),
            VALID,
            "before its shift/depot opens (450)",
        ),
        (
            dataclasses.replace(PROBLEM, depot_close_s=900),
            VALID,
            "returns at 920, after the depot closes",
        ),
        (
            PROBLEM,
            _stop_a(arrival_s=450, departure_s=510),
            "stop 0 arrives at 450, too soon after 400",
        ),
        (
            PROBLEM,
            _stop_a(departure_s=540),
            "stop 0 leaves at 540, before its service time is done",
        ),
        (PROBLEM, _stop_a(site=B), "order a is for site A"),
        (PROBLEM, _with(return_s=800, duration_s=400), "is back at 800, too soon after 720"),
        (PROBLEM, _with(distance_m=3000), "distance 3000 m, the legs add up to 4000 m"),
        (PROBLEM, _with(duration_s=500), "duration 500 is not return - depart"),
    ],
)
def test_the_checker_catches_each_rule(problem: Problem, broken: Plan, expected: str) -> None:
    found = check(problem, broken, M)
    assert any(expected in v for v in found), found


def test_a_speed_cap_makes_legs_slower() -> None:
    slow = dataclasses.replace(VAN, max_speed_kmh=18.0)  # 5 m/s: D→A takes 200 s
    problem = dataclasses.replace(PROBLEM, vehicles=(slow,))
    assert any("stop 0 arrives at 500, too soon" in v for v in check(problem, VALID, M))
    found = plan(problem, matrix=M, time_limit_s=0.2)
    assert check(problem, found, M) == []
    last = found.routes[0].stops[-1]
    assert found.routes[0].return_s - last.departure_s == last.site.lat * 1000 / 5


def test_haversine_defaults() -> None:
    dist, dur = HaversineMatrix().matrices([Site("x", 0.0, 0.0), Site("y", 1.0, 0.0)])
    assert dist[0, 1] == dist[1, 0] == round(111_195 * 1.3)  # one degree of latitude
    assert dur[0, 1] == round(dist[0, 1] / (30 / 3.6))
    assert dist[0, 0] == dur[0, 0] == 0


def test_osrm_table_request_and_answer() -> None:
    osrm = OsrmMatrix("http://osrm.invalid/")
    url = osrm.request_url([Site("x", -6.2, 106.8), Site("y", -6.3, 106.9)])
    assert url == (
        "http://osrm.invalid/table/v1/driving/106.800000,-6.200000;106.900000,-6.300000"
        "?annotations=distance,duration"
    )
    body = {
        "code": "Ok",
        "distances": [[0, 1500.4], [1499.6, 0]],
        "durations": [[0, 90.5], [91, 0]],
    }
    dist, dur = OsrmMatrix.parse(json.dumps(body).encode(), 2)
    assert dist.tolist() == [[0, 1500], [1500, 0]] and dur.tolist() == [[0, 90], [91, 0]]
    body["distances"] = [[0, None], [1, 0]]
    with pytest.raises(ValueError, match="no route"):
        OsrmMatrix.parse(json.dumps(body).encode(), 2)
    with pytest.raises(ValueError, match="NoTable"):
        OsrmMatrix.parse(b'{"code": "NoTable", "message": "x"}', 2)
