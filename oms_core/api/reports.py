"""Reports for the control room and supervisors: every KPI for a range of days, the trip
history and the stop lists, as JSON or, with ``Accept: text/csv``, as CSV (one section:
``section=``, default the first)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from aiohttp import web

from oms_core import reports
from oms_core.api.auth import Role
from oms_core.api.context import run
from oms_core.api.errors import ApiError
from oms_core.api.schema_parts import id_schema
from oms_core.api.spec import Operation, Param, parse_params

__all__ = ["OPERATIONS"]

_READ = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_ID = id_schema()
_DATE = {"type": "string", "format": "date"}
_RANGE = (
    Param("from", "query", _DATE, "first day, YYYY-MM-DD (required)"),
    Param("to", "query", _DATE, "last day, inclusive (default: from)"),
    Param("depot", "query", _ID, "only this depot (default: all)"),
)
_CSV = (
    "JSON by default; with `Accept: text/csv` one section as CSV (UTF-8, a header line,"
    " empty cell = no value)."
)


def _range(q: dict[str, Any]) -> tuple[date, date]:
    start = q.get("from")
    if start is None:
        raise ApiError(
            422,
            "missing_field",
            "give the first day of the report: from=YYYY-MM-DD",
            [{"code": "missing_field", "field": "from", "message": "required"}],
        )
    return start, q.get("to", start)


def _wants_csv(request: web.Request) -> bool:
    return "text/csv" in request.headers.get("Accept", "")


def _answer(request: web.Request, report: reports.Report, section: str | None) -> web.Response:
    if not _wants_csv(request):
        if section is not None:
            report = replace(report, tables=(report.table(section),))
        return web.json_response(reports.to_json(report))
    table = report.table(section)
    name = f"{report.kind}-{table.name}-{report.start}-{report.end}.csv"
    return web.Response(
        text=reports.to_csv(table),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def get_kpis(request: web.Request) -> web.Response:
    """Every KPI of the range, grouped ``by`` day (default), depot, driver or customer."""
    q = parse_params(request, _OPS["getKpiReport"])
    start, end = _range(q)

    def make(conn: Any) -> reports.Report:
        return reports.kpi_report(conn, start, end, depot_id=q.get("depot"), by=q.get("by", "day"))

    return _answer(request, await run(request, make), q.get("section"))


async def get_trips(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["getTripReport"])
    start, end = _range(q)
    report = await run(
        request, lambda c: reports.trip_history(c, start, end, depot_id=q.get("depot"))
    )
    return _answer(request, report, None)


async def get_stops(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["getStopReport"])
    start, end = _range(q)

    def make(conn: Any) -> reports.Report:
        return reports.stop_list(
            conn, start, end, depot_id=q.get("depot"), trip_id=q.get("trip_id")
        )

    return _answer(request, await run(request, make), None)


_BAD = (
    f"a bad range (to before from, over {reports.MAX_DAYS} days), an unknown depot or parameter",
    "Error",
)
OPERATIONS = (
    Operation(
        "getKpiReport", "GET", "/reports/kpis", get_kpis,
        "Delivery KPIs for a range of days: rates, failures by reason, stage times,"
        " alerts, trips", _READ,
        {200: ("the report: kpis, failures, stages, alerts and trips sections", None),
         422: _BAD},
        params=(
            *_RANGE,
            Param("by", "query", {"enum": list(reports.BY)}, "group by (default day)"),
            Param(
                "section", "query", {"enum": list(reports.SECTIONS)},
                "only this section (CSV: default kpis)",
            ),
        ),
        description=_CSV + " Definitions: README, Reports and KPIs.",
    ),
    Operation(
        "getTripReport", "GET", "/reports/trips", get_trips,
        "Trip history: planned against actual distance, duration, departure, arrivals", _READ,
        {200: ("the trips of the range", None), 422: _BAD},
        params=_RANGE,
        description=_CSV,
    ),
    Operation(
        "getStopReport", "GET", "/reports/stops", get_stops,
        "Stop list: planned and actual times, arrival method, dwell, orders", _READ,
        {200: ("the stops of the range's trips", None), 422: _BAD},
        params=(*_RANGE, Param("trip_id", "query", _ID, "only this trip's stops")),
        description=_CSV,
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
