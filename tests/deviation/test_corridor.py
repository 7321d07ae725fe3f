"""Route deviation timelines on tiny metric routes: a straight 1,000 m road along x, fixes
every 10 s, offsets of 0/250/350/500 m (corridor 300 m, clear 200 m, 60 s or 5 fixes)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import shapely
import shapely.ops
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import deviation.route as route_module
from deviation.corridor import (
    CorridorParams,
    CorridorState,
    distances_before_departure,
    distances_for,
    extra_time_s,
    step,
    window,
)
from deviation.errors import RouteError
from deviation.model import Sample
from deviation.plan import PlannedStop
from deviation.route import Corridor, distances, stops_along
from menara.settings import Settings
from tests.saved import restored
from tower.codec import decode, encode

STRAIGHT = Corridor.from_xy([(0.0, 0.0), (1000.0, 0.0)])
P = CorridorParams()


def stop_at(x: float, y: float, stop_id: int = 7) -> PlannedStop:
    return PlannedStop(stop_id, 1, 0.0, 0.0, x, y, 150.0, 0.0, 0.0, 0.0, None, None, (1,))


def run(
    points: list[tuple[float, float, float]],
    corridor: Corridor = STRAIGHT,
    state: CorridorState | None = None,
    params: CorridorParams = P,
) -> tuple[CorridorState, list[tuple[str, float, dict[str, Any]]]]:
    """Feed (t_s, x_m, y_m) fixes as the worker does (``distances_for`` then ``step``);
    check every state survives JSON; return (phase, t, data)."""
    st_ = state or CorridorState()
    out: list[tuple[str, float, dict[str, Any]]] = []
    for t, x, y in points:
        (d,), (a,) = distances_for(st_, corridor, [t], [x], [y], params)
        st_, events = step(st_, Sample(t, 52.0, 4.0, x, y), float(d), float(a), None, params)
        assert restored(st_) == st_
        out += [(e.phase, e.t_s, e.data) for e in events]
        assert all(e.kind == "route_deviation" and e.key == "" for e in events)
    return st_, out


def idle(state: CorridorState) -> bool:
    """No run and no incident (whatever the progress)."""
    return replace(state, progress_m=None, progress_t_s=None) == CorridorState()


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
    assert events == [] and idle(state)


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
    assert idle(state)


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
    assert events == [] and idle(state)
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
    state, events = run(line(50, [500]), detour, opened.replanned())
    assert [(p, t, d["max_distance_m"]) for p, t, d in events] == [("close", 50.0, 500.0)]
    assert idle(state)


def test_replan_that_still_misses_the_vehicle_keeps_one_incident() -> None:
    opened, _ = run(line(0, [500] * 5))
    elsewhere = Corridor.from_xy([(0.0, -500.0), (1000.0, -500.0)])
    state, events = run(line(50, [500] * 3), elsewhere, opened.replanned())
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
    signatures = getattr(route_module._nearest, "signatures", None)
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
        assert restored(state) == state
        for e in events:
            assert (e.phase == "open") != is_open  # open only when closed, others only when open
            is_open = e.phase != "close"
            assert e.data["distance_m"] <= P.clear_m if e.phase == "close" else d > P.clear_m
            assert e.data["max_distance_m"] > P.corridor_m
            assert 1 <= len(e.data["evidence"]) <= P.evidence_max
        assert state.is_open == is_open


# Which part of the route: routes that come back past where they went out.
OUT_BACK = Corridor.from_xy([(0.0, 0.0), (2000.0, 0.0), (2000.0, 100.0), (0.0, 100.0)])
# a thin loop: 20 km out along y = 0, back along y = 150 (the return at x = 500 is 39,650 m on)
LOOP = Corridor.from_xy([(0.0, 0.0), (20000.0, 0.0), (20000.0, 150.0), (0.0, 150.0)])
WHOLE_ROUTE = CorridorParams(back_m=math.inf, ahead_m=math.inf)  # the old measure


def test_out_and_back_measures_the_leg_the_vehicle_is_on() -> None:
    assert distances(OUT_BACK, [500.0], [400.0])[0].tolist() == [300.0]  # the return leg
    outbound = CorridorState(progress_m=500.0, progress_t_s=0.0)
    d, a = distances_for(outbound, OUT_BACK, [10.0], [500.0], [400.0], P)
    assert (d.tolist(), a.tolist()) == ([400.0], [500.0])
    homebound = CorridorState(progress_m=3600.0, progress_t_s=0.0)
    d, a = distances_for(homebound, OUT_BACK, [10.0], [500.0], [400.0], P)
    assert (d.tolist(), a.tolist()) == ([300.0], [3600.0])
    drive = [(0.0, 0.0, 0.0), (10.0, 250.0, 0.0), (20.0, 500.0, 0.0)]
    detour = [(20.0 + 5 * i, 500.0, 400.0) for i in range(1, 6)]
    _, events = run(drive + detour, OUT_BACK)
    assert [(p, t, d["max_distance_m"]) for p, t, d in events] == [("open", 25.0, 400.0)]
    _, events = run(drive + detour, OUT_BACK, params=WHOLE_ROUTE)
    assert events == []  # 300 m from the return leg: within the corridor


def test_a_detour_toward_the_return_leg_is_one_incident_at_its_full_distance() -> None:
    ys = [0.0, 300.0] + [600.0] * 6 + [300.0, 300.0] + [600.0] * 6 + [300.0, 0.0]
    fixes = [(0.0, 300.0, 0.0), *line(10, ys)]
    state, events = run(fixes, LOOP)
    assert [(p, t, d["max_distance_m"]) for p, t, d in events] == [
        ("open", 30.0, 600.0),
        ("close", 180.0, 600.0),
    ]
    assert idle(state) and state.progress_m == 500.0
    # the whole-route measure: 450 m at most, cleared mid-detour, opened again
    _, events = run(fixes, LOOP, params=WHOLE_ROUTE)
    assert [(p, d["max_distance_m"]) for p, _, d in events] == [
        ("open", 450.0),
        ("close", 450.0),
        ("open", 450.0),
        ("close", 450.0),
    ]


def test_a_vehicle_silent_five_minutes_is_found_three_km_further_on() -> None:
    long_road = Corridor.from_xy([(0.0, 0.0), (10000.0, 0.0)])
    seen = CorridorState(progress_m=1000.0, progress_t_s=0.0)
    d, a = distances_for(seen, long_road, [300.0], [4000.0], [0.0], P)
    assert (d.tolist(), a.tolist()) == ([0.0], [4000.0])
    no_speed = CorridorParams(max_speed_mps=0.0)  # without the time term: window ends at 3 km
    assert distances_for(seen, long_road, [300.0], [4000.0], [0.0], no_speed)[0].tolist() == [
        1000.0
    ]
    state, events = run(
        [(300.0 + 10 * i, 4000.0 + 100 * i, 0.0) for i in range(6)], long_road, seen
    )
    assert events == [] and state.progress_m == 4500.0 and state.progress_t_s == 350.0


def test_trip_start_uses_the_whole_route() -> None:
    assert window(None, 100.0, P) == (-math.inf, math.inf)
    xs, ys = [500.0, 1500.0, -50.0], [400.0, 60.0, 0.0]
    start = distances_for(CorridorState(), OUT_BACK, [0.0, 10.0, 20.0], xs, ys, P)
    whole = distances(OUT_BACK, xs, ys)
    assert start[0].tolist() == whole[0].tolist() == [300.0, 40.0, 50.0]
    assert start[1].tolist() == whole[1].tolist() == [3600.0, 2600.0, 0.0]


def test_window_spans_back_and_ahead_growing_with_time() -> None:
    assert window(1000.0, 60.0, P) == (500.0, 1000.0 + 2000.0 + 60 * 40.0)
    assert window(1000.0, -5.0, P) == (500.0, 3000.0)  # a fix older than the progress
    assert window(1000.0, math.nan, P) == (500.0, math.inf)
    with pytest.raises(ValueError, match="must not be negative"):
        CorridorParams(back_m=-1.0)
    with pytest.raises(ValueError, match="lo_m <= hi_m"):
        distances(STRAIGHT, [0.0], [0.0], 500.0, 400.0)
    # a stale progress past the end of a shorter route still measures its end
    stale = CorridorState(progress_m=5000.0, progress_t_s=0.0)
    assert distances_for(stale, STRAIGHT, [10.0], [900.0], [0.0], P)[0].tolist() == [100.0]
    assert stale.replanned() == CorridorState()


def test_progress_moves_on_route_only_and_slips_back_at_most_back_m() -> None:
    on = Sample(10.0, 0, 0, 0, 0)
    state, _ = step(CorridorState(), on, 50.0, 3000.0, None, P)
    assert (state.progress_m, state.progress_t_s) == (3000.0, 10.0)
    off, _ = step(state, Sample(20.0, 0, 0, 0, 0), 400.0, 9000.0, None, P)
    assert (off.progress_m, off.progress_t_s) == (3000.0, 10.0)
    noisy, _ = step(state, Sample(30.0, 0, 0, 0, 0), 10.0, 1000.0, None, P)
    assert (noisy.progress_m, noisy.progress_t_s) == (2500.0, 30.0)
    opened = CorridorState(out_since_s=0.0, is_open=True, max_distance_m=900.0, progress_m=10.0)
    between, _ = step(opened, Sample(40.0, 0, 0, 0, 0), 250.0, 400.0, None, P)
    assert between.is_open and (between.progress_m, between.progress_t_s) == (400.0, 40.0)
    closed, _ = step(between, Sample(50.0, 0, 0, 0, 0), 0.0, 450.0, None, P)
    assert idle(closed) and closed.progress_m == 450.0


def test_states_saved_before_progress_load_without_it() -> None:
    saved = encode(CorridorState(out_since_s=5.0, out_fixes=1, max_distance_m=400.0))
    del saved["progress_m"], saved["progress_t_s"]
    old = decode(CorridorState, json.loads(json.dumps(saved)))
    assert old.progress_m is None and old.progress_t_s is None and old.out_fixes == 1
    moved = CorridorState(progress_m=12.5, progress_t_s=7.0)
    assert restored(moved) == moved


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-2000, 2000), st.floats(-2000, 2000)), min_size=2, max_size=12),
    st.lists(st.tuples(st.floats(-3000, 3000), st.floats(-3000, 3000)), min_size=1, max_size=20),
    st.floats(-0.2, 1.2),
    st.floats(-0.2, 1.2),
)
def test_windowed_distances_match_shapely_on_the_window_substring(
    route: list[tuple[float, float]], points: list[tuple[float, float]], f0: float, f1: float
) -> None:
    c = Corridor.from_xy(route)
    geom = shapely.LineString(route)
    assume(geom.length > 1e-3)
    lo, hi = sorted((f0 * c.length_m, f1 * c.length_m))
    assume(hi >= 0.0 and lo <= c.length_m)
    xs, ys = np.array(points).T
    d, a = distances(c, xs, ys, lo, hi)
    part = shapely.ops.substring(geom, max(lo, 0.0), min(hi, geom.length))
    if part.is_empty or part.length == 0.0:  # shapely has no substring for a tiny window
        part = shapely.line_interpolate_point(geom, max(lo, 0.0))
    pts = shapely.points(xs, ys)
    with np.errstate(all="ignore"):
        ref = shapely.distance(part, pts)
        back = shapely.distance(shapely.line_interpolate_point(geom, a), pts)
    np.testing.assert_allclose(d, ref, atol=1e-6)
    assert ((a >= lo) & (a <= hi)).all()
    np.testing.assert_allclose(back, d, atol=1e-5)


def test_a_long_wait_at_the_depot_stays_at_the_route_start() -> None:
    """A round trip starts and ends at the depot. A batch holding a 40-minute wait there
    and the first five minutes of driving must place the wait at progress 0, not at the
    return leg's end (which would then measure the first leg as a deviation)."""
    c = Corridor.from_xy([(0.0, 0.0), (8000.0, 0.0), (8000.0, 4000.0), (0.0, 2.0)])
    wait_t = np.arange(0.0, 2400.0, 10.0)
    drive_t = np.arange(2400.0, 2700.0, 10.0)
    t = np.concatenate([wait_t, drive_t])
    x = np.concatenate([np.full(wait_t.size, 1.0), (drive_t - 2400.0) * 10.0 + 60.0])
    y = np.concatenate([np.full(wait_t.size, 1.5), np.zeros(drive_t.size)])
    home = np.hypot(x, y) <= 50.0
    d, a = distances_before_departure(c, t, x, y, home, None)
    assert (a[home] < 10.0).all()  # the start, though the end is as near
    np.testing.assert_allclose(a[~home], x[~home], atol=1e-6)
    assert np.nanmax(d) < 2.0
    wide = distances(c, x, y, *window(0.0, 2700.0))[1]
    assert (wide[home] > c.length_m - 10.0).any()  # what a window over the batch did
