"""Write a report as JSON, CSV (one section), an Excel workbook (a sheet per section) or an
aligned text table for a terminal."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from oms_core.reports.build import Report, Table
from oms_core.reports.definitions import KPIS

__all__ = ["FORMATS", "to_csv", "to_json", "to_text", "write_xlsx"]

FORMATS = ("table", "csv", "xlsx", "json")


def _plain(value: Any) -> Any:
    """JSON-ready: times as RFC 3339, decimals as strings, NaN as null."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(report: Report) -> dict[str, Any]:
    """The report as one JSON object: what was asked, then each section's rows."""
    out: dict[str, Any] = {
        "report": report.kind,
        "from": report.start.isoformat(),
        "to": report.end.isoformat(),
        "depot": report.depot_id,
    }
    if report.by is not None:
        out["by"] = report.by
        out["definitions"] = {k.name: k.definition for k in KPIS}
    for table in report.tables:
        out[table.name] = [{k: _plain(v) for k, v in r.items()} for r in table.records()]
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    return str(value)


def to_csv(table: Table) -> str:
    """One section as CSV: a header line, then a line per row (empty cell: no value)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(table.columns)
    w.writerows([_cell(v) for v in row] for row in table.rows)
    return buf.getvalue()


def _excel(value: Any) -> Any:
    """Excel has no time zones: aware times are written as UTC (the sheets say so)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_xlsx(report: Report, path: Path) -> None:
    """A workbook with a sheet per section (times in UTC) and one of definitions."""
    wb = Workbook()
    first = wb.active
    assert first is not None  # a new workbook has its one sheet
    wb.remove(first)
    for table in report.tables:
        ws = wb.create_sheet(table.name[:31])
        ws.append(list(table.columns))
        for row in table.rows:
            ws.append([_excel(v) for v in row])
        ws.freeze_panes = "A2"
    about = wb.create_sheet("about")
    about.append(["report", report.kind])
    about.append(["from", report.start])
    about.append(["to", report.end])
    about.append(["depot", "all" if report.depot_id is None else report.depot_id])
    about.append(["by", report.by or ""])
    about.append(["times", "UTC"])
    if report.by is not None:
        about.append([])
        about.append(["KPI", "columns", "definition"])
        for k in KPIS:
            about.append([k.name, k.columns.replace("`", ""), k.definition])
    wb.save(path)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def to_text(report: Report) -> str:
    """Aligned columns, a titled block per section (times in UTC)."""
    where = "all depots" if report.depot_id is None else f"depot {report.depot_id}"
    by = f", by {report.by}" if report.by else ""
    lines = [f"{report.kind} {report.start}..{report.end}, {where}{by} (times UTC)"]
    for table in report.tables:
        cells = [list(table.columns)] + [[_shown(v) for v in row] for row in table.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(table.columns))]
        lines += ["", f"== {table.name} ({len(table.rows)} rows)"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines) + "\n"
