"""Alerts: what is open now, how fast the control room reacts, and where alerts come from.

Time to acknowledge runs from ``created_at`` (when the server raised the alert, so when a
person could first see it) to ``acknowledged_at``; ``opened_at`` is the fix time the
incident began, which can lie before the alert was raised.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, stat, table
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import (
    bars,
    depot_filter,
    finish,
    legend,
    new_dashboard,
    place,
    units,
    vehicle_filter,
)
from dashboards.query import Sql

UID = "menara-alerts"

_FILTER = f"{depot_filter('a.depot_id')} AND {vehicle_filter('a.vehicle_id')}"
_ACK_S = "extract(epoch from a.acknowledged_at - a.created_at)"

OPEN_NOW = f"""
SELECT count(*) FILTER (WHERE a.state = 'open') AS open,
       count(*) FILTER (WHERE a.state = 'acknowledged') AS acknowledged,
       count(*) FILTER (WHERE a.state = 'escalated') AS escalated
FROM alerts a
WHERE a.state <> 'resolved' AND {_FILTER}
"""

OPEN_BY_TYPE = f"""
SELECT a.type,
       count(*) FILTER (WHERE a.severity = 'critical') AS critical,
       count(*) FILTER (WHERE a.severity = 'warning') AS warning,
       count(*) FILTER (WHERE a.severity = 'info') AS info
FROM alerts a
WHERE a.state <> 'resolved' AND {_FILTER}
GROUP BY a.type
ORDER BY count(*) DESC, a.type
"""

TIME_TO_ACK = f"""
SELECT avg({_ACK_S}) AS avg_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY {_ACK_S}) AS p90_s,
       count(a.acknowledged_at) AS acknowledged,
       count(*) AS raised
FROM alerts a
WHERE $__timeFilter(a.created_at) AND {_FILTER}
"""

ACK_BY_TYPE = f"""
SELECT a.type, a.severity, count(*) AS raised, count(a.acknowledged_at) AS acknowledged,
       avg({_ACK_S}) AS avg_ack_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY {_ACK_S}) AS p90_ack_s,
       count(*) FILTER (WHERE a.acknowledged_at IS NULL AND a.state <> 'resolved') AS waiting
FROM alerts a
WHERE $__timeFilter(a.opened_at) AND {_FILTER}
GROUP BY a.type, a.severity
ORDER BY a.type, a.severity
"""

PER_DEPOT = f"""
SELECT coalesce(d.name, '(no depot)') AS depot, count(*) AS raised,
       count(*) FILTER (WHERE a.state = 'open') AS open,
       count(*) FILTER (WHERE a.state = 'acknowledged') AS acknowledged,
       count(*) FILTER (WHERE a.state = 'escalated') AS escalated,
       count(*) FILTER (WHERE a.state = 'resolved') AS resolved,
       count(*) FILTER (WHERE a.severity = 'critical') AS critical,
       avg({_ACK_S}) AS avg_ack_s
FROM alerts a
LEFT JOIN depots d ON d.id = a.depot_id
WHERE $__timeFilter(a.opened_at) AND {_FILTER}
GROUP BY d.name
ORDER BY raised DESC
"""

RAISED = f"""
SELECT $__timeGroupAlias(a.opened_at, '15m'), a.type AS metric, count(*) AS alerts
FROM alerts a
WHERE $__timeFilter(a.opened_at) AND {_FILTER}
GROUP BY 1, 2
ORDER BY 1
"""

RECENT = f"""
SELECT a.id, a.opened_at, a.type, a.severity, a.state, v.plate, a.trip_id, a.stop_id,
       array_to_string(a.order_ids, ',') AS orders, a.message,
       a.cleared_at, a.acknowledged_at, {_ACK_S} AS ack_s
FROM alerts a
LEFT JOIN vehicles v ON v.id = a.vehicle_id
WHERE $__timeFilter(a.opened_at) AND {_FILTER}
ORDER BY a.opened_at DESC
LIMIT 500
"""


def build() -> model.Dashboard:
    board = (
        new_dashboard(UID, "Alerts", "Open alerts, time to acknowledge, and where they come from")
        .refresh("30s")
        .with_panel(place(stat.Panel(), 8, 5).title("Open now").with_target(Sql(OPEN_NOW)))
        .with_panel(
            place(stat.Panel(), 8, 5)
            .title("Time to acknowledge")
            .unit("s")
            .with_target(Sql(TIME_TO_ACK))
        )
        .with_panel(
            place(barchart.Panel(), 8, 5)
            .legend(legend())
            .title("Open by type and severity")
            .x_field("type")
            .stacking(cm.StackingMode.NORMAL)
            .with_target(Sql(OPEN_BY_TYPE))
        )
        .with_panel(bars(24, 8).title("Alerts raised").with_target(Sql(RAISED).time_series()))
        .with_panel(
            units(place(table.Panel(), 12, 8), "s", "avg_ack_s", "p90_ack_s")
            .title("Time to acknowledge by type")
            .with_target(Sql(ACK_BY_TYPE))
        )
        .with_panel(
            units(place(table.Panel(), 12, 8), "s", "avg_ack_s")
            .title("Per depot")
            .with_target(Sql(PER_DEPOT))
        )
        .with_panel(
            units(place(table.Panel(), 24, 10), "s", "ack_s")
            .title("Alerts")
            .with_target(Sql(RECENT))
        )
    )
    return finish(board)
