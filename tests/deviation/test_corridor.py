"""Route deviation timelines on tiny metric routes: a straight 1,000 m road along x, fixes
every 10 s, offsets of 0/250/350/500 m (corridor 300 m, clear 200 m, 60 s or 5 fixes)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import shapely  # type: ignore[import-untyped,unused-ignore]
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import deviation.corridor as corridor_module
from deviation.corridor import (
    Corridor,
    CorridorParams,
    CorridorState,
    distances,
    extra_time_s,
    step,
    stops_along,
)
from deviation.errors import RouteError
from deviation.plan import PlannedStop
from geofence.model import Sample
from menara.settings import Settings

STRAIGHT = Corridor.from_xy([(0.0, 0.0), (1000.0, 0.0)])
P = CorridorParams()


def stop_at(x: float, y: float, stop_id: int = 7) -> PlannedStop:
    return PlannedStop(stop_id, 1, 0.0, 0.0, x, y, 150.0, 0.0, 0.0, 0.0, None, None, (1,))


def run(
    points: list[tuple[float, float, float]],
    corridor: Corridor = STRAIGHT,
    state: CorridorState | None = None,
) -> tuple[CorridorState, list[tuple[str, float, dict[str, Any]]]]:
    """Feed (t_s, x_m, y_m) fixes; check every state survives JSON; return (phase, t, data)."""
    st_ = state or CorridorState()
    out: list[tuple[str, float, dict[str, Any]]] = []
    for t, x, y in points:
        (d,), (a,) = distances(corridor, [x], [y])
        st_, events = step(st_, Sample(t, 52.0, 4.0, x, y), float(d), float(a), None, P)
        assert CorridorState.from_json(st_.to_json()) == st_
        out += [(e.phase, e.t_s, e.data) for e in events]
        assert all(e.kind == "route_deviation" and e.key == "" for e in events)
    return st_, out


def line(t0: float, ys: list[float], x: float = 500.0) -> list[tuple[float, float, float]]:
    return [(t0 + 10.0 * i, x, y) for i, y in enumerate(ys)]


def test_params_default_to_the_settings() -> None:
    s = Settings()
    assert (P.corridor_m, P.clear_m, P.min_s, P.min_fixes) == (
        s.corridor_m,
        s.corridor_clear_m,
        s.corridor_min_s,
        s.corridor_min_fixes,
    )


def test_brief_excursion_below_both_thresholds_raises_nothing() -> None:
    state, events = run(line(0, [0, 350, 350, 350, 350, 0, 0]))
    assert events == [] and state == CorridorState()


def test_long_excursion_opens_at_the_fifth_fix_stamped_at_the_first_then_updates_and_closes() -> (
    None
):
    state, events = run(line(0, [0, 350, 350, 350, 350, 350, 500, 500, 250, 100]))
    assert [(p, t) for p, t, _ in events] == [("open", 10.0), ("update", 60.0), ("close", 90.0)]
    opened, update, close = (d for _, _, d in events)
    assert opened["started_s"] == 10.0 and opened["duration_s"] == 40.0
    assert opened["distance_m"] == 350.0 and opened["max_distance_m"] == 350.0
    assert [f["t_s"] for f in opened["evidence"]] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert opened["evidence"][0] == {"t_s": 10.0, "lat": 52.0, "lon": 4.0, "distance_m": 350.0}
    assert update["max_distance_m"] == 500.0
    assert close["distance_m"] == 100.0 and close["max_distance_m"] == 500.0
    assert close["duration_s"] == 80.0 and close["started_s"] == 10.0
    assert state == CorridorState()


def test_sparse_fixes_open_on_time_before_the_fix_count() -> None:
    _, events = run([(0, 500, 0), (30, 500, 400), (60, 500, 400), (90, 500, 400)])
    assert [(p, t, d["duration_s"]) for p, t, d in events] == [("open", 30.0, 60.0)]
    _, events = run([(0, 500, 400), (59, 500, 400), (60, 500, 400)])
    assert [(p, t) for p, t, _ in events] == [("open", 0.0)]


def test_jitter_about_the_corridor_edge_never_opens() -> None:
    _, events = run(line(0, [350, 250] * 30))
    assert events == []


def test_between_clear_and_corridor_neither_opens_nor_closes() -> None:
    state, events = run(line(0, [250] * 20))
    assert events == [] and state == CorridorState()
    opened, events = run(line(0, [400] * 5))
    assert [p for p, _, _ in events] == ["open"]
    state, events = run(line(50, [250] * 20), state=opened)
    assert events == [] and state.is_open
    state, events = run(line(300, [150]), state=state)
    assert [(p, t, d["duration_s"]) for p, t, d in events] == [("close", 300.0, 300.0)]


def test_a_long_incident_updates_every_five_minutes_without_growth() -> None:
    _, events = run(line(0, [400] * 70))
    assert [(p, t) for p, t, _ in events] == [("open", 0.0), ("update", 340.0), ("update", 640.0)]


def test_distance_is_to_segments_not_vertices_on_a_corner() -> None:
    corner = Corridor.from_xy([(0.0, 0.0), (1000.0, 0.0), (1000.0, 1000.0)])
    d, a = distances(corner, [1200.0, 500.0, 1000.0], [500.0, 400.0, -300.0])
    assert d.tolist() == [200.0, 400.0, 300.0]
    assert a.tolist() == [1500.0, 500.0, 1000.0]
    vertex = [min(math.hypot(x - vx, y - vy) for vx, vy in [(0, 0), (1000, 0), (1000, 1000)])
              for x, y in [(1200.0, 500.0)]]  # fmt: skip
    assert vertex[0] > 500.0  # a vertex measure would call this fix off route
    _, events = run([(10.0 * i, 1200.0, 500.0) for i in range(10)], corner)
    assert events == []


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-2000, 2000), st.floats(-2000, 2000)), min_size=2, max_size=12),
    st.lists(st.tuples(st.floats(-3000, 3000), st.floats(-3000, 3000)), min_size=1, max_size=20),
)
def test_distances_match_shapely(
    route: list[tuple[float, float]], points: list[tuple[float, float]]
) -> None:
    c = Corridor.from_xy(route)
    xs, ys = np.array(points).T
    d, a = distances(c, xs, ys)
    geom = shapely.LineString(route)
    assume(geom.length > 1e-3)  # shapely answers NaN for a zero-length line
    pts = shapely.points(xs, ys)
    with np.errstate(all="ignore"):  # GEOS warns on some degenerate lines; compare anyway
        ref = shapely.distance(geom, pts)
    np.testing.assert_allclose(d, ref, atol=1e-6)
    assert ((a >= -1e-9) & (a <= c.length_m + 1e-6)).all()
    # the along position names a point on the route at that distance
    with np.errstate(all="ignore"):
        back = shapely.distance(shapely.line_interpolate_point(geom, a), pts)
    np.testing.assert_allclose(back, d, atol=1e-5)


def test_nan_fix_gives_nan_and_changes_nothing() -> None:
    d, a = distances(STRAIGHT, [math.nan], [0.0])
    assert math.isnan(d[0]) and math.isnan(a[0])
    state = CorridorState(out_since_s=0.0, out_fixes=2, max_distance_m=400.0)
    assert step(state, Sample(20, 0, 0, math.nan, 0), math.nan, math.nan, None) == (state, [])


def test_bad_routes_and_params_are_refused_with_advice() -> None:
    with pytest.raises(RouteError, match="plan the trip"):
        Corridor.from_xy([])
    with pytest.raises(RouteError, match="re-plan"):
        Corridor.from_xy([(0.0, 0.0), (math.inf, 0.0)])
    with pytest.raises(ValueError, match="corridor_clear_m"):
        CorridorParams(corridor_m=100.0, clear_m=200.0)
    single = Corridor.from_xy([(0.0, 0.0)])
    assert distances(single, [3.0], [4.0])[0].tolist() == [5.0]


def test_replan_through_the_vehicle_closes_the_open_incident() -> None:
    opened, events = run(line(0, [500] * 5))
    assert [p for p, _, _ in events] == ["open"]
    detour = Corridor.from_xy([(0.0, 0.0), (0.0, 500.0), (1000.0, 500.0)])
    state, events = run(line(50, [500]), detour, opened)
    assert [(p, t, d["max_distance_m"]) for p, t, d in events] == [("close", 50.0, 500.0)]
    assert state == CorridorState()


def test_replan_that_still_misses_the_vehicle_keeps_one_incident() -> None:
    opened, _ = run(line(0, [500] * 5))
    elsewhere = Corridor.from_xy([(0.0, -500.0), (1000.0, -500.0)])
    state, events = run(line(50, [500] * 3), elsewhere, opened)
    assert [(p, d["max_distance_m"]) for p, _, d in events] == [("update", 1000.0)]
    assert state.is_open and state.out_since_s == 0.0


def test_extra_time_takes_the_faster_of_rejoining_and_going_straight() -> None:
    v = 30 / 3.6
    near = stop_at(1000.0, 0.0)
    here = Sample(0, 0, 0, 500.0, 400.0)
    straight = (math.hypot(500, 400) * 1.3 - 500) / v  # 39.9 s: shortcut to a close stop
    assert extra_time_s(here, 400.0, 500.0, near, 1000.0, P) == pytest.approx(straight)
    far = stop_at(5000.0, 0.0)
    assert extra_time_s(here, 400.0, 500.0, far, 5000.0, P) == pytest.approx(400 * 1.3 / v)
    assert extra_time_s(here, 400.0, 500.0, None, None, P) == pytest.approx(400 * 1.3 / v)
    beside = Sample(0, 0, 0, 1000.0, 10.0)  # 10 m beside the stop: 13 m of road
    assert extra_time_s(beside, 10.0, 1000.0, near, 1000.0, P) == pytest.approx(13 / v)
    behind = Sample(0, 0, 0, 900.0, 0.0)  # on the route (a rejoin costs nothing)
    assert extra_time_s(behind, 0.0, 900.0, near, 1000.0, P) == 0.0


def test_open_event_names_the_next_stop_and_its_extra_time() -> None:
    state = CorridorState()
    events = []
    for i in range(5):
        sample = Sample(10.0 * i, 0, 0, 500.0, 400.0)
        state, ev = step(state, sample, 400.0, 500.0, stop_at(1000, 0), stop_along_m=1000.0)
        events += ev
    (opened,) = events
    assert opened.data["stop_id"] == 7 and opened.data["extra_time_s"] == 39.9


def test_stops_along_follow_visiting_order_on_an_out_and_back_route() -> None:
    out_back = Corridor.from_xy([(0.0, 0.0), (1000.0, 0.0), (0.0, 0.0)])
    stops = [stop_at(800.0, 10.0, 1), stop_at(200.0, 10.0, 2), stop_at(100.0, -10.0, 3)]
    assert stops_along(out_back, stops) == (800.0, 1800.0, 1900.0)


def test_evidence_is_capped_and_kept_from_the_first_fix_beyond() -> None:
    few = CorridorParams(min_s=1e9, min_fixes=30, evidence_max=3)
    state = CorridorState()
    for i in range(30):
        state, events = step(state, Sample(10.0 * i, 0, 0, 500.0, 400.0), 400.0, 500.0, None, few)
    assert [(e.phase, e.t_s) for e in events] == [("open", 0.0)]
    assert [f["t_s"] for f in events[0].data["evidence"]] == [0.0, 10.0, 20.0]


def test_distances_take_lists_or_arrays_through_one_compiled_signature() -> None:
    distances(STRAIGHT, [1.0, 2.0], [3.0, 4.0])
    distances(STRAIGHT, np.arange(3), np.arange(3, dtype=np.float32))
    with pytest.raises(ValueError, match="differ in length"):
        distances(STRAIGHT, [1.0], [1.0, 2.0])
    signatures = getattr(corridor_module._nearest, "signatures", None)
    if signatures is None:
        pytest.skip("NUMBA_DISABLE_JIT: nothing is compiled")
    assert len(signatures) == 1, signatures


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 40), st.floats(0, 800)), max_size=60))
def test_any_timeline_gives_well_formed_incidents(steps: list[tuple[float, float]]) -> None:
    """open, then updates, then close; never two opens at once; close only within clear_m."""
    state, t, is_open = CorridorState(), 0.0, False
    for dt, d in steps:
        t += dt
        state, events = step(state, Sample(t, 0, 0, 0, d), d, 0.0, None)
        assert CorridorState.from_json(json.loads(json.dumps(state.to_json()))) == state
        for e in events:
            assert (e.phase == "open") != is_open  # open only when closed, others only when open
            is_open = e.phase != "close"
            assert e.data["distance_m"] <= P.clear_m if e.phase == "close" else d > P.clear_m
            assert e.data["max_distance_m"] > P.corridor_m
            assert 1 <= len(e.data["evidence"]) <= P.evidence_max
        assert state.is_open == is_open
