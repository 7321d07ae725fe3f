"""Schedule and ETA on a straight road with round numbers: depot at x=0, four stops 6 km
apart (x = 6, 12, 18, 24 km), 36 km/h (10 m/s) and a road factor of 1, so every leg is
600 s; service 600 s. Times are seconds after T0, the planned departure.

    stop  planned arrival  window start  window end
    21          600           -1200         4200
    22         1800               0         3600
    23         3000            1200         4200
    24         4200            2400         6300

Leaving 40 min late (T0+2400): ETAs 3000, 4200, 5400, 6600, so stop 21 keeps 20 min in
hand while 22 is 10.0, 23 is 20.0 and 24 is 5.0 minutes beyond its window end.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from deviation.model import Event, Sample
from deviation.plan import PlannedStop, TripPlan
from deviation.schedule import ScheduleParams, ScheduleState, remaining_etas, step, tick
from geofence.projection import LocalProjection
from menara.settings import Settings
from tests.saved import restored

T0 = 36_000.0  # 10:00


def stop(k: int, window_end: float) -> PlannedStop:
    arr = T0 + 1200 * k - 600
    x = 6000.0 * k
    return PlannedStop(
        20 + k, k, 0.0, x / 1e5, x, 0.0, 150.0, arr, arr + 600, 600, arr - 1800, T0 + window_end,
        (100 + k,),
    )  # fmt: skip


PLAN = TripPlan(
    trip_id=1,
    vehicle_id=1,
    depot_id=1,
    device_id="d1",
    projection=LocalProjection(0.0, 0.0),
    route_xy=((0.0, 0.0), (24000.0, 0.0)),
    stops=(stop(1, 4200), stop(2, 3600), stop(3, 4200), stop(4, 6300)),
    depot_lat=0.0,
    depot_lon=0.0,
    depot_x_m=0.0,
    depot_y_m=0.0,
    depot_radius_m=300.0,
    planned_departure_s=T0,
    planned_return_s=T0 + 5400,
    max_speed_kmh=None,
    avg_speed_kmh=36.0,
    road_factor=1.0,
)

Step = tuple[Sample, float | None, frozenset[int], float | None]


def fix(t: float, x: float) -> Sample:
    return Sample(t, 0.0, x / 1e5, x, 0.0, speed_kmh=36.0)


def trip(delay: float) -> Iterator[Step]:
    """A fix every 30 s: at the depot until T0+delay, then driving and serving to plan."""
    dep = T0 + delay
    for t in range(int(T0 - 300), int(dep), 30):
        yield fix(t, 0.0), None, frozenset(), None
    for rel in range(0, 4800 + 1, 30):
        k, phase = divmod(rel, 1200)
        if phase < 600:  # driving to stop k + 1
            arrived = frozenset(range(21, 21 + k))
            yield fix(dep + rel, 6000 * k + 10 * phase), dep, arrived, None
        else:  # serving stop k + 1
            arrived = frozenset(range(21, 22 + k))
            yield fix(dep + rel, 6000 * (k + 1)), dep, arrived, dep + 1200 * (k + 1)


def run(steps: Iterator[Step]) -> list[Event]:
    state, events = ScheduleState(), []
    for sample, departed, arrived, busy in steps:
        state, out = step(state, sample, PLAN, departed, arrived, busy_until_s=busy)
        back = restored(state)
        assert back == state
        state = back
        events.extend(out)
    return events


def risk(events: list[Event]) -> list[tuple[str, str, float]]:
    return [(e.phase, e.key, e.data["minutes_late"]) for e in events if e.kind == "eta_at_risk"]


def test_defaults_are_the_settings() -> None:
    defaults = Settings()
    for f in dataclasses.fields(ScheduleParams):
        if f.name != "update_min":
            assert f.default == getattr(defaults, f.name), f.name


def test_etas_follow_the_plan_from_where_the_vehicle_is() -> None:
    etas = remaining_etas(PLAN, T0 - 600, None, None, frozenset())
    assert [(e.stop.stop_id, e.eta_s - T0) for e in etas] == [
        (21, 600),
        (22, 1800),
        (23, 3000),
        (24, 4200),
    ]  # before departure: from the depot at the planned departure
    etas = remaining_etas(PLAN, T0 + 900, (9000.0, 0.0), T0, frozenset({21}))
    assert [(e.stop.stop_id, e.eta_s - T0) for e in etas] == [(22, 1200), (23, 2400), (24, 3600)]
    serving = remaining_etas(PLAN, T0 + 700, (6000.0, 0.0), T0, frozenset({21}), T0 + 1200)
    assert serving[0].eta_s - T0 == 1800  # served until 1200, then the 600 s leg


def test_an_early_vehicle_waits_for_the_window_to_open() -> None:
    late_window = dataclasses.replace(PLAN.stops[0], window_start_s=T0 + 1500)
    plan = dataclasses.replace(PLAN, stops=(late_window, *PLAN.stops[1:]))
    etas = remaining_etas(plan, T0, None, None, frozenset())
    assert [e.eta_s - T0 for e in etas] == [600, 2700, 3900, 5100]  # waits 900 s at stop 21


def test_late_departure_opens_by_the_clock_and_closes_on_leaving() -> None:
    state = ScheduleState()
    state, events = tick(state, T0 + 599, PLAN, None)
    assert events == []
    state, events = tick(state, T0 + 900, PLAN, None)
    assert events == [
        Event(
            "late_departure",
            "open",
            T0 + 600,
            data={"minutes_late": 15.0, "planned_departure_s": T0},
        )
    ]
    state, events = tick(state, T0 + 1200, PLAN, None)
    assert events == []
    state, events = tick(state, T0 + 2430, PLAN, T0 + 2400)
    assert events == [
        Event(
            "late_departure",
            "close",
            T0 + 2400,
            data={"departed_s": T0 + 2400, "minutes_late": 40.0},
        )
    ]
    assert tick(state, T0 + 3000, PLAN, T0 + 2400)[1] == []


def test_a_departure_first_seen_late_opens_and_closes_at_once() -> None:
    _, events = tick(ScheduleState(), T0 + 1000, PLAN, T0 + 700)
    assert [(e.phase, e.t_s, e.data["minutes_late"]) for e in events] == [
        ("open", T0 + 600, 11.7),
        ("close", T0 + 700, 11.7),
    ]
    _, events = tick(ScheduleState(), T0 + 1000, PLAN, T0 + 500)
    assert events == []  # left within the grace


def test_leaving_40_minutes_late_puts_stops_2_to_4_at_risk() -> None:
    _, events = step(ScheduleState(), fix(T0 + 2400, 0.0), PLAN, T0 + 2400, frozenset())
    assert [(e.kind, e.phase) for e in events] == [
        ("late_departure", "open"),
        ("late_departure", "close"),
        ("eta", "info"),
        ("eta_at_risk", "open"),
        ("eta_at_risk", "open"),
        ("eta_at_risk", "open"),
    ]
    assert events[2].data == {
        "etas": [{"stop_id": 20 + k, "eta_s": T0 + 1800 + 1200 * k} for k in range(1, 5)]
    }
    assert risk(events) == [("open", "22", 10.0), ("open", "23", 20.0), ("open", "24", 5.0)]
    assert events[3].data == {
        "stop_id": 22,
        "seq": 2,
        "eta_s": T0 + 4200,
        "window_end_s": T0 + 3600,
        "minutes_late": 10.0,
        "order_ids": [102],
    }


def test_a_late_trip_from_start_to_end() -> None:
    events = run(trip(2400))
    found = risk(events)
    opens = [(k, m) for phase, k, m in found if phase == "open"]
    # each opens once ETA passes window end - margin: minutes late -4.5 (within the margin)
    assert opens == [("23", -4.5), ("22", -4.5), ("24", -4.5)]
    for key in ("22", "23", "24"):
        figures = [m for _, k, m in found if k == key]
        assert len(figures) > 3  # open, minute-by-minute updates while waiting, close
        assert all(b - a >= 1.0 for a, b in itertools.pairwise(figures[:-1]))
    closes = [e for e in events if e.kind == "eta_at_risk" and e.phase == "close"]
    assert [(e.key, e.data["reason"], e.t_s - T0) for e in closes] == [
        ("22", "arrived", 4200),
        ("23", "arrived", 5400),
        ("24", "arrived", 6600),
    ]
    assert "21" not in {k for _, k, _ in found}
    late = [(e.phase, e.data["minutes_late"]) for e in events if e.kind == "late_departure"]
    assert late == [("open", 10.0), ("close", 40.0)]


def test_an_on_time_trip_has_no_alerts_and_steady_etas() -> None:
    events = run(trip(0))
    assert [e for e in events if e.phase != "info"] == []
    etas = [e for e in events if e.kind == "eta"]
    assert len(etas) == 10 + 141  # every 30 s fix until the last arrival (T0+4200)
    assert etas[-1].data == {"etas": []}
    driving = etas[10 + 5].data["etas"]  # T0+150, on the way to stop 21
    assert [d["eta_s"] - T0 for d in driving] == [600, 1800, 3000, 4200]


def test_etas_at_most_every_interval_and_right_after_an_arrival() -> None:
    state, events = step(ScheduleState(), fix(T0 + 10, 100.0), PLAN, T0, frozenset())
    assert [e.kind for e in events] == ["eta"]
    state, events = step(state, fix(T0 + 20, 200.0), PLAN, T0, frozenset())
    assert events == []
    state, events = step(state, fix(T0 + 25, 6000.0), PLAN, T0, frozenset({21}))
    assert [e.kind for e in events] == ["eta"]
    state, events = step(state, fix(T0 + 55, 6000.0), PLAN, T0, frozenset({21}))
    assert [e.kind for e in events] == ["eta"]


@hyp_settings(max_examples=150, deadline=None)
@given(
    st.floats(-1800, 1800),
    st.lists(
        st.tuples(
            st.sampled_from([5, 30, 300]),
            st.floats(0, 24000),
            st.sampled_from(["", "", "", "depart", "arrive"]),
            st.sampled_from([21, 22, 23, 24]),
        ),
        max_size=80,
    ),
)
def test_any_timeline_gives_well_formed_alerts_and_ordered_etas(
    start: float, moves: list[tuple[int, float, str, int]]
) -> None:
    t, departed, arrived = T0 + start, None, frozenset[int]()
    steps: list[Step] = []
    for dt, x, what, sid in moves:
        t += dt
        if what == "depart" and departed is None:
            departed = t
        if what == "arrive" and departed is not None:
            arrived |= {sid}
        steps.append((fix(t, x), departed, arrived, None))
    events = run(iter(steps))
    live: set[str] = set()
    for e in events:
        if e.kind == "eta_at_risk" and e.phase == "open":
            assert e.key not in live
            live.add(e.key)
        elif e.kind == "eta_at_risk":
            assert e.key in live
            if e.phase == "close":
                live.remove(e.key)
        elif e.kind == "eta":
            etas = [d["eta_s"] for d in e.data["etas"]]
            assert etas == sorted(etas) and all(eta >= e.t_s for eta in etas)
    if steps:
        assert live.isdisjoint(str(i) for i in steps[-1][2])  # arrived stops are never at risk
    late = [e.phase for e in events if e.kind == "late_departure"]
    assert late in ([], ["open"], ["open", "close"])
