"""Every panel's and variable's SQL, expanded as Grafana would, on a real simulated day.

The day is ``demo_day`` (``menara demo``: positions, trips, ePODs, alerts). Each query must
run, give the columns its panel type reads (Geomap: the layer's latitude/longitude fields;
time series: a timestamptz ``time`` column), and, unless the day has nothing of its kind
(no rejects, no telemetry issues, no late orders), rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dashboards.provisioning import dashboards
from tests.dashboards.grafana_sql import TimeRange, Variable, expand
from tests.dashboards.panels import (
    Result,
    all_selected,
    check_shape,
    panels,
    run_dashboard,
    run_sql,
    time_range,
    variables,
)

pytestmark = [pytest.mark.db, pytest.mark.mqtt]

# what a simulated day legitimately has none of
MAY_BE_EMPTY = {
    ("Delivery performance", "Late orders by stage that caused it"),
    ("Fleet health", "Telemetry issues"),
    ("Fleet health", "Rejects"),
    ("Fleet health", "Rejects by reason"),
}
DOCS = dashboards()


@pytest.fixture(scope="module")
def day(demo_day: str) -> Iterator[psycopg.Connection[Any]]:
    """The day, with the position summary brought up to date inside a transaction that is
    rolled back (the shared day stays untouched)."""
    with psycopg.connect(demo_day) as conn, conn.transaction(force_rollback=True):
        matview = "SELECT 1 FROM pg_matviews WHERE matviewname = 'vehicle_position_5m'"
        if conn.execute(matview).fetchone():
            conn.execute("REFRESH MATERIALIZED VIEW vehicle_position_5m")
        yield conn


@pytest.fixture(scope="module")
def tr(day: psycopg.Connection[Any]) -> TimeRange:
    return time_range(day, timescaledb=True)


def _by_panel(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in panels(doc)}


def _check(doc: dict[str, Any], results: list[Result], *, need_rows: bool) -> None:
    by_title = _by_panel(doc)
    problems = [pr for r in results for pr in check_shape(r, by_title[r.panel])]
    assert problems == []
    if need_rows:
        empty = [
            (r.panel, r.ref_id)
            for r in results
            if not r.rows and (r.dashboard, r.panel) not in MAY_BE_EMPTY
        ]
        assert empty == []


def _rows(results: list[Result], panel: str, ref_id: str = "A") -> list[dict[str, Any]]:
    (r,) = [r for r in results if r.panel == panel and r.ref_id == ref_id]
    return [dict(zip(r.columns, row, strict=True)) for row in r.rows]


@pytest.mark.parametrize("doc", DOCS, ids=[str(d["uid"]) for d in DOCS])
def test_variables_list_depots_and_vehicles(
    day: psycopg.Connection[Any], tr: TimeRange, doc: dict[str, Any]
) -> None:
    chosen = all_selected(doc)
    assert [v["name"] for v in variables(doc)] == ["depot", "vehicle"]
    for var in variables(doc):
        cols, rows = run_sql(day, expand(var["query"], chosen, tr))
        assert list(cols) == ["__value", "__text"]
        assert rows, f"variable {var['name']} has no options"


@pytest.mark.parametrize("doc", DOCS, ids=[str(d["uid"]) for d in DOCS])
def test_every_panel_runs_with_all_selected(
    day: psycopg.Connection[Any], tr: TimeRange, doc: dict[str, Any]
) -> None:
    results = run_dashboard(day, doc, all_selected(doc), tr)
    assert len(results) == sum(len(p["targets"]) for p in panels(doc))
    _check(doc, results, need_rows=True)


def test_live_map_shows_every_reporting_vehicle(
    day: psycopg.Connection[Any], tr: TimeRange
) -> None:
    (doc,) = [d for d in DOCS if d["uid"] == "menara-live-map"]
    results = run_dashboard(day, doc, all_selected(doc), tr)
    row = day.execute(
        "SELECT count(DISTINCT v.id) FROM vehicles v"
        " WHERE EXISTS (SELECT 1 FROM positions p WHERE p.device_id = v.tracker_device_id)"
    ).fetchone()
    assert row is not None
    vehicles = _rows(results, "Fleet", "A")
    assert len(vehicles) == row[0] > 0
    assert {v["trip_state"] for v in vehicles} <= {
        "planned",
        "dispatched",
        "in_progress",
        "completed",
        "cancelled",
        "no trip",
    }
    trips = day.execute("SELECT count(*) FROM trips WHERE route_geometry <> '[]'").fetchone()
    assert trips is not None
    assert len({r["trip_id"] for r in _rows(results, "Fleet", "B")}) == trips[0]
    stops = _rows(results, "Fleet", "C")
    states = {"failed", "done", "at stop", "unconfirmed", "at risk", "pending"}
    assert {s["stop_state"] for s in stops} <= states


def test_the_live_map_shows_a_visit_the_tracker_missed(
    day: psycopg.Connection[Any], tr: TimeRange
) -> None:
    (doc,) = [d for d in DOCS if d["uid"] == "menara-live-map"]
    with day.transaction(force_rollback=True):
        row = day.execute(
            "UPDATE stops SET actual_arrival = NULL, actual_departure = NULL,"
            " arrival_method = NULL, geofence_arrival = NULL, driver_arrival = NULL,"
            " unconfirmed_from = now() - interval '20 minutes',"
            " unconfirmed_to = now() - interval '5 minutes'"
            " WHERE id = (SELECT min(s.id) FROM stops s WHERE NOT EXISTS (SELECT 1 FROM epods e"
            "  WHERE e.stop_id = s.id AND e.outcome = 'failed')) RETURNING id"
        ).fetchone()
        assert row is not None
        stops = _rows(run_dashboard(day, doc, all_selected(doc), tr), "Fleet", "C")
    assert [s["stop_state"] for s in stops if s["stop_id"] == row[0]] == ["unconfirmed"]


@pytest.mark.parametrize("doc", DOCS, ids=[str(d["uid"]) for d in DOCS])
def test_panels_follow_the_chosen_depot_and_vehicle(
    day: psycopg.Connection[Any], tr: TimeRange, doc: dict[str, Any]
) -> None:
    row = day.execute(
        "SELECT v.id, v.depot_id, v.plate FROM vehicles v JOIN positions p"
        " ON p.device_id = v.tracker_device_id GROUP BY v.id ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    vehicle_id, depot_id, plate = row
    chosen = {
        "depot": Variable(str(depot_id), all_value="NULL"),
        "vehicle": Variable(str(vehicle_id), all_value="NULL"),
    }
    results = run_dashboard(day, doc, chosen, tr)
    _check(doc, results, need_rows=False)
    if doc["uid"] == "menara-live-map":
        assert [v["plate"] for v in _rows(results, "Fleet", "A")] == [plate]
        assert [v["plate"] for v in _rows(results, "Last fix per vehicle")] == [plate]
        nowhere = {**chosen, "depot": Variable("-1", all_value="NULL")}
        results = run_dashboard(day, doc, nowhere, tr)
        assert _rows(results, "Fleet", "A") == []
    if doc["uid"] == "menara-fleet-health":
        per_vehicle = _rows(results, "Distance per vehicle")
        assert [r["vehicle"] for r in per_vehicle] == [plate]
        assert per_vehicle[0]["distance_km"] > 0
