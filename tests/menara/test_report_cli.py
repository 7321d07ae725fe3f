"""``menara report`` on the simulated day: every format, trip and stop lists, progress on
long ranges, and refusals with what to fix."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook

from menara.cli import main
from tests.demo_day import DAY


@pytest.fixture
def on_day(demo_day: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MENARA_DB_DSN", demo_day)
    return DAY.isoformat()


def test_kpis_as_csv_json_and_table(on_day: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--from", on_day, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out, newline="")))
    assert [(r["day"], r["name"], r["deliveries"], r["perfect"]) for r in rows] == [
        (on_day, on_day, "90", "88"),
        ("", "all", "90", "88"),
    ]
    assert main(["report", "--from", on_day, "--by", "driver", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["by"] == "driver" and sum(k["deliveries"] for k in doc["kpis"][:-1]) == 90
    assert main(["report", "--from", on_day, "--to", on_day, "--depot", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"kpis {on_day}..{on_day}, depot 1, by day")
    assert "== failures" in text and "== stages" in text and "== trips (5 rows)" in text


def test_sections_trips_and_stops_as_csv(
    on_day: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["report", "--from", on_day, "--format", "csv", "--section", "failures"]) == 0
    failures = list(csv.DictReader(io.StringIO(capsys.readouterr().out, newline="")))
    assert {f["criterion"] for f in failures} >= {"in_full", "documents_accurate"}
    out = tmp_path / "trips.csv"
    assert main(["report", "trips", "--from", on_day, "--format", "csv", "--output", str(out)]) == 0
    trips = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert len(trips) == 5 and all(float(t["actual_distance_km"]) > 0 for t in trips)
    trip = trips[0]["trip_id"]
    assert main(["report", "stops", "--from", on_day, "--trip", trip, "--format", "csv"]) == 0
    stops = list(csv.DictReader(io.StringIO(capsys.readouterr().out, newline="")))
    assert stops and {s["trip_id"] for s in stops} == {trip}


def test_xlsx_has_a_sheet_per_section(
    on_day: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "day.xlsx"
    assert main(["report", "--from", on_day, "--format", "xlsx", "--output", str(path)]) == 0
    assert f"wrote {path}" in capsys.readouterr().err
    wb = load_workbook(path, read_only=True)
    assert wb.sheetnames == ["kpis", "failures", "stages", "alerts", "trips", "about"]
    last = list(wb["kpis"].iter_rows(values_only=True))[-1]
    assert last[1:4] == ("all", 90, 88)
    wb.close()


def test_long_ranges_show_progress(on_day: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--from", "2026-11-22", "--to", on_day, "--format", "json"]) == 0
    got = capsys.readouterr()
    assert json.loads(got.out)["kpis"][-1]["deliveries"] == 90
    assert got.err.splitlines() == [
        "report: kpis done (1/5)",
        "report: failures done (2/5)",
        "report: stages done (3/5)",
        "report: alerts done (4/5)",
        "report: trips done (5/5)",
    ]
    assert main(["report", "--from", on_day, "--format", "json"]) == 0
    assert capsys.readouterr().err == ""  # a short range shows none


def test_refusals_say_what_to_fix(on_day: str, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        ("--to", "2026-11-01"): "swap from and to",
        ("--depot", "999"): "no depot 999 (depots: 1): pick one of them",
        ("--format", "xlsx"): "give --output FILE.xlsx",
        ("--format", "csv", "--section", "nope"): "pick one of kpis, failures, stages",
    }
    for extra, hint in cases.items():
        assert main(["report", "--from", on_day, *extra]) == 2, extra
        assert hint in capsys.readouterr().err
