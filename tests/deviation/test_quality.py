"""Telemetry quality timelines: a vehicle moving 100 m every 10 s along x (36 km/h),
received 1 s after each fix, with late, early, repeated and wild fixes mixed in."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from deviation.model import Sample
from deviation.quality import QualityParams, QualityState, check, check_batch, tick
from menara.settings import Settings
from tests.saved import restored

P = QualityParams()


def fix(t: float, x: float | None = None, rcv: float | None = None, valid: bool = True) -> Sample:
    x = 10.0 * t if x is None else x
    return Sample(t, 52.0, 4.0, x, 0.0, valid=valid, received_s=t + 1.0 if rcv is None else rcv)


def run(
    samples: list[Sample], state: QualityState | None = None
) -> tuple[QualityState, list[tuple[str, str, float, dict[str, Any]]], list[float]]:
    """(state, (phase, key, t_s, data) of every event, times of the accepted fixes)."""
    q = state or QualityState()
    events: list[tuple[str, str, float, dict[str, Any]]] = []
    accepted: list[float] = []
    for s in samples:
        q, ev, ok = check(q, s, P)
        assert restored(q) == q
        assert all(e.kind == "telemetry" and e.data["reason"] == e.key for e in ev)
        events += [(e.phase, e.key, e.t_s, e.data) for e in ev]
        accepted += [s.t_s] if ok else []
    return q, events, accepted


def test_params_default_to_the_settings() -> None:
    s = Settings()
    assert (P.max_implied_speed_kmh, P.stale_s, P.future_s) == (
        s.max_implied_speed_kmh,
        s.stale_fix_s,
        s.future_fix_s,
    )


def test_a_clean_stream_is_all_accepted_without_events() -> None:
    _, events, accepted = run([fix(10.0 * i) for i in range(20)])
    assert events == [] and accepted == [10.0 * i for i in range(20)]


def test_out_of_order_and_repeated_fixes_are_refused_and_counted_in_one_incident() -> None:
    _, events, accepted = run([fix(0), fix(10), fix(5), fix(20), fix(20), fix(30)])
    assert accepted == [0, 10, 20, 30]
    assert [(p, k, t, d["count"], d["last_t_s"]) for p, k, t, d in events] == [
        ("open", "out_of_order", 6.0, 1, 10.0),
        ("update", "out_of_order", 21.0, 2, 20.0),
    ]


def test_future_fix_is_refused_and_stale_fix_is_accepted() -> None:
    samples = [fix(0), fix(1300, rcv=1000), fix(1301, rcv=1000), fix(5000, rcv=8601)]
    _, events, accepted = run(samples)
    assert accepted == [0, 1300, 5000]
    assert [(p, k, t, d.get("lag_s")) for p, k, t, d in events] == [
        ("open", "future", 1000.0, -301.0),
        ("close", "future", 8601.0, None),  # quiet for 7,601 s
        ("open", "stale", 8601.0, 3601.0),
    ]


def test_one_wild_fix_is_refused_and_does_not_poison_the_next() -> None:
    samples = [fix(0), fix(10), fix(20, x=10_000.0), fix(30), fix(40)]
    _, events, accepted = run(samples)
    assert accepted == [0, 10, 30, 40]
    ((phase, key, _, data),) = events
    assert (phase, key, data["implied_speed_kmh"], data["fix_t_s"]) == (
        "open",
        "impossible_jump",
        3564.0,  # 9,900 m in 10 s
        20.0,
    )


def test_a_wrong_first_fix_is_left_behind_after_three_consistent_fixes() -> None:
    samples = [fix(0, x=50_000.0), fix(10), fix(20), fix(30), fix(40)]
    _, events, accepted = run(samples)
    assert accepted == [0, 30, 40]
    assert [(p, d["count"]) for p, _, _, d in events] == [("open", 1), ("update", 2)]


def test_invalid_fixes_are_counted_as_info_without_an_incident() -> None:
    samples = [fix(0), fix(10, valid=False), Sample(20, math.nan, 4, 0, 0), fix(30)]
    state, events, accepted = run(samples)
    assert accepted == [0, 30]
    assert [(p, k, d["count"]) for p, k, _, d in events] == [
        ("info", "invalid", 1),
        ("info", "invalid", 2),
    ]
    assert state.incidents == () and state.invalid_count == 2


def test_an_incident_closes_after_ten_quiet_minutes_and_reopens_as_new() -> None:
    first = [fix(0), fix(100), fix(50)]  # out of order received at 51
    state, events, _ = run(first)
    assert [(p, t) for p, _, t, _ in events] == [("open", 51.0)]
    state, events, _ = run([fix(640)], state)  # received 641: 590 s quiet
    assert events == []
    state, events, _ = run([fix(650), fix(60, rcv=652)], state)  # 651: 600 s quiet
    assert [(p, t, d["count"]) for p, _, t, d in events] == [
        ("close", 651.0, 1),
        ("open", 652.0, 1),
    ]
    state, closed = tick(state, 1251.0, P)
    assert closed == [] and state.incidents == (("out_of_order", 1, 652.0),)
    state, closed = tick(state, 1252.0, P)
    assert [(e.phase, e.t_s, e.data["last_s"]) for e in closed] == [("close", 1252.0, 652.0)]
    assert state.incidents == ()


samples_st = st.builds(
    Sample,
    t_s=st.one_of(st.floats(0, 5000), st.sampled_from([math.nan, math.inf, -math.inf])),
    lat=st.floats(allow_nan=True),
    lon=st.just(4.0),
    x_m=st.one_of(st.floats(-1e4, 1e4), st.floats()),
    y_m=st.floats(-1e4, 1e4),
    valid=st.booleans(),
    received_s=st.one_of(st.floats(0, 9000), st.just(math.nan)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(samples_st, max_size=40))
def test_any_sequence_never_raises_and_accepted_times_strictly_increase(
    samples: list[Sample],
) -> None:
    q = QualityState()
    last = -math.inf
    for s in samples:
        q, events, ok = check(q, s, P)
        restored(q)  # jsonb-safe: no NaN
        for e in events:
            json.dumps(e.data, allow_nan=False)
            assert math.isfinite(e.t_s)
        if ok:
            assert s.t_s > last
            last = s.t_s


def test_unknown_receipt_time_is_neither_future_nor_stale_and_stamps_with_fix_time() -> None:
    nan = math.nan
    samples = [fix(0, rcv=nan), fix(10_000, rcv=nan), fix(5, rcv=nan)]
    _, events, accepted = run(samples)
    assert accepted == [0, 10_000]
    assert [(p, k, t, d["received_s"]) for p, k, t, d in events] == [
        ("open", "out_of_order", 5.0, None)
    ]


def fold(state: QualityState, samples: list[Sample]) -> tuple[QualityState, list[Any], list[bool]]:
    events: list[Any] = []
    accepted: list[bool] = []
    for s in samples:
        state, ev, ok = check(state, s, P)
        events += ev
        accepted.append(ok)
    return state, events, accepted


def batch(state: QualityState, samples: list[Sample]) -> tuple[QualityState, list[Any], list[bool]]:
    t, x, y, rcv, valid = (
        [getattr(s, f) for s in samples] for f in ("t_s", "x_m", "y_m", "received_s", "valid")
    )
    state, events, accepted = check_batch(state, t, x, y, rcv, valid, P)
    return state, events, accepted.tolist()


def test_check_batch_takes_the_fast_path_for_a_clean_batch_with_the_same_result() -> None:
    first, _, _ = fold(QualityState(), [fix(0)])
    clean = [fix(10.0 * i) for i in range(1, 50)]
    assert batch(first, clean) == fold(first, clean)
    state, events, accepted = batch(first, clean)
    assert events == [] and all(accepted) and state.last == (490.0, 4900.0, 0.0)
    assert batch(first, []) == (first, [], [])


track_st = st.builds(
    lambda t, x, rcv, valid: Sample(t, 52.0, 4.0, x, 0.0, valid=valid, received_s=rcv),
    st.one_of(st.floats(0, 5000), st.just(math.nan)),
    st.one_of(st.floats(0, 20_000), st.just(math.inf)),
    st.one_of(st.floats(0, 9000), st.just(math.nan)),
    st.sampled_from([True, True, True, False]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(track_st, max_size=8), st.lists(track_st, max_size=8))
def test_check_batch_equals_checking_fix_by_fix(
    warmup: list[Sample], samples: list[Sample]
) -> None:
    state, _, _ = fold(QualityState(), warmup)
    assert batch(state, samples) == fold(state, samples)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.5, 30), st.floats(-300, 300), st.floats(0, 3700)), max_size=10)
)
def test_check_batch_equals_fix_by_fix_on_driving_tracks(
    steps: list[tuple[float, float, float]],
) -> None:
    """Mostly clean tracks (the fast path) with the odd jump or stale fix (the slow one)."""
    state, _, _ = fold(QualityState(), [fix(0)])
    t, x, samples = 0.0, 0.0, []
    for dt, dx, lag in steps:
        t, x = t + dt, x + dx
        samples.append(fix(t, x=x, rcv=t + lag))
    assert batch(state, samples) == fold(state, samples)
