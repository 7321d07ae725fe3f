"""The Grafana query expansion the panel tests rely on, against Grafana's exact output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.dashboards.grafana_sql import (
    ALL,
    MacroError,
    TimeRange,
    Variable,
    expand,
    expand_macros,
    interpolate,
)

T0 = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)
T1 = datetime(2026, 12, 1, 18, 0, 0, 250000, tzinfo=UTC)
TR = TimeRange(T0, T1)
TS = TimeRange(T0, T1, timescaledb=True, interval=timedelta(seconds=30))


def test_time_filter_and_bounds() -> None:
    assert (
        expand_macros("WHERE $__timeFilter(p.fix_time)", TR)
        == "WHERE p.fix_time BETWEEN '2026-12-01T07:30:00Z' AND '2026-12-01T18:00:00.25Z'"
    )
    assert expand_macros("$__timeFrom() $__timeTo()", TR) == (
        "'2026-12-01T07:30:00Z' '2026-12-01T18:00:00.25Z'"
    )


def test_time_group_with_and_without_timescaledb() -> None:
    assert expand_macros("$__timeGroup(fix_time, '5m')", TS) == "time_bucket('300.000s',fix_time)"
    assert expand_macros("$__timeGroup(fix_time,'5m')", TR) == (
        "floor(extract(epoch from fix_time)/300)*300"
    )
    assert expand_macros("$__timeGroupAlias(a.at, '1h')", TS) == (
        "time_bucket('3600.000s',a.at) AS \"time\""
    )
    assert expand_macros("$__timeGroupAlias(a.at, $__interval)", TS) == (
        "time_bucket('30.000s',a.at) AS \"time\""
    )


def test_time_epoch_and_interval() -> None:
    assert expand_macros("$__time(t)", TR) == 't AS "time"'
    assert expand_macros("$__timeEpoch(t)", TR) == 'extract(epoch from t) as "time"'
    assert expand_macros("$__unixEpochFilter(ts)", TR) == (
        f"ts >= {int(T0.timestamp())} AND ts <= {int(T1.timestamp())}"
    )
    assert expand_macros("$__interval $__interval_ms", TS) == "30s 30000"
    assert expand_macros("$__interval", TR) == "1m"


def test_macro_arguments_end_at_the_first_parenthesis_as_in_grafana() -> None:
    # Grafana's regex stops at ')' and splits at ',': a call inside a macro is mangled
    assert expand_macros("$__timeFilter(coalesce(a, b))", TR) == (
        "coalesce(a BETWEEN '2026-12-01T07:30:00Z' AND '2026-12-01T18:00:00.25Z')"
    )
    with pytest.raises(MacroError):
        expand_macros("$__timeGroup(t)", TR)
    with pytest.raises(MacroError):
        expand_macros("$__nope(t)", TR)


def test_variables_single_multi_and_all() -> None:
    depot = Variable("3", include_all=True, all_value="NULL")
    assert interpolate("d = $depot", {"depot": depot}) == "d = '3'"
    assert interpolate("d = ${depot}", {"depot": depot}) == "d = '3'"
    assert interpolate("d = [[depot]]", {"depot": depot}) == "d = '3'"
    assert interpolate("d = ${depot:raw}", {"depot": depot}) == "d = 3"
    plain = Variable("O'Brien", include_all=False)
    assert interpolate("n = '$name'", {"name": plain}) == "n = 'O''Brien'"
    every = Variable(ALL, include_all=True, all_value="NULL")
    assert interpolate("$depot IS NULL", {"depot": every}) == "NULL IS NULL"
    # All without a custom all value: the options, each quoted, comma-joined
    listed = Variable(ALL, include_all=True, multi=True, options=("1", "2"))
    assert interpolate("d IN ($depot)", {"depot": listed}) == "d IN ('1','2')"
    picked = Variable(["1", "7"], multi=True)
    assert interpolate("d IN ($depot)", {"depot": picked}) == "d IN ('1','7')"
    # unknown names and macros are left for the server
    assert interpolate("$other $__timeFrom()", {"depot": depot}) == "$other $__timeFrom()"


def test_variables_are_substituted_before_macros() -> None:
    sql = "SELECT $__timeGroupAlias(t, '5m') FROM x WHERE $__timeFilter(t) AND d = $depot"
    assert expand(sql, {"depot": Variable("2")}, TS) == (
        "SELECT time_bucket('300.000s',t) AS \"time\" FROM x WHERE t BETWEEN"
        " '2026-12-01T07:30:00Z' AND '2026-12-01T18:00:00.25Z' AND d = '2'"
    )
