"""The report SQL on a real TimescaleDB (PGlite, started by ``.ci/timescale``): the position
summary is a continuous aggregate with a refresh policy that gives the same numbers as the
materialized view, and every report query runs unchanged."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

import psycopg
import pytest

from menara import db, position_summary
from oms_core.reports import kpi_report, stop_list, trip_history
from tests.oms_core.test_reports_views import T0, check_positions, fill_positions

TIMESCALE_DSN = os.environ.get("MENARA_TEST_TIMESCALE_DSN", "")


@pytest.mark.skipif(not TIMESCALE_DSN, reason="set MENARA_TEST_TIMESCALE_DSN (PGlite+TimescaleDB)")
def test_reports_on_timescaledb() -> None:
    assert db.upgrade(TIMESCALE_DSN, timescale="on").timescaledb
    device = f"TS{uuid.uuid4().hex[:8]}"  # the PGlite database is shared with other tests
    # one connection at a time, no prepared statements: PGlite serves one backend
    with psycopg.connect(TIMESCALE_DSN, autocommit=True, prepare_threshold=None) as conn:
        assert position_summary.is_continuous(conn)
        jobs = conn.execute(
            "SELECT proc_name FROM timescaledb_information.jobs"
            " WHERE hypertable_name = 'vehicle_position_5m'"
        ).fetchall()
        assert jobs == [("policy_refresh_continuous_aggregate",)]
        try:
            fill_positions(conn, device)
            position_summary.refresh(conn)
            row = conn.execute(
                "SELECT materialization_hypertable_schema || '.' || materialization_hypertable_name"
                " FROM timescaledb_information.continuous_aggregates"
                " WHERE view_name = 'vehicle_position_5m'"
            ).fetchone()
            assert row is not None
            stored = conn.execute(f"SELECT count(*) FROM {row[0]}").fetchone()
            assert stored is not None and stored[0] >= 4  # materialized, not only real-time
            check_positions(conn, device)
            day = T0.date()
            report = kpi_report(conn, day, day + timedelta(days=1), by="customer")
            assert [t.name for t in report.tables] == [
                "kpis", "failures", "stages", "alerts", "trips"
            ]  # fmt: skip
            assert report.table("kpis").records()[-1]["name"] == "all"
            assert trip_history(conn, day, day).table("trips").columns[0] == "trip_id"
            assert stop_list(conn, day, day).table("stops").columns[0] == "trip_id"
        finally:
            conn.execute(
                "DELETE FROM positions WHERE device_id IN (%s, %s)", (device, device + "o")
            )
