"""What every Menara dashboard shares: the data source, the depot/vehicle variables, filters.

The variables are single-select with an All option whose value is the SQL literal ``NULL``:
Grafana quotes a chosen id (``'3'``) and inserts a custom All value raw, so one fragment,
``($depot IS NULL OR depot_id = $depot)``, filters for a choice and passes everything for All,
including rows with no depot, and still works on a fresh database with no depots at all.
"""

from __future__ import annotations

from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as model

from dashboards.query import DATASOURCE

ALL = model.VariableOption(selected=True, text="All", value="$__all")


class Placeable(Protocol):
    """The part of every panel builder that :func:`place` uses."""

    def datasource(self, datasource: model.DataSourceRef) -> Self: ...
    def span(self, w: int) -> Self: ...
    def height(self, h: int) -> Self: ...


P = TypeVar("P", bound=Placeable)


class Overridable(Protocol):
    """The part of the table and time series builders that :func:`units` uses."""

    def override_by_name(self, name: str, properties: list[model.DynamicConfigValue]) -> Self: ...


Q = TypeVar("Q", bound=Overridable)


def depot_filter(column: str) -> str:
    """Rows of the chosen depot (every row for All)."""
    return f"($depot IS NULL OR {column} = $depot)"


def vehicle_filter(column: str) -> str:
    """Rows of the chosen vehicle (every row for All)."""
    return f"($vehicle IS NULL OR {column} = $vehicle)"


def device_filter(column: str) -> str:
    """Rows whose tracker belongs to the chosen depot and vehicle; All also keeps devices
    that no vehicle owns (they matter for ingest health)."""
    return (
        f"(($depot IS NULL AND $vehicle IS NULL) OR {column} IN ("
        f"SELECT fv.tracker_device_id FROM vehicles fv WHERE {depot_filter('fv.depot_id')}"
        f" AND {vehicle_filter('fv.id')}))"
    )


def _variable(name: str, label: str, sql: str) -> dash.QueryVariable:
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(sql)
        .include_all(True)
        .all_value("NULL")
        .multi(False)
        .current(ALL)
        .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(model.VariableSort.DISABLED)
    )


DEPOT_SQL = "SELECT id AS __value, name AS __text FROM depots ORDER BY name"
VEHICLE_SQL = (
    "SELECT id AS __value, plate AS __text FROM vehicles"
    f" WHERE {depot_filter('depot_id')} ORDER BY plate"
)


def new_dashboard(uid: str, title: str, description: str) -> dash.Dashboard:
    """A dashboard in the Menara style with the depot and vehicle variables."""
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["menara"])
        .editable()
        .timezone("browser")
        .time("now-24h", "now")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(_variable("depot", "Depot", DEPOT_SQL))
        .with_variable(_variable("vehicle", "Vehicle", VEHICLE_SQL))
    )


def place(panel: P, w: int, h: int) -> P:
    """Size a panel on the 24-column grid and point it at the Menara data source."""
    return panel.datasource(DATASOURCE).span(w).height(h)


def units(panel: Q, unit: str, *fields: str) -> Q:
    """Show ``fields`` in Grafana's ``unit`` (``s``, ``percentunit`` ...)."""
    for f in fields:
        panel = panel.override_by_name(f, [model.DynamicConfigValue(id_val="unit", value=unit)])
    return panel


def bars(w: int, h: int) -> timeseries.Panel:
    """A time series drawn as stacked bars: counts per interval."""
    return (
        place(timeseries.Panel(), w, h)
        .draw_style(cm.GraphDrawStyle.BARS)
        .stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    )


def legend() -> cb.VizLegendOptions:
    """A visible legend below the chart (bar charts hide theirs by default)."""
    return (
        cb.VizLegendOptions()
        .show_legend(True)
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.BOTTOM)
    )


def finish(board: cogbuilder.Builder[model.Dashboard]) -> model.Dashboard:
    """Build, number the panels 1..n so exports are stable and diffable, and give panels
    without options an empty object (the plugin's defaults) instead of null."""
    built = board.build()
    for i, panel in enumerate(built.panels or [], start=1):
        panel.id_val = i
        if isinstance(panel, model.Panel) and panel.options is None:
            panel.options = {}
    return built
