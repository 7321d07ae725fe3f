"""The demo's control-tower side: the day moved onto the fleet clock, trips driven from
the database, faults handed out, and ``menara demo`` raising the faults' alerts."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from menara import demo_history, demo_oms, demo_tower
from menara.cli import main
from oms_core import trips
from simulators.faults import Detour, LateDeparture, Silence, Speeding, UnplannedStop
from simulators.trip_driver import DrivenStop, DrivenTrip, drive
from tests.menara import demo_env
from tests.oms_core import OMS_TABLES
from tests.ports import free_port

DAY = date(2026, 6, 3)
DEVICES = ["TWR0001", "TWR0002", "TWR0003"]
NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
M_PER_DEG = 111_194.93  # metres per degree on the driver's sphere (EARTH_RADIUS_M)


def _empty_oms(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {OMS_TABLES} RESTART IDENTITY CASCADE")


def _seeded(dsn: str) -> list[demo_oms.PlannedTrip]:
    _empty_oms(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        return demo_oms.seed_and_plan(
            conn, day=DAY, device_ids=DEVICES, orders=24, time_limit_s=0.5, progress=lambda _: None
        )


def _times(conn: psycopg.Connection[Any], trip_ids: list[int]) -> list[tuple[Any, ...]]:
    """Every time the re-basing moves, per row, in a stable order."""
    return [
        *conn.execute(
            "SELECT 'trip', id, planned_departure, planned_return FROM trips"
            " WHERE id = ANY(%s) ORDER BY id",
            (trip_ids,),
        ).fetchall(),
        *conn.execute(
            "SELECT 'stop', id, planned_arrival, planned_departure, window_start, window_end"
            " FROM stops WHERE trip_id = ANY(%s) ORDER BY id",
            (trip_ids,),
        ).fetchall(),
        *conn.execute(
            "SELECT 'order', o.id, o.window_start, o.window_end FROM orders o WHERE o.id IN"
            " (SELECT so.order_id FROM stop_orders so JOIN stops s ON s.id = so.stop_id"
            "  WHERE s.trip_id = ANY(%s)) ORDER BY o.id",
            (trip_ids,),
        ).fetchall(),
    ]


def _moved(rows: list[tuple[Any, ...]], by: timedelta) -> list[tuple[Any, ...]]:
    return [(kind, rid, *(t + by for t in ts)) for kind, rid, *ts in rows]


def _offset(conn: psycopg.Connection[Any], trip_ids: list[int], now: datetime = NOW) -> timedelta:
    loaded = demo_tower.load_trips(conn, trip_ids)
    fixes = demo_tower.timeline(loaded, {}, cruise_kmh=23.0)
    return demo_tower.replay_offset(
        fixes[0].fix_time, fixes[-1].fix_time, speedup=60, now=now, window_s=None
    )


@pytest.mark.db
def test_rebase_shifts_trips_stops_and_orders_and_runs_again(clean_db: str) -> None:
    planned = _seeded(clean_db)
    assert len(planned) >= 2
    moved_ids = [t.trip_id for t in planned[:-1]]
    kept_ids = [planned[-1].trip_id]
    with psycopg.connect(clean_db, autocommit=True) as conn:
        before, kept = _times(conn, moved_ids), _times(conn, kept_ids)
        stop_id = before[len(moved_ids)][1]
        conn.execute("UPDATE stops SET actual_arrival = now() WHERE id = %s", (stop_id,))
        conn.execute(
            "INSERT INTO alerts (type, severity, dedupe_key, trip_id, message, opened_at,"
            " last_seen_at) VALUES ('silent_device', 'warning', 'k', %s, 'm', now(), now())",
            (moved_ids[0],),
        )
        offset = _offset(conn, moved_ids)
        demo_tower.rebase(conn, moved_ids, offset)
        after = _times(conn, moved_ids)
        again = _offset(conn, moved_ids)  # a second run at the same moment: nothing to move
        demo_tower.rebase(conn, moved_ids, again)
        twice = _times(conn, moved_ids)
        next_hour = _offset(conn, moved_ids, NOW + timedelta(hours=1))
        state = conn.execute(
            "SELECT (SELECT actual_arrival FROM stops WHERE id = %s),"
            " (SELECT state FROM alerts WHERE dedupe_key = 'k')",
            (stop_id,),
        ).fetchone()
        untouched = _times(conn, kept_ids)
    assert abs(offset) > timedelta(hours=1)
    assert after == _moved(before, offset)  # trips, stops and the orders' windows alike
    assert {r[0] for r in after} == {"trip", "stop", "order"}
    assert again == timedelta(0) and twice == after
    assert next_hour == timedelta(hours=1)  # relative to the stored times, run after run
    assert untouched == kept  # another trip and its orders stay where they were
    assert state == (None, "resolved")  # an earlier replay's visit and alert are gone


@pytest.mark.db
def test_the_orders_history_is_dated_on_the_moved_day(clean_db: str) -> None:
    """Entered before the 06:00 cutoff, reserved at it, planned, then released to the
    van 45 min before it leaves: every stage before departure has a length."""
    planned = _seeded(clean_db)
    ids = [t.trip_id for t in planned]
    with psycopg.connect(clean_db, autocommit=True) as conn:
        offset = _offset(conn, ids)
        demo_tower.rebase(conn, ids, offset)
        demo_history.date_history(conn, ids, offset)
        rows = conn.execute(
            "SELECT o.created_at, t.day, t.planned_departure,"
            " max(e.at) FILTER (WHERE e.to_state = 'reserved'),"
            " max(e.at) FILTER (WHERE e.to_state = 'scheduled'),"
            " max(e.at) FILTER (WHERE e.to_state = 'dispatched')"
            " FROM trips t JOIN stops s ON s.trip_id = t.id"
            " JOIN stop_orders so ON so.stop_id = s.id JOIN orders o ON o.id = so.order_id"
            " JOIN order_events e ON e.order_id = o.id"
            " WHERE t.id = ANY(%s) GROUP BY o.id, t.id",
            (ids,),
        ).fetchall()
        with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
            conn.execute("UPDATE order_events SET reason = 'x'")  # the trigger is back on
    assert len(rows) == 24
    for entered, day, departure, reserved, scheduled, dispatched in rows:
        cutoff = datetime.combine(day, demo_oms.ORDER_CUTOFF, demo_oms.JAKARTA) + offset
        assert cutoff - timedelta(hours=14) <= entered <= cutoff - timedelta(hours=4)
        assert reserved == cutoff and scheduled == cutoff + demo_history.PLANNING
        assert dispatched == departure - demo_history.LOADING


def test_replay_offset_puts_the_last_fix_at_the_end_of_the_replay() -> None:
    first = datetime(2026, 6, 3, 0, 27, tzinfo=UTC)
    last = first + timedelta(hours=10)
    offset = demo_tower.replay_offset(first, last, speedup=60, now=NOW)
    # the day starts 10 h × 59/60 before now and, 10 min of wall time later, ends then
    assert first + offset == NOW - timedelta(minutes=590)
    assert last + offset == NOW + timedelta(minutes=10)
    bounded = demo_tower.replay_offset(first, last, speedup=60, now=NOW, window_s=60)
    assert first + bounded == NOW - timedelta(minutes=59)
    with pytest.raises(ValueError, match="speedup must be"):
        demo_tower.replay_offset(first, last, speedup=0, now=NOW)


@pytest.mark.db
def test_load_trips_builds_driven_trips_from_the_database(clean_db: str) -> None:
    planned = _seeded(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        loaded = demo_tower.load_trips(conn, [t.trip_id for t in planned])
        stored = {t.trip_id: trips.get_trip(conn, t.trip_id) for t in planned}
    assert [t.device_id for t in loaded] == sorted(t.device_id for t in planned)
    for t in loaded:
        s = stored[t.trip_id]
        assert t.driven == DrivenTrip(
            device_id=t.device_id,
            depot_lat=demo_oms.DEPOT_LAT,
            depot_lon=demo_oms.DEPOT_LON,
            route=s.route_geometry,
            stops=tuple(
                DrivenStop(
                    x.lat,
                    x.lon,
                    x.service_time_s,
                    x.planned_departure - timedelta(seconds=x.service_time_s),
                )
                for x in s.stops
            ),
            planned_departure=s.planned_departure,
        )
        assert [x.seq for x in s.stops] == list(range(1, len(s.stops) + 1))
        assert t.plate == f"DEMO {t.device_id}" and t.vehicle_id == s.vehicle_id
        assert len(t.vertex_m) == len(s.route_geometry)
        assert all(b >= a for a, b in itertools.pairwise(t.vertex_m))
        fixes = drive(t.driven, before_s=180)
        assert fixes[0].fix_time == s.planned_departure - timedelta(seconds=180)


def _straight(device: str, leg_m: float) -> demo_tower.DemoTrip:
    """Out along the equator to one stop ``leg_m`` east and back."""
    east = leg_m / M_PER_DEG
    route = ((0.0, 0.0), (east, 0.0), (0.0, 0.0))
    driven = DrivenTrip(
        device, 0.0, 0.0, route, (DrivenStop(0.0, east, 300),), NOW - timedelta(hours=5)
    )
    return demo_tower.DemoTrip(1, 1, f"P {device}", driven, (0.0, leg_m, 2 * leg_m))


def test_the_first_five_vans_by_device_id_get_one_fault_each() -> None:
    vans = [_straight(f"D{n}", 10_000) for n in (6, 3, 1, 5, 2, 4)]
    faults = demo_tower.assign_faults(vans, cruise_kmh=36)
    assert {d: p.fault for d, p in faults.items()} == {
        "D1": Detour(after_m=4250, length_m=1500, offset_m=600),
        "D2": Speeding(after_m=4500, length_m=1000, speed_kmh=120),
        "D3": UnplannedStop(after_m=5000, duration_s=600),
        "D4": LateDeparture(2400),
        "D5": Silence(duration_s=360, after_m=3200),  # 6 min at 36 km/h is 3.6 km
    }
    assert [p.kind for p in faults.values()] == list(demo_tower.FAULT_ORDER)
    assert faults["D1"].says == "van P D1 will take a detour 600 m off its route"
    assert demo_tower.assign_faults(list(reversed(vans)), cruise_kmh=36) == faults
    # A van whose legs are too short for a fault passes it on to the next van.
    short = demo_tower.assign_faults([_straight("A", 1500), *vans[1:]], cruise_kmh=36)
    assert {d: p.kind for d, p in short.items()} == {
        "A": "unplanned_stop",  # no room for a 1.5 km detour or 1 km of speeding
        "D1": "detour",
        "D2": "speeding",
        "D3": "late_departure",
        "D4": "silence",
    }


@pytest.mark.db
@pytest.mark.mqtt
def test_menara_demo_raises_the_faults_alerts(
    clean_db: str,
    mqtt_broker: tuple[str, int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _empty_oms(clean_db)
    demo_env(monkeypatch, clean_db, mqtt_broker, tmp_path, MENARA_GT06_PORT=free_port())
    # A day whose 90 orders need five vans (the orders are drawn per day; some days'
    # fit in four, and the fifth fault, a silent tracker, would then not be driven).
    monkeypatch.setattr(demo_oms, "today", lambda: date(2026, 12, 1))
    args = ["demo", "--vehicles", "6", "--orders", "90", "--speedup", "1000"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "tower: clock = the fleet's newest fix time, stale_fix_s = " in out
    assert re.search(r"^\[\s+\d+s\] fleet \d\d:\d\d  received", out, re.M)
    with psycopg.connect(clean_db) as conn:
        devices = [
            r[0]
            for r in conn.execute(
                "SELECT v.tracker_device_id FROM trips t JOIN vehicles v ON v.id = t.vehicle_id"
                " ORDER BY 1"
            )
        ]
        raised: dict[str, set[str]] = {}
        for device, kind in conn.execute("SELECT device_id, type FROM alerts"):
            raised.setdefault(device, set()).add(kind)
        protocols = {r[0] for r in conn.execute("SELECT DISTINCT protocol FROM positions")}
    assert len(devices) >= 5, "the planner should need five of the six vans for 90 orders"
    faulty = dict(re.findall(r"^  van DEMO (\d+): (\w+) -> ", out, re.M))
    assert sorted(faulty.values()) == sorted(demo_tower.FAULT_ORDER)
    assert set(faulty) <= set(devices)
    for device, kind in faulty.items():
        assert demo_tower.ALERT_FOR[kind] in raised.get(device, set()), (kind, device, raised)
        assert f"van DEMO {device}: {kind} -> {demo_tower.ALERT_FOR[kind]} raised" in out
        assert re.search(
            rf"^ALERT \d\d:\d\d {demo_tower.ALERT_FOR[kind]} van DEMO {device}: ", out, re.M
        )
    assert {"menara-json", "t55"} <= protocols
    # The drivers worked the day through the driver app: every order has an outcome,
    # one failed and one partly delivered (with their re-delivery orders), every trip
    # closed with its cash settled, and the customers were emailed.
    with psycopg.connect(clean_db) as conn:
        outcomes: dict[str, int] = dict(
            conn.execute("SELECT outcome, count(*) FROM epods GROUP BY 1").fetchall()
        )
        open_orders = conn.execute(
            "SELECT count(*) FROM orders o JOIN stop_orders so ON so.order_id = o.id"
            " WHERE o.state NOT IN ('completed', 'cancelled')"
        ).fetchone()
        closed = conn.execute(
            "SELECT count(*) FILTER (WHERE state = 'completed'), count(*) FROM trips"
        ).fetchone()
        settled = conn.execute("SELECT count(*), sum(difference) FROM cod_settlements").fetchone()
        follow_ups = conn.execute("SELECT count(*) FROM orders WHERE follow_up_of IS NOT NULL")
        judged = conn.execute("SELECT count(*), count(*) FILTER (WHERE perfect)"
                              " FROM perfect_deliveries").fetchone()  # fmt: skip
        mailed = conn.execute(
            "SELECT count(*) FROM deliveries WHERE order_id IS NOT NULL AND state = 'delivered'"
        ).fetchone()
        assert follow_ups.fetchone() == (2,)
    assert outcomes["failed"] == 1 and outcomes["partially_delivered"] == 1
    assert outcomes["delivered"] >= 80
    assert open_orders == (0,)
    assert closed is not None and closed[0] == closed[1] == len(devices)
    assert settled is not None and settled[0] == len(devices) and settled[1] == 0
    assert judged is not None and judged[0] == sum(outcomes.values())
    assert mailed is not None and mailed[0] > 0
    rate = re.search(r"perfect deliveries: (\d+) of (\d+) orders \((\d+\.\d) %", out)
    assert rate is not None and int(rate[1]) == judged[1] and int(rate[2]) == judged[0]
    assert re.search(r"^DELIVERY van DEMO \d+: order \d+ failed \(customer_absent\)", out, re.M)
    assert re.search(
        r"^DELIVERY van DEMO \d+: order \d+ partially_delivered \(damaged\)", out, re.M
    )
    assert re.search(r"follow order MN-\w+ as its customer: http://\S+/t/[\w-]{22,}$", out, re.M)
