"""Grafana's PostgreSQL query expansion, redone so panel SQL can run without a Grafana.

Grafana first substitutes template variables (in the browser, ``templateSrv.replace`` with the
SQL data source's ``interpolateVariable``), then the server expands the ``$__`` macros
(``pkg/tsdb/grafana-postgresql-datasource/macros.go``). Both steps are reproduced here,
including their limits: a macro's arguments end at the first ``)``, as in Grafana's regex.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ALL = "$__all"

# templateSrv's variable regex: $name, [[name:fmt]], ${name.field:fmt}
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}"
)
# sqleng's macro regex: $__name(args), args up to the first ')'
_MACRO = re.compile(r"\$__(\w+)\(([^)]*)\)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class MacroError(ValueError):
    """The query uses a macro the way Grafana would refuse."""


@dataclass(frozen=True)
class Variable:
    """A template variable's state: its current value and the options All stands for."""

    value: str | Sequence[str]
    include_all: bool = True
    multi: bool = False
    all_value: str | None = None
    options: Sequence[str] = ()


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    timescaledb: bool = False
    interval: timedelta = timedelta(minutes=1)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format(var: Variable, value: str | Sequence[str], fmt: str | None) -> str:
    if fmt == "raw":
        return value if isinstance(value, str) else ",".join(value)
    if isinstance(value, str):
        return _quote(value) if var.multi or var.include_all else value.replace("'", "''")
    return ",".join(_quote(v) for v in value)


def interpolate(sql: str, variables: Mapping[str, Variable]) -> str:
    """Substitute template variables as Grafana's SQL data sources do."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        var = variables.get(name)
        if var is None:
            return m.group(0)
        value = var.value
        if value == ALL or (not isinstance(value, str) and list(value) == [ALL]):
            if var.all_value is not None and fmt not in ("text", "percentencode"):
                return var.all_value
            value = list(var.options)
        return _format(var, value, fmt)

    return _VARIABLE.sub(one, sql)


def _go_time(t: datetime) -> str:
    """Go's RFC3339Nano in UTC: no fractional part when zero, trailing zeros trimmed."""
    t = t.astimezone(UTC)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += ("." + f"{t.microsecond:06d}").rstrip("0")
    return text + "Z"


def _seconds(interval: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", interval.strip("'\""))
    if m is None:
        raise MacroError(f"invalid interval {interval!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _go_number(x: float) -> str:
    """Go's %v for a float64 that holds a whole number of seconds."""
    return str(int(x)) if x == int(x) else repr(x)


def _interval_text(interval: timedelta) -> str:
    s = interval.total_seconds()
    for unit in ("d", "h", "m", "s"):
        if s >= _UNITS[unit] and s % _UNITS[unit] == 0:
            return f"{int(s // _UNITS[unit])}{unit}"
    return f"{int(s * 1000)}ms"


def expand_macros(sql: str, tr: TimeRange) -> str:
    """Expand the ``$__`` macros of Grafana's PostgreSQL data source."""
    sql = sql.replace("$__interval_ms", str(int(tr.interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", _interval_text(tr.interval))

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        args = [a.strip() for a in m.group(2).split(",")] if m.group(2).strip() else []

        def need(n: int) -> None:
            if len(args) < n:
                raise MacroError(f"macro {name} needs {n} argument(s), got {args}")

        if name == "time":
            need(1)
            return f'{args[0]} AS "time"'
        if name == "timeEpoch":
            need(1)
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "timeFilter":
            need(1)
            return f"{args[0]} BETWEEN '{_go_time(tr.start)}' AND '{_go_time(tr.end)}'"
        if name == "timeFrom":
            return f"'{_go_time(tr.start)}'"
        if name == "timeTo":
            return f"'{_go_time(tr.end)}'"
        if name in ("timeGroup", "timeGroupAlias"):
            need(2)
            s = _seconds(args[1])
            if tr.timescaledb:
                group = f"time_bucket('{s:.3f}s',{args[0]})"
            else:
                group = f"floor(extract(epoch from {args[0]})/{_go_number(s)})*{_go_number(s)}"
            return group + (' AS "time"' if name == "timeGroupAlias" else "")
        if name == "unixEpochFilter":
            need(1)
            lo, hi = int(tr.start.timestamp()), int(tr.end.timestamp())
            return f"{args[0]} >= {lo} AND {args[0]} <= {hi}"
        if name == "unixEpochFrom":
            return str(int(tr.start.timestamp()))
        if name == "unixEpochTo":
            return str(int(tr.end.timestamp()))
        raise MacroError(f"unknown macro {name}")

    return _MACRO.sub(one, sql)


def expand(sql: str, variables: Mapping[str, Variable], tr: TimeRange) -> str:
    """Variables first (the browser), then macros (the server), as Grafana runs a panel."""
    return expand_macros(interpolate(sql, variables), tr)
