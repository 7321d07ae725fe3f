"""Rule states are saved beside the rounds (``tower.saver``): a snapshot never replaces a
state taken later, snapshots still waiting merge with the newer state winning, and a
database that is away keeps them for the next try. A plan refresh keeps what did not
change (plan objects, so their geometry; the zone index) and rebuilds what did."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.tower import scenario
from tests.tower.world import Fleet, build
from tower.saver import SavedState, StateSaver, save
from tower.worker import Tower

pytestmark = pytest.mark.db


def _fleet(dsn: str, n: int = 2) -> Fleet:
    departure = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    return build(dsn, scenario.specs(departure)[:n])


def _state(dsn: str, vehicle_id: int) -> Any:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT state FROM rule_state WHERE vehicle_id = %s", (vehicle_id,)
        ).fetchone()
    return None if row is None else row[0]


def test_an_older_snapshot_never_replaces_a_state_taken_later(clean_db: str) -> None:
    vid = next(iter(_fleet(clean_db).trips.values())).vehicle_id
    with psycopg.connect(clean_db, autocommit=True) as conn:
        save(conn, [SavedState(vid, None, {"taken": "later"}, 10.0, 2000.0)])
        save(conn, [SavedState(vid, None, {"taken": "earlier"}, 5.0, 1000.0)])
        assert _state(clean_db, vid) == {"taken": "later"}
        save(conn, [SavedState(vid, None, {"taken": "latest"}, 12.0, 3000.0)])
    assert _state(clean_db, vid) == {"taken": "latest"}


def test_the_saver_merges_waiting_snapshots_and_retries_when_the_table_is_back(
    clean_db: str,
) -> None:
    a, b = (t.vehicle_id for t in _fleet(clean_db).trips.values())
    counters: Counter[str] = Counter()
    saver = StateSaver(lambda: psycopg.connect(clean_db, autocommit=True), counters)
    with psycopg.connect(clean_db, autocommit=True) as admin:
        admin.execute("ALTER TABLE rule_state RENAME TO rule_state_away")
        try:
            saver.submit([SavedState(a, None, {"n": 1}, 1.0, 100.0)])
            deadline = time.monotonic() + 10
            while counters["errors"] == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert counters["errors"] >= 1  # the write failed and was kept
            saver.submit([SavedState(a, None, {"n": 2}, 2.0, 200.0)])
            saver.submit([SavedState(a, None, {"n": 0}, 0.5, 50.0)])  # older: dropped
            saver.submit([SavedState(b, None, {"n": 9}, 9.0, 200.0)])
        finally:
            admin.execute("ALTER TABLE rule_state_away RENAME TO rule_state")
    assert saver.flush(20.0)
    saver.close()
    assert _state(clean_db, a) == {"n": 2}
    assert _state(clean_db, b) == {"n": 9}


def test_a_refresh_keeps_unchanged_plans_and_zones_and_rebuilds_changed_ones(
    clean_db: str,
) -> None:
    fleet = _fleet(clean_db)
    first, second = fleet.trips.values()
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO zones (name, kind, geometry) VALUES ('yard', 'area',"
            ' \'{"type": "Polygon", "coordinates": [[[106.8, -6.2], [106.81, -6.2],'
            " [106.81, -6.19], [106.8, -6.2]]]}'::jsonb)"
        )

    async def go() -> None:
        async with Tower(clean_db, tick_s=3600, refresh_s=3600) as tower:
            # the refresh the worker runs every refresh_s, on its thread, called directly
            plans = {v: r.info.trip for v, r in tower._rules.items()}
            index = tower._zones
            assert index is not None
            with psycopg.connect(clean_db, autocommit=True) as conn:
                conn.execute(
                    "UPDATE stops SET planned_departure = planned_departure + interval '1 minute'"
                    " WHERE trip_id = %s AND seq = 1",
                    (second.trip_id,),
                )
            await asyncio.to_thread(tower._refresh)
            assert tower._rules[first.vehicle_id].info.trip is plans[first.vehicle_id]
            assert tower._rules[second.vehicle_id].info.trip is not plans[second.vehicle_id]
            assert tower._zones is index  # no zone changed
            with psycopg.connect(clean_db, autocommit=True) as conn:
                conn.execute("UPDATE zones SET speed_limit_kmh = 30 WHERE name = 'yard'")
            await asyncio.to_thread(tower._refresh)
            assert tower._zones is not index
            assert tower._zones is not None
            assert tower._zones.zone(str(_zone_id(clean_db))).speed_limit_kmh == 30

    asyncio.run(go())


def _zone_id(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT id FROM zones WHERE name = 'yard'").fetchone()
    assert row is not None
    return int(row[0])
