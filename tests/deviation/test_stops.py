"""Timelines for the stops rule on a straight road: depot at x=0 (radius 300 m), stops of
radius 150 m at x=1000, 2000 and 3000; vehicles drive at 36 km/h (10 m/s) with a fix every
10 s, so the expected events can be read off the numbers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator

from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from deviation.model import Event, Sample
from deviation.plan import PlannedStop, TripPlan
from deviation.stops import StopParams, StopState, step
from geofence.projection import LocalProjection
from menara.settings import Settings
from tests.saved import restored
from tower.config import Params

NAN = math.nan


def stop(stop_id: int, seq: int, x: float) -> PlannedStop:
    return PlannedStop(stop_id, seq, 0.0, x / 1e5, x, 0.0, 150.0, 0, 0, 600, None, None, (stop_id,))


PLAN = TripPlan(
    trip_id=1,
    vehicle_id=1,
    depot_id=1,
    device_id="d1",
    projection=LocalProjection(0.0, 0.0),
    route_xy=((0.0, 0.0), (3000.0, 0.0)),
    stops=(stop(11, 1, 1000), stop(12, 2, 2000), stop(13, 3, 3000)),
    depot_lat=0.0,
    depot_lon=0.0,
    depot_x_m=0.0,
    depot_y_m=0.0,
    depot_radius_m=300.0,
    planned_departure_s=0.0,
    planned_return_s=0.0,
    max_speed_kmh=None,
)


def fix(t: float, x: float, v: float = NAN, ign: int = -1) -> Sample:
    return Sample(t, 0.0, x / 1e5, x, 0.0, speed_kmh=v, ignition=ign)


def drive(t0: float, x0: float, x1: float, ign: int = -1) -> Iterator[Sample]:
    """Fixes every 10 s after t0, 100 m apart, from x0 (exclusive) to x1 (inclusive)."""
    n = round(abs(x1 - x0) / 100)
    d = 100.0 if x1 > x0 else -100.0
    for i in range(1, n + 1):
        yield fix(t0 + 10 * i, x0 + d * i, 36.0, ign)


def wait(t0: float, t1: float, x: float, ign: int = -1, v: float = 0.0) -> Iterator[Sample]:
    """Fixes every 10 s from t0 to t1 inclusive, standing at x."""
    for t in range(int(t0), int(t1) + 1, 10):
        yield fix(t, x, v, ign)


def run(samples: Iterable[Sample], plan: TripPlan = PLAN) -> tuple[StopState, list[Event]]:
    """Step through the samples, saving and reloading the state as JSON every time."""
    state, events = StopState(), []
    for s in samples:
        state, out = step(state, s, plan)
        back = restored(state)
        assert back == state
        state = back
        events.extend(out)
    return state, events


def brief(events: list[Event], *kinds: str) -> list[tuple[str, str, float, str]]:
    return [(e.kind, e.phase, e.t_s, e.key) for e in events if not kinds or e.kind in kinds]


def test_defaults_are_the_settings() -> None:
    """What a worker configured with the default settings runs (constants included)."""
    assert Params.of(Settings()).stops == StopParams()


def test_arrive_and_serve_a_stop() -> None:
    tl = [*wait(0, 60, 0), *drive(60, 0, 1000), *wait(170, 400, 1000), *drive(400, 1000, 1500)]
    state, events = run(tl)
    assert brief(events) == [
        ("depot_departure", "info", 100, ""),  # x=400 is the first fix outside 300 m
        ("stop_arrival", "info", 150, "11"),  # x=900 is the first fix inside
        ("stop_departure", "info", 420, "11"),  # x=1200 is the first fix outside
    ]
    assert events[0].data == {"departed_s": 100}
    assert events[1].data == {
        "stop_id": 11,
        "seq": 1,
        "arrived_s": 150,
        "method": "geofence",
        "out_of_sequence": False,
        "order_ids": [11],
    }
    assert events[2].data == {"stop_id": 11, "departed_s": 420, "dwell_s": 270}
    assert state.departed_s == 100
    assert state.arrived_stop_ids == frozenset({11})


def test_driving_past_a_stop_is_no_arrival() -> None:
    state, events = run([*wait(0, 0, 0), *drive(0, 0, 3500)])
    assert brief(events) == [("depot_departure", "info", 40, "")]
    assert state.arrived_stop_ids == frozenset()


def test_border_jitter_during_service_is_one_visit() -> None:
    """Service of 10 min at stop 11 with every other fix 160 m out (outside the 150 m
    circle) and once two in a row (20 s < 30 s): one arrival, one departure, no unplanned
    stop although the outside fixes stand still outside every zone."""
    jitter = [fix(t, 1160.0 if (t // 10) % 2 else 1000.0, 0.0) for t in range(110, 700, 10)]
    jitter += [fix(700, 1160.0, 0.0), fix(710, 1160.0, 0.0), fix(720, 1000.0, 0.0)]
    tl = [*drive(0, 0, 1000), *jitter, *drive(720, 1000, 1500)]
    _, events = run(tl)
    assert brief(events, "stop_arrival", "stop_departure", "unplanned_stop") == [
        ("stop_arrival", "info", 90, "11"),  # x=900 at t=90, then jitter from t=110
        ("stop_departure", "info", 740, "11"),
    ]
    assert events[-1].data["dwell_s"] == 650


def test_stop_two_before_stop_one_is_out_of_sequence() -> None:
    tl = [*drive(0, 0, 2000), *wait(210, 300, 2000), *drive(300, 2000, 1000)]
    tl += [*wait(410, 500, 1000)]
    state, events = run(tl)
    assert brief(events, "stop_arrival", "stop_out_of_sequence") == [
        ("stop_arrival", "info", 190, "12"),  # x=1900 at t=190
        ("stop_out_of_sequence", "open", 190, "12"),
        ("stop_out_of_sequence", "close", 190, "12"),
        ("stop_arrival", "info", 390, "11"),  # x=1100 at t=390, coming back
    ]
    oos = [e for e in events if e.kind == "stop_out_of_sequence"]
    assert oos[0].data == {
        "stop_id": 12,
        "seq": 2,
        "expected_seq": 1,
        "skipped_stop_ids": [11],
        "order_ids": [12],
    }
    arrivals = [e for e in events if e.kind == "stop_arrival"]
    assert [a.data["out_of_sequence"] for a in arrivals] == [True, False]
    assert state.arrived_stop_ids == frozenset({11, 12})


def with_stops(*stops: PlannedStop) -> TripPlan:
    return dataclasses.replace(PLAN, stops=stops)


def test_two_stops_at_one_address_arrive_in_turn() -> None:
    """One customer, two orders: stops 11 and 12 both at x=1000 (service 600 s each). The
    van serves both: 12 arrives when 11's service ends, in sequence, and both depart."""
    plan = with_stops(stop(11, 1, 1000), stop(12, 2, 1000), stop(13, 3, 3000))
    tl = [*drive(0, 0, 1000), *wait(110, 1400, 1000), *drive(1400, 1000, 1500)]
    state, events = run(tl, plan)
    assert brief(events, "stop_arrival", "stop_departure", "stop_out_of_sequence") == [
        ("stop_arrival", "info", 90, "11"),
        ("stop_arrival", "info", 690, "12"),  # 90 + 600 s of service at 11
        ("stop_departure", "info", 1420, "11"),
        ("stop_departure", "info", 1420, "12"),
    ]
    arrivals = [e.data for e in events if e.kind == "stop_arrival"]
    assert [a["out_of_sequence"] for a in arrivals] == [False, False]
    assert state.arrived_stop_ids == frozenset({11, 12})


def test_leaving_before_the_service_ends_leaves_the_next_stop_there_unvisited() -> None:
    plan = with_stops(stop(11, 1, 1000), stop(12, 2, 1000), stop(13, 3, 3000))
    state, events = run([*drive(0, 0, 1000), *wait(110, 400, 1000), *drive(400, 1000, 1500)], plan)
    assert brief(events, "stop_arrival", "stop_departure", "stop_out_of_sequence") == [
        ("stop_arrival", "info", 90, "11"),
        ("stop_departure", "info", 420, "11"),
    ]
    assert state.arrived_stop_ids == frozenset({11}) and state.inside == ()


def test_a_later_stop_at_the_same_place_waits_for_its_turn() -> None:
    """Stops 11 and 13 share x=1000, 12 is at x=2000: serving 11 is not arriving at 13,
    which arrives in sequence when the van comes back after 12."""
    plan = with_stops(stop(11, 1, 1000), stop(12, 2, 2000), stop(13, 3, 1000))
    tl = [*drive(0, 0, 1000), *wait(110, 400, 1000), *drive(400, 1000, 2000)]
    tl += [*wait(510, 800, 2000), *drive(800, 2000, 1000), *wait(910, 1200, 1000)]
    state, events = run(tl, plan)
    assert brief(events, "stop_arrival", "stop_out_of_sequence") == [
        ("stop_arrival", "info", 90, "11"),
        ("stop_arrival", "info", 490, "12"),  # x=1900 at t=490
        ("stop_arrival", "info", 890, "13"),  # x=1100 at t=890, coming back
    ]
    assert state.arrived_stop_ids == frozenset({11, 12, 13})


def test_lingering_after_the_service_is_not_serving_a_later_stop_there() -> None:
    """11 and 13 share x=1000 (service 600 s): the van stays 20 s past 11's service and
    leaves. 13 has not been served; it arrives when the van comes back after 12."""
    plan = with_stops(stop(11, 1, 1000), stop(12, 2, 2000), stop(13, 3, 1000))
    tl = [*drive(0, 0, 1000), *wait(110, 710, 1000), *drive(710, 1000, 2000)]
    tl += [*wait(810, 1500, 2000), *drive(1500, 2000, 1000), *wait(1610, 1900, 1000)]
    state, events = run(tl, plan)
    assert brief(events, "stop_arrival", "stop_out_of_sequence") == [
        ("stop_arrival", "info", 90, "11"),
        ("stop_arrival", "info", 800, "12"),  # x=1900 at t=800
        ("stop_arrival", "info", 1590, "13"),  # coming back, in sequence
    ]
    assert state.arrived_stop_ids == frozenset({11, 12, 13})


def test_waiting_for_the_window_is_serving_this_stop_not_the_next_one_there() -> None:
    """11 and 13 share x=1000; the plan serves 11 from t=2400 (planned departure 3000,
    600 s of service), so the van there at t=90 waits 38 minutes, serves, leaves at 3000.
    All that time it is at 11: 13 arrives when the van comes back after 12, in sequence
    (counting 11's service from its arrival, 13 arrived out of sequence at t=690)."""
    early = dataclasses.replace(stop(11, 1, 1000), planned_departure_s=3000.0)
    plan = with_stops(early, stop(12, 2, 2000), stop(13, 3, 1000))
    tl = [*drive(0, 0, 1000), *wait(110, 3000, 1000), *drive(3000, 1000, 2000)]
    tl += [*wait(3110, 3400, 2000), *drive(3400, 2000, 1000), *wait(3510, 3800, 1000)]
    _, events = run(tl, plan)
    assert brief(events, "stop_arrival", "stop_out_of_sequence") == [
        ("stop_arrival", "info", 90, "11"),
        ("stop_arrival", "info", 3090, "12"),
        ("stop_arrival", "info", 3490, "13"),  # coming back, in sequence
    ]
    waiting, _ = run([*drive(0, 0, 1000), *wait(110, 1000, 1000)], plan)
    assert waiting.serving_until_s(plan) == 3000.0  # max(arrival 90, start 2400) + 600
    as_before = with_stops(stop(11, 1, 1000), stop(12, 2, 2000), stop(13, 3, 1000))
    _, events = run(tl, as_before)
    assert ("stop_arrival", "info", 690, "13") in brief(events, "stop_arrival")


def test_the_lowest_seq_arrives_first_when_circles_overlap() -> None:
    """Stop 12's circle (x=900) is entered at t=80, stop 11's (x=1000) at t=90: 11 arrives
    first, 12 after 11's service, and nothing is out of sequence."""
    plan = with_stops(stop(11, 1, 1000), stop(12, 2, 900), stop(13, 3, 3000))
    _, events = run([*drive(0, 0, 1000), *wait(110, 1400, 1000)], plan)
    assert brief(events, "stop_arrival", "stop_out_of_sequence") == [
        ("stop_arrival", "info", 90, "11"),
        ("stop_arrival", "info", 690, "12"),
    ]


def test_red_light_is_nothing_and_ten_minutes_is_one_unplanned_stop() -> None:
    tl = [*drive(-100, 4000, 5000), *wait(10, 70, 5000), *drive(70, 5000, 8000)]
    tl += [*wait(380, 980, 8000), *drive(980, 8000, 8500)]
    _, events = run(tl)
    found = [e for e in events if e.kind == "unplanned_stop"]
    assert brief(found) == [
        ("unplanned_stop", "open", 380, ""),
        ("unplanned_stop", "close", 990, ""),
    ]
    assert found[0].data == {"lat": 0.0, "lon": 0.08, "started_s": 380, "duration_s": 300}
    assert found[1].data == {
        "lat": 0.0,
        "lon": 0.08,
        "started_s": 380,
        "duration_s": 600,
        "ended_s": 980,
    }


def test_a_long_stop_at_a_customer_is_never_unplanned() -> None:
    _, events = run([*drive(0, 0, 1000), *wait(110, 2000, 1000), *drive(2000, 1000, 1500)])
    assert brief(events, "unplanned_stop", "stop_arrival") == [("stop_arrival", "info", 90, "11")]


def test_standing_at_the_depot_is_never_unplanned() -> None:
    _, events = run(wait(0, 3000, 100))
    assert events == []


def test_a_gap_without_fixes_is_not_a_stop() -> None:
    """Silence is the silence rule's news: time without fixes never counts as stopped."""
    _, events = run([fix(0, 8000, 0.0), fix(600, 8000, 0.0), *wait(610, 890, 8000)])
    assert brief(events, "unplanned_stop") == []
    _, events = run([fix(0, 8000, 0.0), fix(600, 8000, 0.0), *wait(610, 900, 8000)])
    assert brief(events, "unplanned_stop") == [("unplanned_stop", "open", 600, "")]


def test_unknown_speed_stops_by_position() -> None:
    tl = [fix(t, 8000 + (t % 20), NAN) for t in range(0, 310, 10)]  # jitter of 10 m
    _, events = run([*tl, fix(310, 8100, NAN)])
    assert brief(events, "unplanned_stop") == [
        ("unplanned_stop", "open", 0, ""),
        ("unplanned_stop", "close", 310, ""),
    ]


def test_idling_and_an_unplanned_stop_are_both_reported() -> None:
    tl = [*wait(0, 700, 8000, ign=1), *wait(710, 720, 8000, ign=0), *drive(720, 8000, 8200)]
    _, events = run(tl)
    assert brief(events, "idling", "unplanned_stop") == [
        ("unplanned_stop", "open", 0, ""),  # at t=300
        ("idling", "open", 0, ""),  # at t=600
        ("idling", "close", 710, ""),  # ignition off
        ("unplanned_stop", "close", 730, ""),  # moved
    ]
    idling = [e for e in events if e.kind == "idling"]
    assert idling[0].data["duration_s"] == 600
    assert idling[1].data == {"duration_s": 700, "reason": "ignition_off"}


def test_idling_ends_when_moving_and_never_starts_without_ignition() -> None:
    _, events = run([*wait(0, 650, 100, ign=1), *drive(650, 100, 600, ign=1)])
    assert brief(events, "idling") == [("idling", "open", 0, ""), ("idling", "close", 660, "")]
    close = [e for e in events if e.kind == "idling" and e.phase == "close"]
    assert close[0].data == {"duration_s": 650, "reason": "moved"}
    _, events = run(wait(0, 1500, 100, ign=-1))
    assert brief(events, "idling") == []


def test_return_to_the_depot_after_every_stop() -> None:
    one = dataclasses.replace(PLAN, stops=PLAN.stops[:1])
    tl = [*drive(0, 0, 1000), *wait(110, 300, 1000), *drive(300, 1000, 0), *wait(410, 600, 0)]
    state, events = run(tl, one)
    assert brief(events, "depot_departure", "depot_return") == [
        ("depot_departure", "info", 40, ""),
        ("depot_return", "info", 370, ""),  # x=300 at t=370, 60 s inside at t=430
    ]
    assert events[-1].data == {
        "returned_s": 370,
        "all_stops_visited": True,
        "missed_stop_ids": [],
        "unconfirmed_stop_ids": [],
    }
    assert state.returned_s == 370 and state.departed_s == 40


def well_formed(events: list[Event]) -> None:
    """Per (kind, key) an alert goes open, update*, close, and opens again only after that."""
    live: set[tuple[str, str]] = set()
    for e in events:
        ident = (e.kind, e.key)
        if e.phase == "open":
            assert ident not in live, e
            live.add(ident)
        elif e.phase in ("update", "close"):
            assert ident in live, e
            if e.phase == "close":
                live.discard(ident)


PLACES = (0.0, 290.0, 310.0, 1000.0, 1140.0, 1160.0, 2000.0, 3000.0, 8000.0)


@hyp_settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 10, 30, 400]),
            st.integers(1, 40),  # fixes in a row at this place
            st.sampled_from(PLACES),
            st.floats(-30, 30),  # jitter, alternating sides
            st.one_of(st.just(NAN), st.floats(0, 60)),
            st.sampled_from([-1, 0, 1]),
        ),
        max_size=20,
    )
)
def test_any_timeline_gives_well_formed_events(
    moves: list[tuple[int, int, float, float, float, int]],
) -> None:
    t, samples = 0.0, []
    for dt, repeat, place, jitter, v, ign in moves:
        for i in range(repeat):
            t += dt
            samples.append(fix(t, place + jitter * (-1) ** i, v, ign))
    state, events = run(samples)  # reloads the state from JSON at every fix
    plain, again = StopState(), []
    for s in samples:
        plain, out = step(plain, s, PLAN)
        again.extend(out)
    assert again == events and plain == state
    well_formed(events)
    arrivals = [e.key for e in events if e.kind == "stop_arrival"]
    unseen = [e.key for e in events if e.kind == "stop_visit_unconfirmed"]  # passed in a gap
    assert len(arrivals) == len(set(arrivals))
    assert len(unseen) == len(set(unseen)) and not set(unseen) & set(arrivals)
    assert {int(k) for k in [*arrivals, *unseen]} == state.arrived_stop_ids
    departures = [e.key for e in events if e.kind == "stop_departure"]
    assert len(departures) == len(set(departures)) and set(departures) <= set(arrivals)
    depot = [e.kind for e in events if e.kind.startswith("depot_")]
    assert depot == ["depot_departure", "depot_return"] * (len(depot) // 2) + (
        ["depot_departure"] if len(depot) % 2 else []
    )


# -- a tracker gap: stops the vehicle's progress shows it passed --------------------------


def _gap_trip(resume: Sample, then: Iterable[Sample]) -> list[Event]:
    """Out of the depot to x=500 (t=50), silent until ``resume``, then ``then``."""
    return run([*drive(0, 0, 500), resume, *then])[1]


def test_a_stop_passed_in_a_silence_is_visited_unconfirmed_and_the_next_is_in_sequence() -> None:
    events = _gap_trip(fix(900, 1500, 36.0), [*drive(900, 1500, 2000), *wait(960, 1100, 2000)])
    unseen = [e for e in events if e.kind == "stop_visit_unconfirmed"]
    assert [(e.key, e.t_s, e.data["gap_from_s"], e.data["gap_to_s"]) for e in unseen] == [
        ("11", 900, 50, 900)
    ]
    assert unseen[0].data["order_ids"] == [11] and unseen[0].data["seq"] == 1
    arrivals = [e for e in events if e.kind == "stop_arrival"]
    assert [(e.key, e.data["out_of_sequence"]) for e in arrivals] == [("12", False)]
    assert not [e for e in events if e.kind == "stop_out_of_sequence"]
    back = run([*drive(0, 0, 500), fix(900, 1500, 36.0), *drive(900, 1500, 2000),
                *wait(960, 1100, 2000), *drive(1100, 2000, 3000), *wait(1200, 1300, 3000),
                *drive(1300, 3000, 0), *wait(1610, 1700, 0)])[1]  # fmt: skip
    home = [e.data for e in back if e.kind == "depot_return"]
    assert home[-1]["unconfirmed_stop_ids"] == [11] and home[-1]["missed_stop_ids"] == []
    assert home[-1]["all_stops_visited"] is False  # one is not confirmed yet


def test_a_stop_skipped_before_the_silence_stays_skipped() -> None:
    """Driven through stop 11 in 30 s (no arrival), then silent from x=1500 to x=2500."""
    samples = [*drive(0, 0, 1500), fix(1000, 2500, 36.0), *drive(1000, 2500, 3000)]
    state, events = run([*samples, *wait(1060, 1200, 3000)])
    assert [e.key for e in events if e.kind == "stop_visit_unconfirmed"] == ["12"]
    late = [e for e in events if e.kind == "stop_out_of_sequence" and e.phase == "open"]
    assert [(e.key, e.data["skipped_stop_ids"]) for e in late] == [("13", [11])]
    assert state.arrived_stop_ids == {12, 13}


def test_nothing_is_inferred_off_the_route_after_a_short_gap_or_at_the_next_stop() -> None:
    off = Sample(900, 0.006, 0.015, 1500.0, 600.0, speed_kmh=36.0)  # 600 m off the road
    short = fix(250, 1500, 36.0)  # 200 s after the last fix: below max_gap_s
    at_stop = fix(900, 1000, 0.0)  # back with fixes inside stop 11: arrived by dwell
    for resume in (off, short):
        assert not [e for e in _gap_trip(resume, []) if e.kind == "stop_visit_unconfirmed"]
    events = _gap_trip(at_stop, wait(910, 1000, 1000))
    assert [(e.kind, e.key) for e in events if e.kind.startswith("stop_")] == [
        ("stop_arrival", "11")
    ]


def test_a_fix_near_a_later_pass_of_the_route_is_placed_on_the_earliest() -> None:
    """Out along y=0 to x=5000 and back along y=20 (the other carriageway): 12 m of GPS
    noise after a silence must not put the van on the way back, past every stop."""
    there_and_back = dataclasses.replace(
        PLAN,
        route_xy=((0.0, 0.0), (5000.0, 0.0), (5000.0, 20.0), (0.0, 20.0)),
        stops=(stop(11, 1, 1000), stop(12, 2, 2000), stop(13, 3, 4000)),
    )
    resume = Sample(400, 0.0, 0.015, 1500.0, 12.0, speed_kmh=36.0)
    events = run([*drive(0, 0, 500), resume, *wait(410, 500, 2000, v=0.0)], there_and_back)[1]
    assert [e.key for e in events if e.kind == "stop_visit_unconfirmed"] == ["11"]
    assert [e.key for e in events if e.kind == "stop_arrival"] == ["12"]


def test_a_silence_too_short_to_drive_there_passes_nothing_beyond_reach() -> None:
    """100 s at 144 km/h is 4 km along the route: a fix near the loop's last leg, 11 km
    on (or 540 m off the route at x=500), is not believed to be there."""
    loop = dataclasses.replace(
        PLAN, route_xy=((0.0, 0.0), (3000.0, 0.0), (3000.0, 3000.0), (0.0, 3000.0), (0.0, 0.0))
    )  # the way back ends at the depot: x=0 y=200 lies on it, 11.8 km along
    near_start = Sample(150, 0.002, 0.0, 0.0, 200.0, speed_kmh=36.0)
    events = run([*drive(0, 0, 500), near_start], loop)[1]
    assert not [e for e in events if e.kind == "stop_visit_unconfirmed"]
    later = Sample(350, 0.002, 0.0, 0.0, 200.0, speed_kmh=36.0)  # 300 s: 12 km, believed
    events = run([*drive(0, 0, 500), later], loop)[1]
    assert [e.key for e in events if e.kind == "stop_visit_unconfirmed"] == ["11", "12", "13"]
