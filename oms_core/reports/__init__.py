"""Delivery reports: KPIs per day, depot, driver or customer, trip history and stop lists.

SQL first: the per-order, per-trip and per-alert views of migration 0006 define every
KPI once (README "Reports and KPIs"); this package groups them and writes the result as
a terminal table, CSV, an Excel workbook or JSON.

    report = kpi_report(conn, date(2026, 12, 1), date(2026, 12, 7), by="driver")
    print(to_text(report))
"""

from oms_core.reports.build import (
    BY,
    MAX_DAYS,
    SECTIONS,
    Progress,
    Report,
    ReportError,
    Table,
    kpi_report,
    stop_list,
    trip_history,
)
from oms_core.reports.definitions import KPIS, STAGES, Kpi, kpi_table
from oms_core.reports.export import FORMATS, to_csv, to_json, to_text, write_xlsx

__all__ = [
    "BY",
    "FORMATS",
    "KPIS",
    "MAX_DAYS",
    "SECTIONS",
    "STAGES",
    "Kpi",
    "Progress",
    "Report",
    "ReportError",
    "Table",
    "kpi_report",
    "kpi_table",
    "stop_list",
    "to_csv",
    "to_json",
    "to_text",
    "trip_history",
    "write_xlsx",
]
