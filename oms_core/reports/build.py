"""Build reports: the KPI report (sections of one snapshot of the range's deliveries), the
trip history and the stop list, as plain tables any format can be written from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from oms_core.errors import OmsError
from oms_core.reports import sql

__all__ = [
    "BY",
    "MAX_DAYS",
    "SECTIONS",
    "Progress",
    "Report",
    "ReportError",
    "Table",
    "kpi_report",
    "stop_list",
    "trip_history",
]

Conn = psycopg.Connection[Any]
# Called after each section of a KPI report: (section, sections done, sections in all).
Progress = Callable[[str, int, int], None]
BY = tuple(sql.DIMENSIONS)
MAX_DAYS = 366
SECTIONS = ("kpis", "failures", "stages", "alerts", "trips")  # of the KPI report, in order


class ReportError(OmsError):
    """A report cannot be made as asked (bad range, unknown depot); the message says why."""

    code = "invalid_value"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Table:
    """One section: a name, its column names and its rows (values as the database gave)."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def records(self) -> list[dict[str, Any]]:
        """The rows as {column: value}."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass(frozen=True, slots=True)
class Report:
    """What was asked (range, depot, grouping) and the sections that answer it."""

    kind: str  # kpis | trips | stops
    start: date
    end: date
    depot_id: int | None
    by: str | None
    tables: tuple[Table, ...]

    def table(self, name: str | None = None) -> Table:
        """The section called ``name`` (None: the first); KeyError when there is none."""
        if name is None:
            return self.tables[0]
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)


def _check(conn: Conn, start: date, end: date, depot_id: int | None) -> None:
    if end < start:
        raise ReportError(
            "to", f"the range ends ({end}) before it starts ({start}): swap from and to"
        )
    if (end - start).days + 1 > MAX_DAYS:
        raise ReportError(
            "to", f"ask for at most {MAX_DAYS} days at a time: split {start}..{end} into parts"
        )
    found = (
        depot_id is None
        or conn.execute("SELECT 1 FROM depots WHERE id = %s", (depot_id,)).fetchone()
    )
    if not found:
        known = [r[0] for r in conn.execute("SELECT id FROM depots ORDER BY id LIMIT 20")]
        shown = ", ".join(map(str, known)) or "none yet"
        raise ReportError("depot", f"no depot {depot_id} (depots: {shown}): pick one of them")


def _table(conn: Conn, name: str, query: str, params: dict[str, Any]) -> Table:
    cur = conn.execute(query.encode(), params)
    columns = tuple(d.name for d in cur.description or ())
    return Table(name, columns, tuple(tuple(r) for r in cur.fetchall()))


def kpi_report(
    conn: Conn,
    start: date,
    end: date,
    *,
    depot_id: int | None = None,
    by: str = "day",
    progress: Progress | None = None,
) -> Report:
    """Every KPI for the days ``start``..``end`` (inclusive), grouped ``by`` day, depot,
    driver or customer: sections kpis, failures, stages, alerts, trips. ``progress`` is
    called after each section."""
    if by not in sql.DIMENSIONS:
        raise ReportError("by", f"group by one of {', '.join(BY)}, not {by!r}")
    _check(conn, start, end, depot_id)
    dim = sql.DIMENSIONS[by]
    fmt = {"k": dim.key, "nm": dim.name, "join": dim.join, "orders": sql.ORDERS}
    customers = sql.CUSTOMERS if by == "customer" else sql.NO_CUSTOMERS
    queries = (sql.KPIS, sql.FAILURES, sql.STAGE_ROWS, sql.ALERTS, sql.TRIPS)
    sections = {
        name: query.format(customers=customers, **fmt)
        for name, query in zip(SECTIONS, queries, strict=True)
    }
    params: dict[str, Any] = {"start": start, "end": end, "depot": depot_id}
    tables = []
    with conn.transaction():
        # one snapshot for every section; read-only, so a hot standby can answer it
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for name, query in sections.items():
            tables.append(_table(conn, name, query, params))
            if progress is not None:
                progress(name, len(tables), len(sections))
    return Report("kpis", start, end, depot_id, by, tuple(tables))


def trip_history(conn: Conn, start: date, end: date, *, depot_id: int | None = None) -> Report:
    """Every trip of the days ``start``..``end``: plan against what happened."""
    _check(conn, start, end, depot_id)
    params = {"start": start, "end": end, "depot": depot_id}
    return Report("trips", start, end, depot_id, None, (_table(conn, "trips", sql.TRIPS, params),))


def stop_list(
    conn: Conn,
    start: date,
    end: date,
    *,
    depot_id: int | None = None,
    trip_id: int | None = None,
) -> Report:
    """Every stop of the days' trips (or of one trip), in trip and sequence order."""
    _check(conn, start, end, depot_id)
    params = {"start": start, "end": end, "depot": depot_id, "trip": trip_id}
    return Report("stops", start, end, depot_id, None, (_table(conn, "stops", sql.STOPS, params),))
