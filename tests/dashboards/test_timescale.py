"""The time_bucket panels on a real TimescaleDB (PGlite, see tests/timescale/README.md).

The provisioned data source has the TimescaleDB option on, so Grafana turns
``$__timeGroup`` into ``time_bucket``; here that SQL runs against the real extension, with
``vehicle_position_5m`` as a continuous aggregate. PGlite has one shared backend and no
COPY: one connection, rows loaded with INSERT ... SELECT FROM unnest.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from dashboards.provisioning import dashboards
from menara import db
from tests.dashboards.grafana_sql import TimeRange, Variable
from tests.dashboards.panels import check_shape, panels, run_dashboard

TIMESCALE_DSN = os.environ.get("MENARA_TEST_TIMESCALE_DSN", "")
pytestmark = pytest.mark.skipif(
    not TIMESCALE_DSN, reason="set MENARA_TEST_TIMESCALE_DSN (PGlite+TimescaleDB)"
)

START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
FIXES = 180  # 30 minutes at one fix every 10 s


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[psycopg.Connection[Any], str, str]]:
    """The migrated TimescaleDB with one depot, one van and its half hour of fixes, removed
    afterwards (other tests share the server). Yields (conn, depot id, vehicle id)."""
    assert db.upgrade(TIMESCALE_DSN, timescale="on").timescaledb
    tag = uuid.uuid4().hex[:8]
    device = f"TS{tag}"
    with psycopg.connect(TIMESCALE_DSN, autocommit=True, prepare_threshold=None) as conn:
        depot = conn.execute(
            "INSERT INTO depots (name, lat, lon) VALUES (%s, -6.2, 106.8) RETURNING id",
            (f"ts depot {tag}",),
        ).fetchone()
        assert depot is not None
        vehicle = conn.execute(
            "INSERT INTO vehicles (plate, capacity_kg, capacity_m3, tracker_device_id, depot_id)"
            " VALUES (%s, 1000, 10, %s, %s) RETURNING id",
            (f"TS {tag}", device, depot[0]),
        ).fetchone()
        assert vehicle is not None
        times = [START + timedelta(seconds=10 * i) for i in range(FIXES)]
        conn.execute(
            "INSERT INTO positions (device_id, fix_time, received_time, lat, lon, speed_kmh,"
            " valid, transport, protocol)"
            " SELECT %s, t, t + interval '1 second', -6.2 + i * 0.0001, 106.8, 36, true,"
            " 'mqtt', 'menara-json' FROM unnest(%s::timestamptz[], %s::int[]) AS u(t, i)",
            (device, times, list(range(FIXES))),
        )
        try:
            yield conn, str(depot[0]), str(vehicle[0])
        finally:
            conn.execute("DELETE FROM positions WHERE device_id = %s", (device,))
            conn.execute("DELETE FROM vehicles WHERE id = %s", (vehicle[0],))
            conn.execute("DELETE FROM depots WHERE id = %s", (depot[0],))


def test_time_bucket_panels_run_on_timescaledb(
    fleet: tuple[psycopg.Connection[Any], str, str],
) -> None:
    conn, depot, vehicle = fleet
    kind = conn.execute(
        "SELECT count(*) FROM timescaledb_information.continuous_aggregates"
        " WHERE view_name = 'vehicle_position_5m'"
    ).fetchone()
    assert kind == (1,), "vehicle_position_5m should be a continuous aggregate here"
    chosen = {"depot": Variable(depot, all_value="NULL"), "vehicle": Variable(vehicle)}
    tr = TimeRange(START - timedelta(minutes=5), START + timedelta(hours=1), timescaledb=True)
    fixes: dict[str, int] = {}  # panel -> sum of its last column (the count)
    docs: list[dict[str, Any]] = dashboards()
    for doc in docs:
        by_title = {p["title"]: p for p in panels(doc)}
        bucketed = {
            p["title"]
            for p in panels(doc)
            if any("$__timeGroup" in t["rawSql"] for t in p["targets"])
        }
        only = {**doc, "panels": [p for p in doc["panels"] if p["title"] in bucketed]}
        for r in run_dashboard(conn, only, chosen, tr):
            assert check_shape(r, by_title[r.panel]) == []
            fixes[r.panel] = sum(row[-1] or 0 for row in r.rows)
    assert {"Alerts raised", "KPIs over time", "Rejects"} <= set(fixes)
    # the van's 180 fixes, counted per minute from the raw rows and from the aggregate
    assert fixes["Fixes received per minute"] == FIXES
    assert fixes["Fixes per vehicle"] == FIXES
