"""``menara report [kpis|trips|stops] --from D [--to D] ...``: delivery KPIs, trip history
or stop lists for a range of days, as a terminal table, CSV, an Excel workbook or JSON.

Read-only: it never migrates the database (``menara db upgrade`` does). Ranges longer
than a week print their progress, a line per section, on stderr.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import TextIO

import psycopg

from menara import db
from menara.settings import Settings
from oms_core import reports

__all__ = ["PROGRESS_AFTER_DAYS", "run"]

PROGRESS_AFTER_DAYS = 7  # longer ranges show a line per section read


def _progress(err: TextIO, days: int) -> reports.Progress | None:
    if days <= PROGRESS_AFTER_DAYS:
        return None

    def show(section: str, done: int, total: int) -> None:
        print(f"report: {section} done ({done}/{total})", file=err, flush=True)

    return show


def _make(
    conn: psycopg.Connection[tuple[object, ...]],
    what: str,
    start: date,
    end: date,
    *,
    depot: int | None,
    by: str,
    trip: int | None,
    err: TextIO,
) -> reports.Report:
    if what == "trips":
        return reports.trip_history(conn, start, end, depot_id=depot)
    if what == "stops":
        return reports.stop_list(conn, start, end, depot_id=depot, trip_id=trip)
    show = _progress(err, (end - start).days + 1)
    return reports.kpi_report(conn, start, end, depot_id=depot, by=by, progress=show)


def run(
    what: str,
    start: date,
    end: date | None,
    cfg: Settings,
    *,
    depot: int | None = None,
    by: str = "day",
    fmt: str = "table",
    output: Path | None = None,
    section: str | None = None,
    trip: int | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Make the report and write it to ``output`` (default: ``out``, else stdout); the
    exit code (2 for a request to fix, 1 when the database cannot answer)."""
    out, err = out or sys.stdout, err or sys.stderr
    if fmt == "xlsx" and output is None:
        print("menara report: xlsx is a binary file: give --output FILE.xlsx", file=err)
        return 2
    try:
        with db.connect(cfg.db_dsn) as conn:
            report = _make(conn, what, start, end or start, depot=depot, by=by, trip=trip, err=err)
    except reports.ReportError as exc:
        print(f"menara report: {exc}", file=err)
        return 2
    except psycopg.errors.UndefinedTable as exc:
        print(
            f"menara report: the database has no report views ({exc.diag.message_primary}):"
            " run `menara db upgrade`",
            file=err,
        )
        return 1
    except (db.DatabaseError, psycopg.Error) as exc:
        print(f"menara report: {exc}", file=err)
        return 1
    if fmt == "xlsx":
        assert output is not None
        reports.write_xlsx(report, output)
        print(f"wrote {output} ({', '.join(t.name for t in report.tables)})", file=err)
        return 0
    if fmt == "csv":
        try:
            text = reports.to_csv(report.table(section))
        except KeyError:
            names = ", ".join(t.name for t in report.tables)
            print(f"menara report: no section {section!r}: pick one of {names}", file=err)
            return 2
    elif fmt == "json":
        text = json.dumps(reports.to_json(report), indent=2) + "\n"
    else:
        text = reports.to_text(report)
    if output is None:
        out.write(text)
    else:
        output.write_text(text, encoding="utf-8", newline="")
    return 0
