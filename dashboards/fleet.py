"""Fleet health: devices that went quiet, bad telemetry, what ingest takes in and refuses.

Silence and ages are measured against the end of the dashboard's time range, which is
"now" on the default range and stays meaningful when someone looks back at a past day.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, stat, table
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import (
    bars,
    device_filter,
    finish,
    legend,
    new_dashboard,
    place,
    units,
)
from dashboards.query import Sql

UID = "menara-fleet-health"
SILENT_AFTER = "10 minutes"

SILENT = f"""
SELECT d.device_id, v.plate, d.protocol, lf.last_fix,
       extract(epoch from $__timeTo()::timestamptz - lf.last_fix) AS silent_s
FROM devices d
LEFT JOIN vehicles v ON v.tracker_device_id = d.device_id
LEFT JOIN LATERAL (
    SELECT max(p.fix_time) AS last_fix FROM positions p
    WHERE p.device_id = d.device_id AND p.fix_time <= $__timeTo()
) lf ON true
WHERE d.enabled
  AND (lf.last_fix IS NULL OR lf.last_fix < $__timeTo()::timestamptz - interval '{SILENT_AFTER}')
  AND {device_filter("d.device_id")}
ORDER BY lf.last_fix NULLS FIRST, d.device_id
"""

SUMMARY = f"""
SELECT (SELECT count(*) FROM devices d WHERE d.enabled AND {device_filter("d.device_id")})
           AS devices,
       (SELECT count(DISTINCT p.device_id) FROM positions p
        WHERE $__timeFilter(p.fix_time) AND {device_filter("p.device_id")}) AS reporting,
       (SELECT count(*) FROM positions p
        WHERE $__timeFilter(p.received_time) AND {device_filter("p.device_id")}) AS fixes,
       (SELECT count(*) FROM dead_letters dl
        WHERE $__timeFilter(dl.received_time) AND {device_filter("dl.device_id")}) AS rejects
"""

ISSUES = f"""
SELECT ti.device_id, v.plate, ti.reason, ti.count, ti.last_at
FROM telemetry_issues ti
LEFT JOIN vehicles v ON v.tracker_device_id = ti.device_id
WHERE ti.last_at >= $__timeFrom() AND {device_filter("ti.device_id")}
ORDER BY ti.last_at DESC
"""

INGEST_RATE = f"""
SELECT $__timeGroupAlias(p.received_time, '1m'), p.protocol || '/' || p.transport AS metric,
       count(*) AS fixes
FROM positions p
WHERE $__timeFilter(p.received_time) AND {device_filter("p.device_id")}
GROUP BY 1, 2
ORDER BY 1
"""

REJECT_RATE = f"""
SELECT $__timeGroupAlias(dl.received_time, '5m'), dl.protocol || ': ' || dl.reason AS metric,
       count(*) AS rejects
FROM dead_letters dl
WHERE $__timeFilter(dl.received_time) AND {device_filter("dl.device_id")}
GROUP BY 1, 2
ORDER BY 1
"""

REJECTS = f"""
SELECT dl.protocol, dl.transport, dl.reason, count(*) AS rejects,
       count(DISTINCT dl.peer) AS peers, max(dl.received_time) AS last_at
FROM dead_letters dl
WHERE $__timeFilter(dl.received_time) AND {device_filter("dl.device_id")}
GROUP BY dl.protocol, dl.transport, dl.reason
ORDER BY rejects DESC
"""

# vehicle_position_5m: the 5-minute continuous aggregate (menara/position_summary.py)
FIXES_PER_VEHICLE = f"""
SELECT $__timeGroupAlias(vp.bucket, '1h'), coalesce(v.plate, vp.device_id) AS metric,
       sum(vp.fixes) AS fixes
FROM vehicle_position_5m vp
LEFT JOIN vehicles v ON v.tracker_device_id = vp.device_id
WHERE $__timeFilter(vp.bucket) AND {device_filter("vp.device_id")}
GROUP BY 1, 2
ORDER BY 1
"""

DISTANCE_PER_VEHICLE = f"""
SELECT coalesce(v.plate, vp.device_id) AS vehicle, sum(vp.distance_km) AS distance_km,
       max(vp.max_speed_kmh) AS max_speed_kmh, sum(vp.moving_s) / 3600.0 AS moving_h,
       sum(vp.stopped_s) / 3600.0 AS stopped_h
FROM vehicle_position_5m vp
LEFT JOIN vehicles v ON v.tracker_device_id = vp.device_id
WHERE $__timeFilter(vp.bucket) AND {device_filter("vp.device_id")}
GROUP BY 1
ORDER BY 1
"""


def build() -> model.Dashboard:
    board = (
        new_dashboard(UID, "Fleet health", "Silent devices, telemetry quality, ingest and rejects")
        .refresh("30s")
        .with_panel(place(stat.Panel(), 24, 4).title("Ingest").with_target(Sql(SUMMARY)))
        .with_panel(
            units(place(table.Panel(), 12, 8), "s", "silent_s")
            .title(f"Silent devices (no fix for {SILENT_AFTER})")
            .with_target(Sql(SILENT))
        )
        .with_panel(place(table.Panel(), 12, 8).title("Telemetry issues").with_target(Sql(ISSUES)))
        .with_panel(
            bars(12, 8)
            .title("Fixes received per minute")
            .with_target(Sql(INGEST_RATE).time_series())
        )
        .with_panel(bars(12, 8).title("Rejects").with_target(Sql(REJECT_RATE).time_series()))
        .with_panel(
            bars(12, 8).title("Fixes per vehicle").with_target(Sql(FIXES_PER_VEHICLE).time_series())
        )
        .with_panel(
            place(barchart.Panel(), 12, 8)
            .legend(legend())
            .title("Distance per vehicle")
            .x_field("vehicle")
            .with_target(Sql(DISTANCE_PER_VEHICLE))
        )
        .with_panel(
            place(table.Panel(), 24, 8).title("Rejects by reason").with_target(Sql(REJECTS))
        )
    )
    return finish(board)
