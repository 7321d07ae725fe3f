"""The position summary (``vehicle_position_5m``): its refresh, and a report read from it
against the same numbers computed from ``positions``, measured in one run.

    .venv/bin/python bench/bench_reports.py [--devices 50] [--days 7] [--hours 10] [--interval-s 5]

Creates a throwaway database (dropped at the end) on the engine ``menara.db.upgrade``
picks, and loads ``--devices`` vans with one fix every ``--interval-s`` for ``--hours`` a
day over ``--days`` days in one ``INSERT … SELECT`` (no Python loop): each drives round its
own circle around Jakarta at 10–60 km/h, parked (0–2 km/h, GPS jitter) one 5-minute slot
in four, 1% of fixes invalid; even devices send an odometer, odd ones only a speed.
Times ``position_summary.refresh`` (the first fill, then again with nothing new, as
``menara serve`` runs it every ``report_refresh_s``) and a plain ``REFRESH``. Then the
report "per vehicle, per hour: distance, max speed, moving time" over the last day and
over all days, from the summary (re-bucketed to hours) and, as the baseline, from
``positions`` through the summary's own ``QUERY`` limited to the range (the same formulas,
so the answers must agree; checked and printed). Best of ``--repeat`` interleaved rounds;
the ratio baseline / summary is the figure of merit. No assertion on timings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from menara import db, position_summary

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; day k's fixes run from 07:00 WIB
Conn = psycopg.Connection[tuple[Any, ...]]

# Fixes in device and time order; the odometer (metres) is the running sum of speed × interval,
# the position a point that far round the device's circle (radius 0.02–0.08°), so a parked van
# stays put.
LOAD = """
INSERT INTO positions (device_id, fix_time, received_time, lat, lon, speed_kmh, course_deg,
                       satellites, hdop, valid, ignition, odometer_m, transport, protocol)
SELECT device_id, t, t + INTERVAL '2 seconds',
       -6.2 + r * sin(d + odo / (r * 111000)), 106.8 + r * cos(d + odo / (r * 111000)),
       speed, (360 - degrees(d + odo / (r * 111000))::numeric %% 360)::real, 9, 0.9, valid,
       speed >= 3, CASE WHEN d %% 2 = 0 THEN odo END, 'bench', 'teltonika'
FROM (
    SELECT s.*, 0.02 + 0.01 * (d %% 7) AS r,
           sum(speed * %(iv)s / 3.6) OVER (PARTITION BY d ORDER BY t) AS odo
    FROM (
        SELECT d, 'BENCH' || lpad(d::text, 4, '0') AS device_id,
               %(t0)s + day * INTERVAL '1 day' + k * %(iv)s * INTERVAL '1 second' AS t,
               CASE WHEN (k * %(iv)s + d * 311) / 300 %% 4 = 0 THEN random() * 2
                    ELSE 10 + random() * 50 END AS speed,
               random() > 0.01 AS valid
        FROM generate_series(1, %(devices)s) d, generate_series(0, %(days)s - 1) day,
             generate_series(0, %(per_day)s - 1) k
    ) s
) w
ORDER BY d, t
"""

# The report, as the fleet dashboard's panels read the summary; {src} is the summary or
# the summary's own query over positions.
REPORT = """
SELECT coalesce(v.plate, s.device_id) AS vehicle, time_bucket(INTERVAL '1 hour', s.bucket) AS hour,
       sum(s.distance_km) AS distance_km, max(s.max_speed_kmh) AS max_speed_kmh,
       sum(s.moving_s) AS moving_s
FROM {src} s
LEFT JOIN vehicles v ON v.tracker_device_id = s.device_id
WHERE s.bucket >= %(lo)s AND s.bucket < %(hi)s
GROUP BY 1, 2
ORDER BY 1, 2
"""
_RANGED = "WHERE valid AND fix_time >= %(lo)s AND fix_time < %(hi)s\n"
assert position_summary.QUERY.count("WHERE valid\n") == 1, "the summary's QUERY changed shape"
SUMMARY_SQL = REPORT.format(src=position_summary.NAME)
BASELINE_SQL = REPORT.format(
    src=f"({position_summary.QUERY.replace('WHERE valid' + chr(10), _RANGED)})"
)

# Ground truth of the synthetic data, per kind of device: Σ speed × interval and the fixes at
# ≥ 3 km/h over every fix (invalid ones too: the van drove them), beside the summary's sums.
TRUTH = """
WITH truth AS (
    SELECT right(device_id, 1)::int %% 2 = 0 AS odometer,
           sum(speed_kmh::double precision) * %(iv)s / 3600 AS km,
           count(*) FILTER (WHERE speed_kmh >= 3) * %(iv)s AS moving_s
    FROM positions GROUP BY 1
), summary AS (
    SELECT right(device_id, 1)::int %% 2 = 0 AS odometer, sum(distance_km) AS km,
           sum(moving_s) AS moving_s
    FROM vehicle_position_5m GROUP BY 1
)
SELECT odometer, t.km, t.moving_s, s.km, s.moving_s
FROM truth t JOIN summary s USING (odometer) ORDER BY 1 DESC
"""


def seed(conn: Conn, devices: int, days: int, hours: int, iv: int) -> int:
    """Devices, vehicles and their fixes (see the module docstring); the rows loaded."""
    conn.execute(
        "INSERT INTO devices (device_id, protocol, label) SELECT 'BENCH' || lpad(i::text, 4, '0'),"
        " 'teltonika', 'bench ' || i FROM generate_series(1, %s) i",
        (devices,),
    )
    conn.execute(
        "INSERT INTO vehicles (plate, capacity_kg, capacity_m3, tracker_device_id)"
        " SELECT 'B ' || (1000 + i) || ' BX', 1000, 10, 'BENCH' || lpad(i::text, 4, '0')"
        " FROM generate_series(1, %s) i",
        (devices,),
    )
    conn.execute("SET work_mem = '256MB'")  # the odometer's window sorts in memory
    conn.execute("SELECT setseed(0.7)")
    cur = conn.execute(
        LOAD,
        {"iv": iv, "t0": T0, "devices": devices, "days": days, "per_day": hours * 3600 // iv},
    )
    conn.execute("RESET work_mem")
    conn.execute("VACUUM ANALYZE positions")  # as autovacuum would leave a week-old table
    return cur.rowcount


def timed(conn: Conn, sql: str, params: dict[str, Any] | None = None) -> tuple[float, list[Any]]:
    t = time.perf_counter()
    rows = conn.execute(sql, params).fetchall()
    return time.perf_counter() - t, rows


def largest_gaps(a: Sequence[Any], b: Sequence[Any]) -> tuple[float, float, float]:
    """Largest |difference| of distance, max speed and moving time between two reports."""
    assert [r[:2] for r in a] == [r[:2] for r in b], "the two reports have different rows"
    return (
        max((abs(x[2] - y[2]) for x, y in zip(a, b, strict=True)), default=0.0),
        max((abs(x[3] - y[3]) for x, y in zip(a, b, strict=True)), default=0.0),
        max((abs(x[4] - y[4]) for x, y in zip(a, b, strict=True)), default=0.0),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--hours", type=int, default=10, help="hours on the road a day")
    ap.add_argument("--interval-s", type=int, default=5, help="seconds between fixes")
    ap.add_argument("--repeat", type=int, default=5, help="rounds; the best of each is shown")
    ap.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()

    name = f"menara_bench_{uuid.uuid4().hex[:8]}"
    dsn = args.admin_dsn.rpartition("/")[0] + "/" + name
    db.ensure_database(dsn)
    try:
        engine = "timescaledb" if db.upgrade(dsn).timescaledb else "postgresql"
        with psycopg.connect(dsn, autocommit=True) as conn:
            info = conn.execute(
                "SELECT split_part(current_setting('server_version'), ' ', 1),"
                " current_setting('jit'), current_setting('work_mem'),"
                " current_setting('shared_buffers'),"
                " current_setting('max_parallel_workers_per_gather')"
            ).fetchone()
            assert info is not None
            print(f"PostgreSQL {info[0]} ({engine}), jit {info[1]}, work_mem {info[2]},"
                  f" shared_buffers {info[3]}, parallel workers/gather {info[4]}",
                  flush=True)  # fmt: skip
            t = time.perf_counter()
            n = seed(conn, args.devices, args.days, args.hours, args.interval_s)
            print(f"loaded {n:,} positions ({args.devices} devices × {args.days} days ×"
                  f" {args.hours} h, a fix every {args.interval_s} s) in"
                  f" {time.perf_counter() - t:.1f} s", flush=True)  # fmt: skip
            refreshes: list[tuple[str, Callable[[Conn], object]]] = [
                ("refresh, first fill (CONCURRENTLY)", position_summary.refresh),
                ("refresh again, nothing new", position_summary.refresh),
                ("REFRESH, not concurrently", lambda c: c.execute(
                    f"REFRESH MATERIALIZED VIEW {position_summary.NAME}")),
            ]  # fmt: skip
            for label, fn in refreshes:
                t = time.perf_counter()
                fn(conn)
                s = time.perf_counter() - t
                print(f"  {label:36s} {s:7.2f} s {n / s:12,.0f} positions/s", flush=True)
            conn.execute(f"ANALYZE {position_summary.NAME}")
            row = conn.execute(f"SELECT count(*) FROM {position_summary.NAME}").fetchone()
            print(f"  {row[0] if row else 0:,} rows of 5-minute buckets")

            last = T0 + timedelta(days=args.days - 1)
            ranges = {
                "last day": {"lo": last, "hi": last + timedelta(days=1)},
                "all days": {"lo": T0, "hi": T0 + timedelta(days=args.days)},
            }
            best: dict[tuple[str, str], float] = {}
            answers: dict[tuple[str, str], list[Any]] = {}
            for _ in range(args.repeat):  # interleaved rounds, best of each: the host is shared
                for rng, params in ranges.items():
                    for kind, sql in (("summary", SUMMARY_SQL), ("baseline", BASELINE_SQL)):
                        s, answers[(rng, kind)] = timed(conn, sql, params)
                        best[(rng, kind)] = min(best.get((rng, kind), s), s)
            print(f"per vehicle, per hour: distance, max speed, moving time;"
                  f" best of {args.repeat}")  # fmt: skip
            for rng in ranges:
                sm, bl = best[(rng, "summary")], best[(rng, "baseline")]
                print(f"  {rng:9s} {len(answers[(rng, 'summary')]):6,} rows  summary"
                      f" {1000 * sm:8.1f} ms  baseline (positions) {1000 * bl:8.1f} ms"
                      f"  baseline / summary {bl / sm:6.1f}x")  # fmt: skip
            for rng in ranges:
                d_km, d_kmh, d_s = largest_gaps(
                    answers[(rng, "summary")], answers[(rng, "baseline")]
                )
                verdict = "agree" if max(d_km, d_kmh, d_s) < 1e-6 else "DISAGREE"
                print(f"  check {rng}: largest |Δ| distance {d_km:.2e} km, max speed"
                      f" {d_kmh:.2e} km/h, moving {d_s:.2e} s -> {verdict}")  # fmt: skip
            print("summary against the synthetic truth (Σ speed × interval, fixes ≥ 3 km/h):")
            _, truth = timed(conn, TRUTH, {"iv": args.interval_s})
            for odo, km, moving, sum_km, sum_moving in truth:
                print(f"  {'odometer' if odo else 'speed only':10s} distance {sum_km:10,.1f} /"
                      f" {km:10,.1f} km = {sum_km / km:.4f}   moving {sum_moving / 3600:8,.1f} /"
                      f" {moving / 3600:8,.1f} h = {sum_moving / moving:.4f}")  # fmt: skip
    finally:
        with psycopg.connect(args.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
