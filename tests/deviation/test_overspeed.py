"""Overspeed timelines: limit 50 km/h (threshold 55 with the 1.1 tolerance), fixes every
5 s, min 20 s over, 10 s back under to end an episode."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from deviation.model import Event, Sample
from deviation.overspeed import OverspeedParams, OverspeedState, limit_for, step
from menara.settings import Settings
from tests.saved import restored

P = OverspeedParams()


def run(
    speeds: Sequence[float],
    t0: float = 0.0,
    limit: float = 50.0,
    state: OverspeedState | None = None,
) -> tuple[OverspeedState, list[tuple[str, float, dict[str, Any]]]]:
    st = state or OverspeedState()
    out: list[tuple[str, float, dict[str, Any]]] = []
    for i, v in enumerate(speeds):
        st, events = step(st, Sample(t0 + 5.0 * i, 52.0, 4.0, 0.0, 0.0, v), limit, "zone", P)
        assert restored(st) == st
        assert all(e.kind == "overspeed" and e.key == "" for e in events)
        out += [(e.phase, e.t_s, e.data) for e in events]
    return st, out


def test_params_default_to_the_settings() -> None:
    s = Settings()
    assert (P.tolerance, P.min_s) == (s.overspeed_tolerance, s.overspeed_min_s)


def test_limit_for_takes_the_lowest_applicable_limit_and_names_it() -> None:
    assert limit_for([], None, 90.0) == (90.0, "default")
    assert limit_for([50.0, 30.0], None, 90.0) == (30.0, "zone")
    assert limit_for([50.0], 40.0, 90.0) == (40.0, "vehicle")
    assert limit_for([50.0], 80.0, 90.0) == (50.0, "zone")
    assert limit_for([50.0], 50.0, 90.0) == (50.0, "zone")
    assert limit_for([], 100.0, 90.0) == (100.0, "vehicle")  # a vehicle may be allowed more
    assert limit_for([math.nan, 0.0, -5.0], math.nan, 90.0) == (90.0, "default")


def test_a_burst_shorter_than_min_s_raises_nothing() -> None:
    state, events = run([50, 70, 70, 70, 70, 50, 50])  # over for 15 s
    assert events == [] and state == OverspeedState()


def test_speed_at_limit_times_tolerance_is_not_over() -> None:
    _, events = run([55.0] * 20)
    assert events == []


def test_a_long_episode_is_one_open_and_one_close_with_max_and_duration() -> None:
    speeds = [50, 60, 62, 61, 65, 70, 68, 60, 50, 60, 50, 50, 50, 40]
    state, events = run(speeds)
    assert [(p, t) for p, t, _ in events] == [("open", 5.0), ("close", 50.0)]
    opened, close = events[0][2], events[1][2]
    assert opened["started_s"] == 5.0 and opened["duration_s"] == 20.0
    assert opened["limit_kmh"] == 50.0 and opened["source"] == "zone"
    assert opened["max_speed_kmh"] == 70.0 and opened["speed_kmh"] == 70.0
    assert [f["speed_kmh"] for f in opened["evidence"]] == [60, 62, 61, 65, 70]
    # the dip to 50 at 40 s lasted 5 s (< end_s): same episode; the end is at 50 s
    assert close["max_speed_kmh"] == 70.0 and close["duration_s"] == 45.0
    assert state == OverspeedState()


def test_growth_of_the_max_gives_one_update() -> None:
    _, events = run([60, 60, 60, 60, 60, 65, 71, 72, 85, 50, 50, 50])
    assert [(p, t, d["max_speed_kmh"]) for p, t, d in events] == [
        ("open", 0.0, 60.0),
        ("update", 30.0, 71.0),
        ("update", 40.0, 85.0),
        ("close", 45.0, 85.0),
    ]


def test_two_episodes_apart_are_two_alerts() -> None:
    _, events = run([70] * 6 + [40] * 4 + [70] * 6 + [40] * 4)
    assert [(p, t) for p, t, _ in events] == [
        ("open", 0.0),
        ("close", 30.0),
        ("open", 50.0),
        ("close", 80.0),
    ]


def test_unknown_speed_neither_starts_nor_ends_an_episode() -> None:
    nan = math.nan
    state, events = run([nan] * 10)
    assert events == [] and state == OverspeedState()
    # over, unknown, over... counts as continuous; unknown while open does not end it
    _, events = run([70, nan, nan, 70, 70, nan, nan, nan, 40, nan, 40, 40])
    assert [(p, t) for p, t, _ in events] == [("open", 0.0), ("close", 40.0)]


def test_the_limit_is_judged_per_fix_and_reported_from_the_start() -> None:
    state = OverspeedState()
    found: list[Event] = []
    for i, (v, limit, src) in enumerate(
        [(60, 50, "zone"), (60, 50, "zone"), (60, 90, "default"), (60, 50, "zone")]
    ):
        state, ev = step(state, Sample(10.0 * i, 0, 0, 0, 0, v), limit, src)
        found += ev
    assert found == []  # 60 is legal under 90: the run broke at 20 s
    state, events = run([60] * 5, limit=50.0)
    state, more = run([60] * 3, t0=25.0, limit=30.0, state=state)
    assert events[0][2]["limit_kmh"] == 50.0 and more == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 30),
            st.one_of(st.floats(0, 200), st.just(math.nan)),
            st.sampled_from([30.0, 50.0, 90.0]),
        ),
        max_size=60,
    )
)
def test_any_timeline_gives_well_formed_incidents(
    steps: list[tuple[float, float, float]],
) -> None:
    """open, then updates, then close; never two opens at once; states survive JSON."""
    state, t, is_open = OverspeedState(), 0.0, False
    for dt, v, limit in steps:
        t += dt
        state, events = step(state, Sample(t, 0, 0, 0, 0, v), limit, "zone")
        assert restored(state) == state
        for e in events:
            assert (e.phase == "open") != is_open  # open only when closed, others only when open
            is_open = e.phase != "close"
            assert e.data["max_speed_kmh"] >= e.data["limit_kmh"] * P.tolerance
            assert e.data["duration_s"] >= 0
        assert state.is_open == is_open
