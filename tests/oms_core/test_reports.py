"""Reports on a simulated day (``demo_day``): every KPI present and equal to a direct count
of the tables it comes from, every grouping adding up, CSV and Excel read back equal."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from openpyxl import load_workbook

from oms_core.reports import (
    BY,
    Report,
    ReportError,
    kpi_report,
    stop_list,
    to_csv,
    to_json,
    to_text,
    trip_history,
    write_xlsx,
)
from tests.demo_day import DAY

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def conn(demo_day: str) -> Iterator[Conn]:
    with psycopg.connect(demo_day, autocommit=True) as c:
        yield c


@pytest.fixture(scope="module")
def report(conn: Conn) -> Report:
    return kpi_report(conn, DAY, DAY)


def _one(conn: Conn, query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


def test_every_kpi_is_present_and_equals_a_direct_count(conn: Conn, report: Report) -> None:
    day, total = report.table("kpis").records()
    assert day["day"] == DAY and total["name"] == "all"
    assert day == total | {"day": DAY, "name": DAY.isoformat()}
    n, perfect, on_time, in_full, otif, damage_free, documents = _one(
        conn,
        "SELECT count(*), count(*) FILTER (WHERE perfect), count(*) FILTER (WHERE on_time),"
        " count(*) FILTER (WHERE in_full), count(*) FILTER (WHERE on_time AND in_full),"
        " count(*) FILTER (WHERE damage_free), count(*) FILTER (WHERE documents_accurate)"
        " FROM perfect_deliveries",
    )
    assert (n, perfect) == (90, 88)  # the demo's day: 88 of 90 perfect
    assert (total["deliveries"], total["perfect"], total["perfect_rate"]) == (n, 88, 88 / 90)
    assert (total["on_time"], total["on_time_rate"]) == (on_time, on_time / n)
    assert (total["in_full"], total["in_full_rate"]) == (in_full, in_full / n)
    assert (total["otif"], total["otif_rate"]) == (otif, otif / n)
    assert total["damage_free_rate"] == damage_free / n
    assert total["documents_accurate_rate"] == documents / n
    arrivals = dict(
        conn.execute(
            "SELECT s.arrival_method, count(*) FROM epods e JOIN stops s ON s.id = e.stop_id"
            " GROUP BY 1"
        ).fetchall()
    )
    assert total["arrivals_geofence"] == arrivals.get("geofence", 0) > 0
    assert total["geofence_share"] + total["tap_share"] <= 1
    assert (total["complaints"], total["complaints_per_100"]) == (0, 0.0)  # the demo has none
    assert total["avg_lead_time_s"] > 0 and total["p90_lead_time_s"] >= total["avg_lead_time_s"]
    missing = [k for k, v in total.items() if v is None and k != "day"]
    assert missing == []


def test_failures_are_each_criterions_reason_codes(conn: Conn, report: Report) -> None:
    expected = conn.execute(
        "SELECT c, r, count(*) FROM perfect_deliveries, LATERAL (VALUES"
        " ('on_time', on_time_reason), ('in_full', in_full_reason),"
        " ('damage_free', damage_reason), ('documents_accurate', documents_reason)) f (c, r)"
        " WHERE r IS NOT NULL GROUP BY 1, 2"
    ).fetchall()
    got = [(f["criterion"], f["reason"], f["failures"]) for f in report.table("failures").records()]
    assert sorted(got) == sorted(expected) and len(got) >= 3


def test_stages_split_the_lead_time(report: Report) -> None:
    total = report.table("kpis").records()[-1]
    stages = report.table("stages").records()
    assert [s["stage"] for s in stages] == [
        "processing", "waiting_dispatch", "loading", "transit", "at_customer", "plan"
    ]  # fmt: skip
    timed = stages[:5]
    assert sum(s["avg_s"] for s in timed) == pytest.approx(total["avg_lead_time_s"])
    assert sum(s["share"] for s in timed) == pytest.approx(1.0)
    assert all(s["p90_s"] >= 0 for s in timed)
    assert all(s["avg_s"] > 0 for s in timed)  # the demo dates its orders' history on its day
    assert sum(s["late_attributed"] for s in stages) == total["late"]


def test_alerts_and_trips_match_their_tables(conn: Conn, report: Report) -> None:
    by_type = dict(conn.execute("SELECT type, count(*) FROM alerts GROUP BY 1").fetchall())
    got = {a["type"]: a["alerts"] for a in report.table("alerts").records()}
    assert got == by_type and sum(got.values()) > 0
    trips = report.table("trips").records()
    assert len(trips) == _one(conn, "SELECT count(*) FROM trips") == 5
    for t in trips:
        assert t["planned_distance_km"] > 0 and t["actual_distance_km"] > 0
        assert t["planned_duration_s"] > 0 and t["actual_duration_s"] > 0
        assert t["stops"] == t["arrivals_geofence"] + t["arrivals_tap"] + t["arrivals_dispatcher"]


@pytest.mark.parametrize("by", BY)
def test_every_grouping_adds_up_to_the_total(conn: Conn, by: str) -> None:
    kpis = kpi_report(conn, DAY, DAY, by=by).table("kpis").records()
    *groups, total = kpis
    assert total["name"] == "all" and total["deliveries"] == 90
    assert sum(g["deliveries"] for g in groups) == 90
    assert sum(g["perfect"] for g in groups) == 88
    assert all(g["name"] for g in groups)


def test_the_position_summary_holds_the_day(conn: Conn) -> None:
    fixes = _one(conn, "SELECT count(*) FROM positions WHERE valid")
    summary = _one(
        conn, "SELECT sum(fixes), sum(distance_km), sum(moving_s) FROM vehicle_position_5m"
    )
    assert summary[0] == fixes > 5_000  # five vans' day, a fix every 20 s of fleet time
    assert summary[1] > 0 and summary[2] > 0


def test_trip_history_and_stop_lists(conn: Conn) -> None:
    trips = trip_history(conn, DAY, DAY).table("trips")
    stops = stop_list(conn, DAY, DAY).table("stops")
    assert len(stops.rows) == _one(conn, "SELECT count(*) FROM stops")
    first = trips.records()[0]["trip_id"]
    one_trip = stop_list(conn, DAY, DAY, trip_id=first).table("stops").records()
    assert {s["trip_id"] for s in one_trip} == {first}
    assert [s["seq"] for s in one_trip] == list(range(1, len(one_trip) + 1))
    assert sum(s["orders"] for s in stop_list(conn, DAY, DAY).table("stops").records()) == 90


def _parsed(text: str, like: Any) -> Any:
    """A CSV cell read back as the type of the value it was written from."""
    if like is None:
        return None if text == "" else text
    if isinstance(like, datetime):
        return datetime.fromisoformat(text)
    if isinstance(like, date):
        return date.fromisoformat(text)
    if isinstance(like, bool):
        return {"True": True, "False": False}[text]
    return type(like)(text)


def test_csv_and_xlsx_read_back_equal(report: Report, tmp_path: Path) -> None:
    for table in report.tables:
        back = list(csv.reader(io.StringIO(to_csv(table), newline="")))
        assert tuple(back[0]) == table.columns
        assert len(back) == len(table.rows) + 1
        for row, line in zip(table.rows, back[1:], strict=True):
            for value, text in zip(row, line, strict=True):
                assert _parsed(text, value) == value
    path = tmp_path / "day.xlsx"
    write_xlsx(report, path)
    wb = load_workbook(path, read_only=True)
    assert wb.sheetnames == [t.name for t in report.tables] + ["about"]
    kpis = report.table("kpis")
    sheet = [tuple(r) for r in wb["kpis"].iter_rows(values_only=True)]
    assert sheet[0] == kpis.columns
    total = dict(zip(kpis.columns, sheet[-1], strict=True))
    assert (total["name"], total["deliveries"], total["perfect_rate"]) == ("all", 90, 88 / 90)
    trips = [tuple(r) for r in wb["trips"].iter_rows(values_only=True)]
    assert len(trips) == 6 and trips[1][0] == report.table("trips").rows[0][0]
    wb.close()


def test_json_and_text_carry_every_section(report: Report) -> None:
    doc = to_json(report)
    assert doc["from"] == doc["to"] == DAY.isoformat() and doc["by"] == "day"
    assert {"kpis", "failures", "stages", "alerts", "trips"} <= set(doc)
    assert "Perfect-delivery rate" in doc["definitions"]
    assert doc["kpis"][-1]["perfect"] == 88
    text = to_text(report)
    assert all(f"== {t.name} " in text for t in report.tables)


def test_a_bad_request_says_what_to_fix(conn: Conn) -> None:
    with pytest.raises(ReportError, match="swap from and to"):
        kpi_report(conn, DAY, DAY - timedelta(days=1))
    with pytest.raises(ReportError, match=r"no depot 999 \(depots: 1\)"):
        trip_history(conn, DAY, DAY, depot_id=999)
    with pytest.raises(ReportError, match="at most 366 days"):
        stop_list(conn, DAY.replace(year=2020), DAY)
    with pytest.raises(ReportError, match="group by one of day, depot, driver, customer"):
        kpi_report(conn, DAY, DAY, by="week")
