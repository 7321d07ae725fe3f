"""Zone enter / exit / dwell over synthetic timelines with exact expected events
(min inside 20 s, min outside 30 s, dwell 300 s; a fix every 10 s unless said)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from deviation.membership import ZoneParams, ZoneState, fast_forward, step
from deviation.model import Event
from tests.saved import restored

P = ZoneParams(min_inside_s=20.0, min_outside_s=30.0, dwell_s=300.0)
A, B = frozenset({"A"}), frozenset({"B"})
AB, NONE = A | B, frozenset[str]()


def run(
    timeline: list[tuple[float, frozenset[str]]], params: ZoneParams = P
) -> list[tuple[str, float, str]]:
    state, out = ZoneState(), []
    for t, inside in timeline:
        state, events = step(state, t, inside, params)
        state = restored(state)  # every fix survives a restart
        out += [(e.kind, e.t_s, e.key) for e in events]
    return out


def every_10s(*spans: tuple[int, frozenset[str]]) -> list[tuple[float, frozenset[str]]]:
    """Consecutive spans of (seconds, zones), one fix every 10 s from t = 0."""
    fixes, t = [], 0.0
    for seconds, inside in spans:
        for _ in range(seconds // 10):
            fixes.append((t, inside))
            t += 10.0
    return fixes


def test_enter_is_stamped_with_the_first_fix_inside_once_it_lasted() -> None:
    assert run(every_10s((100, NONE), (100, A))) == [("zone_enter", 100.0, "A")]


def test_jitter_at_the_border_does_not_flap() -> None:
    jitter = [(t * 10.0, A if t % 2 else NONE) for t in range(60)]  # in 10 s, out 10 s
    assert run(jitter) == []
    # once inside, the same jitter never lasts long enough outside to exit
    inside_then_jitter = every_10s((50, A)) + [
        (50 + t * 10.0, NONE if t % 3 == 0 else A) for t in range(60)
    ]
    assert run(inside_then_jitter) == [("zone_enter", 0.0, "A"), ("zone_dwell", 300.0, "A")]


def test_a_brief_excursion_below_the_threshold_produces_nothing() -> None:
    assert run(every_10s((50, A), (30, NONE), (100, A))) == [("zone_enter", 0.0, "A")]


def test_a_long_excursion_produces_exit_then_enter() -> None:
    events = run(every_10s((50, A), (40, NONE), (30, A)))
    assert events == [("zone_enter", 0.0, "A"), ("zone_exit", 50.0, "A"), ("zone_enter", 90.0, "A")]


def test_exit_data_carries_the_visit() -> None:
    state, got = ZoneState(), []
    for t, inside in every_10s((50, A), (40, NONE)):
        state, events = step(state, t, inside, P)
        got += events
    assert got[-1] == Event(
        "zone_exit", "info", 50.0, "A",
        {"zone_id": "A", "entered_s": 0.0, "exited_s": 50.0, "confirmed_s": 80.0, "inside_s": 50.0},
    )  # fmt: skip
    assert got[0].data == {"zone_id": "A", "entered_s": 0.0, "confirmed_s": 20.0}
    assert state == ZoneState()  # nothing left to remember


def test_dwell_once_per_visit_and_again_after_re_entry() -> None:
    events = run(every_10s((400, A), (50, NONE), (400, A)))
    assert events == [
        ("zone_enter", 0.0, "A"),
        ("zone_dwell", 300.0, "A"),
        ("zone_exit", 400.0, "A"),
        ("zone_enter", 450.0, "A"),
        ("zone_dwell", 750.0, "A"),
    ]


def test_two_zones_at_once() -> None:
    events = run(every_10s((30, A), (60, AB), (40, B)))
    assert events == [
        ("zone_enter", 0.0, "A"),
        ("zone_enter", 30.0, "B"),
        ("zone_exit", 90.0, "A"),
    ]


def test_sparse_fixes_confirm_on_the_first_fix_past_the_threshold() -> None:
    events = run([(0.0, NONE), (5.0, A), (15.0, A), (100.0, A), (400.0, NONE), (500.0, NONE)])
    assert events == [("zone_enter", 5.0, "A"), ("zone_exit", 400.0, "A")]


def test_zero_thresholds_are_immediate() -> None:
    quick = ZoneParams(min_inside_s=0.0, min_outside_s=0.0, dwell_s=1e9)
    assert run([(0.0, A), (1.0, NONE)], quick) == [
        ("zone_enter", 0.0, "A"),
        ("zone_exit", 1.0, "A"),
    ]


@given(st.lists(st.tuples(st.floats(0, 100), st.sampled_from([NONE, A, B, AB])), max_size=40))
def test_enters_and_exits_alternate_per_zone(gaps: list[tuple[float, frozenset[str]]]) -> None:
    seen: dict[str, list[str]] = {"A": [], "B": []}
    state, t = ZoneState(), 0.0
    for gap, inside in gaps:
        t += gap
        state, events = step(state, t, inside, P)
        for e in events:
            assert e.phase == "info" and e.data["zone_id"] == e.key
            if e.kind != "zone_dwell":
                seen[e.key].append(e.kind)
    for kinds in seen.values():
        assert kinds == ["zone_enter", "zone_exit"] * (len(kinds) // 2) + ["zone_enter"] * (
            len(kinds) % 2
        )
    assert state.inside() == frozenset(k for k, v in seen.items() if len(v) % 2)


@settings(max_examples=500)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 5.0, 10.0, 20.0, 30.0, 300.0]),
                       st.sampled_from([NONE, A, B, AB])), max_size=60),
    st.integers(0, 60),
)  # fmt: skip
@example([(0.0, A), (20.0, A)], 1)  # a pending entry confirmed in the batch
@example([(0.0, A), (20.0, A), (10.0, NONE), (30.0, NONE)], 3)  # a pending exit confirmed
@example([(0.0, A), (20.0, A), (280.0, A), (10.0, A)], 3)  # a dwell falling due
def test_fast_forward_then_steps_equal_stepping_every_fix(
    gaps: list[tuple[float, frozenset[str]]], cut: int
) -> None:
    """Any state (pending entries and exits, unsent dwells) reached by stepping: the fast
    path over a batch, then stepping what it left, says and keeps what stepping says."""
    times, t = [], 0.0
    for dt, _ in gaps:
        t += dt
        times.append(t)
    insides = [inside for _, inside in gaps]
    lo = cut % (len(gaps) + 1)
    state: ZoneState = ZoneState()
    for k in range(lo):
        state, _ = step(state, times[k], insides[k], P)
    slow, slow_events = state, []
    for k in range(lo, len(gaps)):
        slow, ev = step(slow, times[k], insides[k], P)
        slow_events += ev
    fast, n = fast_forward(state, times[lo:], insides[lo:], P)
    fast_events = []
    for k in range(lo + n, len(gaps)):
        fast, ev = step(fast, times[k], insides[k], P)
        fast_events += ev
    assert fast_events == slow_events
    assert fast == slow
