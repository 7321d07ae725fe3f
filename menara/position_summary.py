"""``vehicle_position_5m``: per device and 5-minute bucket, distance, speeds and time moving
or stopped, for the fleet dashboards and reports.

The same name, columns and formula on both engines: a continuous aggregate with a
refresh policy (and real-time aggregation of the newest rows) on TimescaleDB, a
materialized view that ``menara serve`` refreshes every ``report_refresh_s`` on plain
PostgreSQL.

Continuous aggregates allow no window functions, so nothing can look at the previous
fix. The formula uses aggregates only: with n valid fixes spanning s seconds in a bucket,
each fix stands for dt = s / (n - 1) seconds (the sampling interval; 0 for a lone fix).
distance_km is the odometer's rise (max - min) when at least two fixes carry one, else
Σ speed × dt; moving_s and stopped_s are dt × the fixes at ≥ 3 km/h (the
``stop_speed_kmh`` default) and below it; fixes without a speed count in neither. Only
the odometer's distance misses the stretch from a bucket's last fix to the next bucket's
first (one sampling interval per bucket: 2 % short at a fix every 5 s, 10 % at 30 s, as
``bench/bench_reports.py`` measures); the speed-based distance and the times count it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg

__all__ = ["NAME", "QUERY", "create", "is_continuous", "refresh", "refresh_loop"]

log = logging.getLogger(__name__)

NAME = "vehicle_position_5m"
# dt: the seconds one fix stands for (the bucket's span over its sampling intervals)
_DT = (
    "extract(epoch FROM max(fix_time) - min(fix_time))::double precision"
    " / greatest(count(*) - 1, 1)"
)
QUERY = f"""
SELECT time_bucket(INTERVAL '5 minutes', fix_time) AS bucket,
       device_id,
       count(*) AS fixes,
       CASE WHEN count(odometer_m) >= 2 THEN (max(odometer_m) - min(odometer_m)) / 1000.0
            ELSE coalesce(sum(speed_kmh::double precision), 0) / 3600.0 * {_DT}
       END AS distance_km,
       max(speed_kmh)::double precision AS max_speed_kmh,
       avg(speed_kmh)::double precision AS avg_speed_kmh,
       count(*) FILTER (WHERE speed_kmh >= 3) * {_DT} AS moving_s,
       count(*) FILTER (WHERE speed_kmh < 3) * {_DT} AS stopped_s
FROM positions
WHERE valid
GROUP BY 1, 2
"""


def create(conn: psycopg.Connection[Any], *, timescaledb: bool) -> None:
    """Make the summary if missing (inside ``menara.db``'s engine transaction)."""
    if timescaledb:
        # WITH NO DATA: a continuous aggregate cannot be filled inside a transaction; the
        # policy fills it, and real-time aggregation answers from the raw rows until then.
        conn.execute(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {NAME} WITH (timescaledb.continuous,"
            f" timescaledb.materialized_only = false) AS {QUERY} WITH NO DATA"
        )
        conn.execute(
            f"SELECT add_continuous_aggregate_policy('{NAME}', start_offset => INTERVAL '3 days',"
            " end_offset => INTERVAL '5 minutes', schedule_interval => INTERVAL '5 minutes',"
            " if_not_exists => TRUE)"
        )
    else:
        conn.execute(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {NAME} AS {QUERY}")
        # REFRESH ... CONCURRENTLY (readers never wait) needs a unique index.
        conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {NAME}_key ON {NAME} (device_id, bucket)")
        # The dashboards ask for a time range across all vehicles.
        conn.execute(f"CREATE INDEX IF NOT EXISTS {NAME}_bucket ON {NAME} (bucket)")


# relkind of the summary: 'm' a materialized view, 'v' the view a continuous aggregate
# shows (its rows live in a hidden hypertable), NULL when it is missing.
_KIND = "SELECT relkind::text FROM pg_class WHERE oid = to_regclass(%s)"


def _continuous(kind: str | None) -> bool:
    if kind is None:
        raise RuntimeError(f"{NAME} is missing: run `menara db upgrade`")
    return kind != "m"


def is_continuous(conn: psycopg.Connection[Any]) -> bool:
    """True when the summary is a TimescaleDB continuous aggregate (not a matview)."""
    row = conn.execute(_KIND, (NAME,)).fetchone()
    return _continuous(row[0] if row else None)


def refresh(conn: psycopg.Connection[Any]) -> None:
    """Bring the summary up to date now (``conn`` in autocommit: neither kind of refresh
    runs inside a transaction)."""
    if is_continuous(conn):
        conn.execute(f"CALL refresh_continuous_aggregate('{NAME}', NULL, NULL)")
    else:
        conn.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {NAME}")


async def refresh_loop(dsn: str, every_s: float) -> None:
    """Plain PostgreSQL: refresh every ``every_s`` seconds until cancelled; on TimescaleDB
    the refresh policy does this and the loop ends at once. A failure (the database went
    away) is logged and the loop reconnects after another interval."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                row = await (await conn.execute(_KIND, (NAME,))).fetchone()
                if _continuous(row[0] if row else None):
                    log.info("%s is refreshed by its TimescaleDB policy", NAME)
                    return
                while True:
                    await asyncio.sleep(every_s)
                    await conn.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {NAME}")
        except (psycopg.Error, RuntimeError) as exc:
            log.warning("refreshing %s failed (%s); trying again in %.0f s", NAME, exc, every_s)
            await asyncio.sleep(every_s)
