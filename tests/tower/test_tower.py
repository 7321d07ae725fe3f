"""The tower fed directly (as the writer feeds it) with the issue's scenarios: each
misbehaving vehicle raises exactly its alerts with its trip, stop and orders; the clean
one raises none; stops are arrived by geofence and their orders move to arrived."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.tower import scenario
from tests.tower.world import Fleet, build
from tower.worker import Tower

pytestmark = pytest.mark.db


def _run_scenarios(dsn: str, chunk_s: float = 30.0) -> Fleet:
    departure = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=100)
    fleet = build(dsn, scenario.specs(departure))
    fixes = scenario.timeline(fleet)

    async def go() -> None:
        clock: list[float] = [0.0]
        async with Tower(dsn, clock=lambda: clock[0], tick_s=3600) as tower:
            for chunk in scenario.chunks(fixes, chunk_s):
                if not chunk:
                    continue
                received = int(chunk[-1].fix_time.timestamp() * 1e6) + 1_000_000
                await tower.feed(scenario.batches(chunk, received))
                await tower.drain()
                clock[0] = tower.fleet_time_s
                await tower.tick()
            assert tower.counters["errors"] == 0

    asyncio.run(go())
    return fleet


def _alerts(dsn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            "SELECT a.type, a.dedupe_key, a.vehicle_id, a.trip_id, a.stop_id, a.order_ids,"
            " a.details, a.state, a.cleared_at, v.plate FROM alerts a"
            " JOIN vehicles v ON v.id = a.vehicle_id ORDER BY a.id"
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@pytest.mark.parametrize(
    "chunk_s", [30.0, 900.0, 3600.0], ids=["steady", "quarter-hour-backlog", "hour-backlog"]
)
def test_each_scenario_raises_exactly_its_alerts(clean_db: str, chunk_s: float) -> None:
    """Also when ingest lags and a whole hour of fixes arrives as one batch per vehicle
    (a late van's batch then holds its wait at the depot and its first legs)."""
    fleet = _run_scenarios(clean_db, chunk_s)
    keys = scenario.stop_keys(fleet)
    alerts = _alerts(clean_db)
    got: dict[str, set[tuple[str, str]]] = {plate: set() for plate in scenario.FAULTS}
    for a in alerts:
        key = a["dedupe_key"].split(":", 3)[3]
        got[a["plate"]].add((a["type"], keys.get(key, key)))
    assert got == scenario.EXPECTED
    assert len(alerts) == sum(len(v) for v in scenario.EXPECTED.values())  # one per incident
    for a in alerts:
        trip = fleet.trips[a["plate"]]
        assert a["trip_id"] == trip.trip_id
        assert a["vehicle_id"] == trip.vehicle_id
        assert a["order_ids"], a
        assert set(a["order_ids"]) <= set(trip.order_ids)
        if a["type"] == "eta_at_risk":
            assert a["order_ids"] == [trip.order_ids[trip.stop_ids.index(a["stop_id"])]]


def test_alert_figures_match_the_faults(clean_db: str) -> None:
    _run_scenarios(clean_db)
    by_type = {a["type"]: a for a in _alerts(clean_db)}
    dev = by_type["route_deviation"]["details"]
    assert 550 <= dev["max_distance_m"] <= 650  # the detour's 600 m offset
    speed = by_type["overspeed"]["details"]
    assert 115 <= speed["max_speed_kmh"] <= 121 and speed["limit_kmh"] == 90
    stop = by_type["unplanned_stop"]["details"]
    assert 590 <= stop["duration_s"] <= 610  # 10 min, to a fix (5 s)
    late = by_type["late_departure"]["details"]
    assert late["minutes_late"] >= 10
    silent = by_type["silent_device"]["details"]
    assert silent["silent_s"] >= 300
    for a in _alerts(clean_db):  # every incident here ended before the timeline did
        assert a["cleared_at"] is not None, a["type"]


def test_stops_are_arrived_by_geofence_and_orders_move(clean_db: str) -> None:
    """Every stop but the one GAP-1 served in its silence, which waits for confirmation."""
    fleet = _run_scenarios(clean_db)
    unseen = fleet.trips["GAP-1"].stop_ids[0]
    with psycopg.connect(clean_db) as conn:
        stops = conn.execute(
            "SELECT id, actual_arrival IS NOT NULL, actual_departure IS NOT NULL, arrival_method,"
            " out_of_sequence, eta IS NOT NULL, unconfirmed_from IS NOT NULL FROM stops"
        ).fetchall()
        trips = conn.execute("SELECT DISTINCT state FROM trips").fetchall()
        states = conn.execute(
            "SELECT DISTINCT o.state, so.stop_id = %s FROM orders o"
            " JOIN stop_orders so ON so.order_id = o.id",
            (unseen,),
        ).fetchall()
        audit = conn.execute(
            "SELECT count(*) FROM order_events WHERE actor = 'geofence' AND to_state = 'arrived'"
        ).fetchone()
    seen = [r[1:] for r in stops if r[0] != unseen]
    assert seen == [(True, True, "geofence", False, True, False)] * len(seen)
    assert [r[1:] for r in stops if r[0] == unseen] == [(False, False, None, False, True, True)]
    assert len(stops) == 3 * len(fleet.trips)
    assert trips == [("in_progress",)]
    assert sorted(states) == [("arrived", False), ("out_for_delivery", True)]
    assert audit == (len(seen),)


def test_a_stop_served_in_a_tracker_silence_keeps_the_silence_for_confirmation(
    clean_db: str,
) -> None:
    fleet = _run_scenarios(clean_db)
    trip = fleet.trips["GAP-1"]
    with psycopg.connect(clean_db) as conn:
        row = conn.execute(
            "SELECT unconfirmed_to - unconfirmed_from, unconfirmed_from < planned_arrival,"
            " unconfirmed_to > planned_departure FROM stops WHERE id = %s",
            (trip.stop_ids[0],),
        ).fetchone()
        later = conn.execute(
            "SELECT bool_and(actual_arrival IS NOT NULL AND NOT out_of_sequence) FROM stops"
            " WHERE trip_id = %s AND seq > 1",
            (trip.trip_id,),
        ).fetchone()
    assert row is not None
    gap, before, after = row
    assert 900 <= gap.total_seconds() <= 910  # the 15-minute silence, to a fix (5 s)
    assert before and after  # it began before the van got there and ended after it left
    assert later == (True,)
