"""Planning a day from the database into trips, and dispatching them (real PostgreSQL).

The day is 2 June 2026 in Amsterdam (UTC+2): 30 small orders around the depot in three
local windows, one order of 1,200 kg that no 100 kg van can carry, three vans with a
driver each and a fourth van nobody drives. The vans hold 100 kg, so the 30 × 7 kg
orders need all three.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from oms_core import dispatch, fleet, orders, planning
from oms_core import trips as trips_mod
from oms_core.errors import IllegalTransition, NotFound
from oms_core.model import LineIn
from oms_core.states import OrderState
from tests.oms_core import DEPOT_LAT, DEPOT_LON, World, order_in, seed

pytestmark = pytest.mark.db
S = OrderState
Conn = psycopg.Connection[Any]
DAY = date(2026, 6, 2)
AMS = ZoneInfo("Europe/Amsterdam")
MATRIX = planning.HaversineMatrix()


@pytest.fixture
def world(clean_db: str) -> World:
    """The shared seed with plenty of stock, so every test order can be reserved."""
    w = seed(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("UPDATE stock SET on_hand = 10000")
    return w


@pytest.fixture
def conn(world: World) -> Iterator[Conn]:
    with psycopg.connect(world.dsn, autocommit=True) as c:
        yield c


def plan_day(conn: Conn, day: date = DAY, **options: Any) -> dispatch.DayPlan:
    """``dispatch.plan_day`` with a short, repeatable search."""
    return dispatch.plan_day(conn, day, time_limit_s=1.0, max_iterations=300, **options)


def local_on(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), AMS)


def local(hour: int) -> datetime:
    return local_on(DAY, hour)


def reserved_order(conn: Conn, w: World, **changes: Any) -> int:
    o = orders.create_order(conn, order_in(w, **changes), actor="test")
    orders.transition(conn, o.id, S.VERIFIED, actor="test")
    orders.transition(conn, o.id, S.RESERVED, actor="test")
    return o.id


@pytest.fixture
def day(world: World, conn: Conn) -> tuple[list[int], int, list[int]]:
    """(the 30 small orders, the heavy order, the three driven vans)."""
    rng = random.Random(7)
    small = [
        reserved_order(
            conn,
            world,
            lat=DEPOT_LAT + rng.uniform(-0.04, 0.04),
            lon=DEPOT_LON + rng.uniform(-0.06, 0.06),
            window_start=local(9 + 3 * (i % 3)),
            window_end=local(12 + 3 * (i % 3)),
        )
        for i in range(30)
    ]
    heavy = reserved_order(
        conn,
        world,
        lines=(LineIn("A", 600, Decimal("1.00")),),
        window_start=local(9),
        window_end=local(17),
    )
    vans = []
    for n in range(4):
        van = fleet.add_vehicle(
            conn, plate=f"AMS-{n}", capacity_kg=100, capacity_m3=2, depot_id=world.depot_id
        )
        if n < 3:
            driver = fleet.add_driver(conn, name=f"driver {n}", shift_end=time(19))
            fleet.assign(conn, driver.id, van.id, DAY)
            vans.append(van.id)
    return small, heavy, vans


def stored_plan(
    trips: list[trips_mod.Trip], d: dispatch.DepotDay, unassigned: Any
) -> planning.Plan:
    """A Plan rebuilt only from what the tables hold (distances from the matrix)."""
    jobs = {j.order_id: j for j in d.problem.jobs}
    vehicles = {v.id: v for v in d.problem.vehicles}

    def secs(t: datetime) -> int:
        return int((t - d.midnight).total_seconds())

    routes = []
    for trip in trips:
        stops = tuple(
            planning.PlannedStop(
                order_ids=tuple(str(o) for o in s.order_ids),
                site=jobs[str(s.order_ids[0])].site,
                arrival_s=secs(s.planned_arrival),
                departure_s=secs(s.planned_departure),
                window=(0, 0),
                service_s=s.service_time_s,
            )
            for s in trip.stops
        )
        van = vehicles[str(trip.vehicle_id)]
        path = [van.depot, *(s.site for s in stops), van.depot]
        dist, _ = MATRIX.matrices(path)
        metres = sum(int(dist[i, i + 1]) for i in range(len(path) - 1))
        depart, back = secs(trip.planned_departure), secs(trip.planned_return)
        routes.append(
            planning.Route(str(trip.vehicle_id), stops, depart, back, metres, back - depart)
        )
    return planning.Plan(tuple(routes), {str(o): r for o, r in unassigned.items()})


def test_a_day_is_planned_checked_stored_and_scheduled(
    world: World, conn: Conn, day: tuple[list[int], int, list[int]]
) -> None:
    small, heavy, vans = day
    (problem,) = dispatch.load_day(conn, DAY, depot_id=world.depot_id)
    assert len(problem.problem.jobs) == 31
    assert sorted(int(v.id) for v in problem.problem.vehicles) == vans
    messages: list[str] = []
    result = plan_day(conn, depot_id=world.depot_id, progress=messages.append)

    assert result.unassigned == {heavy: "too_heavy_for_any_vehicle"}
    assert orders.get_order(conn, heavy).state == S.RESERVED
    trips = trips_mod.list_trips(conn, DAY, world.depot_id)
    assert [t.id for t in trips] == list(result.trip_ids)
    assert len(trips) == 3 and {t.vehicle_id for t in trips} == set(vans)
    on_stops = Counter(o for t in trips for s in t.stops for o in s.order_ids)
    assert set(on_stops) == set(small) and set(on_stops.values()) == {1}
    assert sorted(result.scheduled) == sorted(small)

    rebuilt = stored_plan(trips, problem, result.unassigned)
    assert planning.check(problem.problem, rebuilt, MATRIX) == []
    assert rebuilt.distance_m == result.distance_m > 0
    assert sum(r.duration_s for r in rebuilt.routes) == result.duration_s
    for t in trips:
        assert t.state == "planned" and t.day == DAY
        depot = (DEPOT_LON, DEPOT_LAT)
        assert t.route_geometry == (depot, *((s.lon, s.lat) for s in t.stops), depot)
        assert [s.seq for s in t.stops] == list(range(1, len(t.stops) + 1))
        for s in t.stops:
            assert s.window_start is not None and s.window_end is not None
            assert s.window_start <= s.planned_departure - timedelta(seconds=s.service_time_s)
            assert s.planned_departure - timedelta(seconds=s.service_time_s) <= s.window_end
        assert local(8) <= t.planned_departure < t.planned_return <= local(19)
    for t in trips:
        for s in t.stops:
            for oid in s.order_ids:
                assert orders.get_order(conn, oid).state == S.SCHEDULED
                last = orders.audit_trail(conn, oid)[-1]
                assert (last.actor, last.from_state, last.to_state, last.reason) == (
                    "planner",
                    "reserved",
                    "scheduled",
                    f"trip {t.id}",
                )
    assert messages and all(m.startswith(f"depot {world.depot_id}: ") for m in messages)


def test_a_planned_day_is_refused_and_left_alone(
    world: World, conn: Conn, day: tuple[list[int], int, list[int]]
) -> None:
    first = plan_day(conn)
    late = reserved_order(conn, world, window_start=local(10), window_end=local(12))
    with pytest.raises(dispatch.DayAlreadyPlanned, match="already planned"):
        plan_day(conn, depot_id=world.depot_id)
    assert [t.id for t in trips_mod.list_trips(conn, DAY)] == list(first.trip_ids)
    assert orders.get_order(conn, late).state == S.RESERVED
    assert plan_day(conn, DAY + timedelta(days=1)).trip_ids == ()


def test_vans_without_a_driver_or_outside_depot_hours_are_not_planned(
    world: World, conn: Conn
) -> None:
    only = reserved_order(conn, world, window_start=local(9), window_end=local(12))
    night = fleet.add_driver(conn, name="night", shift_start=time(22, 30), shift_end=time(23, 30))
    van = fleet.add_vehicle(
        conn, plate="NIGHT", capacity_kg=100, capacity_m3=2, depot_id=world.depot_id
    )
    fleet.assign(conn, night.id, van.id, DAY)
    result = plan_day(conn)
    assert result.idle_vehicles == {van.id: dispatch.SHIFT_OUTSIDE_DEPOT_HOURS}
    assert result.unassigned == {only: "no_vehicle"}
    assert result.trip_ids == () and orders.get_order(conn, only).state == S.RESERVED


def test_dispatch_and_start_move_the_trip_and_its_orders(
    world: World, conn: Conn, day: tuple[list[int], int, list[int]]
) -> None:
    plan = plan_day(conn)
    trip_id, other = plan.trip_ids[0], plan.trip_ids[1]
    trip = trips_mod.dispatch_trip(conn, trip_id, actor="desk")
    ids = [o for s in trip.stops for o in s.order_ids]
    assert trip.state == "dispatched" and ids
    assert {orders.get_order(conn, o).state for o in ids} == {S.DISPATCHED}
    last = orders.audit_trail(conn, ids[0])[-1]
    assert (last.actor, last.to_state, last.reason) == ("desk", "dispatched", f"trip {trip_id}")
    assert trips_mod.get_trip(conn, other).state == "planned"
    with pytest.raises(IllegalTransition, match="legal next: in_progress"):
        trips_mod.dispatch_trip(conn, trip_id, actor="desk")
    started = trips_mod.start_trip(conn, trip_id, actor="driver")
    assert started.state == "in_progress"
    assert {orders.get_order(conn, o).state for o in ids} == {S.OUT_FOR_DELIVERY}


def test_dispatch_is_all_or_nothing_and_skips_cancelled_orders(
    world: World, conn: Conn, day: tuple[list[int], int, list[int]]
) -> None:
    trip_id = plan_day(conn).trip_ids[0]
    ids = [o for s in trips_mod.get_trip(conn, trip_id).stops for o in s.order_ids]
    assert len(ids) >= 3
    orders.transition(conn, ids[-1], S.DISPATCHED, actor="test")  # moved by hand
    with pytest.raises(trips_mod.TripRefused, match=f"order {ids[-1]}"):
        trips_mod.dispatch_trip(conn, trip_id, actor="desk")
    assert trips_mod.get_trip(conn, trip_id).state == "planned"
    assert {orders.get_order(conn, o).state for o in ids[:-1]} == {S.SCHEDULED}

    cancelled = ids[0]
    orders.transition(conn, cancelled, S.CANCELLED, actor="customer")
    with conn.transaction():
        conn.execute("DELETE FROM stop_orders WHERE order_id = %s", (ids[-1],))
    assert trips_mod.dispatch_trip(conn, trip_id, actor="desk").state == "dispatched"
    assert orders.get_order(conn, cancelled).state == S.CANCELLED
    assert {orders.get_order(conn, o).state for o in ids[1:-1]} == {S.DISPATCHED}


def test_unknown_trip_and_depot_are_not_found(world: World, conn: Conn) -> None:
    with pytest.raises(NotFound, match="no trip 999"):
        trips_mod.get_trip(conn, 999)
    with pytest.raises(NotFound, match="no trip 999"):
        trips_mod.dispatch_trip(conn, 999, actor="desk")
    with pytest.raises(NotFound, match="no depot 999"):
        dispatch.plan_day(conn, DAY, depot_id=999)
    assert trips_mod.list_trips(conn, DAY) == []


def test_times_are_seconds_since_local_midnight_on_a_23_hour_day(world: World, conn: Conn) -> None:
    spring = date(2026, 3, 29)  # Amsterdam skips 02:00–03:00
    night = datetime(2026, 3, 28, 20, 0, tzinfo=AMS)
    early = reserved_order(conn, world, window_start=night, window_end=local_on(spring, 10))
    late = reserved_order(
        conn, world, window_start=local_on(spring, 9), window_end=local_on(spring, 12)
    )
    nowhere = reserved_order(
        conn,
        world,
        lat=None,
        lon=None,
        window_start=local_on(spring, 9),
        window_end=local_on(spring, 12),
    )
    # 23:00 local is 22 h after midnight; the window is cut at the day's end, 23 h in
    evening = reserved_order(
        conn, world, window_start=local_on(spring, 23), window_end=night + timedelta(2)
    )
    monday = spring + timedelta(1)
    reserved_order(conn, world, window_start=local_on(monday, 9), window_end=local_on(monday, 12))
    driver = fleet.add_driver(conn, name="Bo")
    van = fleet.add_vehicle(conn, plate="V", capacity_kg=50, capacity_m3=1, depot_id=world.depot_id)
    fleet.assign(conn, driver.id, van.id, spring)

    (d,) = dispatch.load_day(conn, spring)
    hour = 3600
    assert d.midnight == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert (d.problem.depot_open_s, d.problem.depot_close_s) == (5 * hour, 21 * hour)
    windows = {int(j.order_id): (j.window_start_s, j.window_end_s) for j in d.problem.jobs}
    assert windows == {
        early: (0, 9 * hour),
        late: (8 * hour, 11 * hour),
        evening: (22 * hour, 23 * hour),
    }
    assert d.left_out == {nowhere: dispatch.NO_COORDINATES}
    (v,) = d.problem.vehicles
    assert (v.shift_start_s, v.shift_end_s, v.capacity_kg) == (7 * hour, 16 * hour, 50.0)
    assert d.drivers == {van.id: driver.id}
    assert d.at(8 * hour) == local_on(spring, 9)
