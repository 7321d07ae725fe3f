"""Run a dashboard's panels and variables the way Grafana would, on a real database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from tests.dashboards.grafana_sql import ALL, TimeRange, Variable, expand

TIMESTAMPTZ_OID = 1184
NUMERIC_OIDS = {20, 21, 23, 700, 701, 1700}


@dataclass(frozen=True)
class Result:
    dashboard: str
    panel: str
    panel_type: str
    ref_id: str
    fmt: str
    columns: dict[str, int]  # name -> type oid
    rows: list[tuple[Any, ...]]


def panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside rows."""
    for p in doc.get("panels", []):
        yield p
        yield from p.get("panels", [])


def variables(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc.get("templating", {}).get("list", []))


def all_selected(doc: dict[str, Any]) -> dict[str, Variable]:
    """Every variable on All, as a dashboard opens."""
    return {
        v["name"]: Variable(
            ALL, include_all=v.get("includeAll", False), all_value=v.get("allValue")
        )
        for v in variables(doc)
    }


def time_range(conn: psycopg.Connection[Any], *, timescaledb: bool) -> TimeRange:
    """The whole recorded day: from the first fix to the last thing that happened."""
    row = conn.execute(
        "SELECT least(min(fix_time), min(received_time)),"
        " greatest(max(fix_time), max(received_time), now()) FROM positions"
    ).fetchone()
    assert row is not None and row[0] is not None, "no positions in the database"
    return TimeRange(
        row[0] - timedelta(minutes=1), row[1] + timedelta(minutes=1), timescaledb=timescaledb
    )


def run_sql(conn: psycopg.Connection[Any], sql: str) -> tuple[dict[str, int], list[Any]]:
    """Column name -> type oid, and the rows (in a savepoint: a failure spoils nothing)."""
    with conn.transaction():
        cur = conn.execute(sql.encode())
        assert cur.description is not None
        cols = {d.name: d.type_code for d in cur.description}
        return cols, cur.fetchall()


def run_dashboard(
    conn: psycopg.Connection[Any], doc: dict[str, Any], chosen: dict[str, Variable], tr: TimeRange
) -> list[Result]:
    out = []
    for p in panels(doc):
        for t in p.get("targets", []):
            sql = expand(t["rawSql"], chosen, tr)
            try:
                cols, rows = run_sql(conn, sql)
            except psycopg.Error as exc:
                where = f"{doc['title']} / {p['title']} {t['refId']}"
                raise AssertionError(f"{where}: {exc}\n{sql}") from exc
            out.append(
                Result(doc["title"], p["title"], p["type"], t["refId"], t["format"], cols, rows)
            )
    return out


def check_shape(res: Result, panel: dict[str, Any]) -> list[str]:
    """What the panel type needs from its frame; a list of problems (empty: fine)."""
    where = f"{res.dashboard} / {res.panel} {res.ref_id}"
    problems = []
    if res.panel_type == "timeseries":
        if res.fmt != "time_series":
            problems.append(f"{where}: time series panel with format {res.fmt}")
        if res.columns.get("time") != TIMESTAMPTZ_OID:
            problems.append(f"{where}: no timestamptz column named time ({res.columns})")
        if not any(oid in NUMERIC_OIDS for oid in res.columns.values()):
            problems.append(f"{where}: no numeric column")
    if res.panel_type == "geomap":
        for layer in panel["options"]["layers"]:
            if layer.get("filterData", {}).get("options") != res.ref_id:
                continue
            loc = layer["location"]
            for field in (loc["latitude"], loc["longitude"]):
                if res.columns.get(field) not in NUMERIC_OIDS:
                    problems.append(f"{where}: layer {layer['name']} needs numeric {field}")
    if res.panel_type == "barchart":
        x = panel["options"].get("xField")
        if x is not None and x not in res.columns:
            problems.append(f"{where}: bar chart x field {x} missing")
    if res.panel_type in ("stat", "piechart", "barchart") and not any(
        oid in NUMERIC_OIDS for oid in res.columns.values()
    ):
        problems.append(f"{where}: nothing numeric to show")
    return problems
