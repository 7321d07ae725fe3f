"""When the demo's drivers tap, read off their vans' fixes: a visit from the van standing
at the stop to the end of its service (which waits for the plan's service start), two
stops at one door split by the plan, a stop the tracker was silent at placed between
its neighbours, and the same taps after the day is moved onto the fleet clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from menara import demo_drivers, demo_tower
from simulators.faults import Silence
from simulators.trip_driver import DrivenStop, DrivenTrip, drive

M_PER_DEG = 111_194.93  # metres per degree on the simulator's sphere
T0 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
CRUISE_KMH = 36.0  # 10 m/s: 2 km out is 200 s


def trip(*stops: DrivenStop) -> demo_tower.DemoTrip:
    """Out along the equator to 4 km east and back; stops lie on the way out."""
    east = 4000 / M_PER_DEG
    route = ((0.0, 0.0), (east, 0.0), (0.0, 0.0))
    driven = DrivenTrip("VAN1", 0.0, 0.0, route, stops, T0)
    return demo_tower.DemoTrip(7, 1, "P 1", driven, (0.0, 4000.0, 8000.0))


def stop_at(metres: float, service_s: float, serve_from: datetime | None) -> DrivenStop:
    return DrivenStop(0.0, metres / M_PER_DEG, service_s, serve_from)


def script(t: demo_tower.DemoTrip, **kw: object) -> demo_drivers.Script:
    fixes = drive(t.driven, cruise_kmh=CRUISE_KMH, jitter_m=0, before_s=60, **kw)  # type: ignore[arg-type]
    return demo_drivers.script(t, fixes)


def near(a: datetime, b: datetime, s: float = 5.5) -> bool:
    return abs((a - b).total_seconds()) <= s


def test_a_van_early_for_its_window_waits_and_the_visit_ends_with_the_service() -> None:
    ready = T0 + timedelta(minutes=20)
    s = script(trip(stop_at(2000, 300, ready)))
    assert s.depart is not None and near(s.depart, T0)
    (v,) = s.visits
    assert near(v.arrive, T0 + timedelta(seconds=200))
    assert v.leave == ready + timedelta(seconds=300)
    assert s.back is not None and s.back > v.leave


def test_two_stops_at_one_door_are_two_visits() -> None:
    first, second = T0 + timedelta(minutes=5), T0 + timedelta(minutes=40)
    s = script(trip(stop_at(2000, 300, first), stop_at(2000, 300, second)))
    a, b = s.visits
    assert a.leave == first + timedelta(seconds=300) == b.arrive
    assert b.leave == second + timedelta(seconds=300)


def test_a_stop_the_tracker_was_silent_at_is_placed_between_its_neighbours() -> None:
    t = trip(stop_at(1000, 300, None), stop_at(2000, 300, None), stop_at(3000, 300, None))
    s = script(t, faults=(Silence(duration_s=600, after_m=1500),))
    one, two, three = s.visits
    assert one.leave < two.arrive < two.leave < three.arrive


def test_the_taps_move_with_the_day() -> None:
    t = trip(stop_at(2000, 300, T0 + timedelta(minutes=20)))
    fixes = drive(t.driven, cruise_kmh=CRUISE_KMH, jitter_m=0, before_s=60)
    offset = timedelta(hours=-18, minutes=-7)
    before = demo_drivers.script(t, fixes)
    after = demo_drivers.script(demo_tower.moved(t, offset), demo_tower.shift(fixes, offset))
    assert [(v.arrive - offset, v.leave - offset) for v in after.visits] == [
        (v.arrive, v.leave) for v in before.visits
    ]
