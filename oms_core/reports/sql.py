"""The report's SQL: each section is one query over the per-order, per-alert and per-trip
views of migration 0006 (``order_delivery_kpis``, ``alert_kpis``, ``trip_kpis``), grouped
by one dimension. Rates are counts of per-order rows over counts of per-order rows.

The order sections read the range's per-order rows through the ``report_orders`` CTE
(``{orders}``); the builder runs every section in one read-only repeatable-read
transaction, so they agree with each other and run on a read replica too.
"""

from __future__ import annotations

from dataclasses import dataclass

from oms_core.reports.definitions import STAGES

__all__ = [
    "ALERTS",
    "CUSTOMERS",
    "DIMENSIONS",
    "FAILURES",
    "KPIS",
    "NO_CUSTOMERS",
    "ORDERS",
    "STAGE_ROWS",
    "STOPS",
    "TRIPS",
    "Dimension",
]


@dataclass(frozen=True, slots=True)
class Dimension:
    """How rows are grouped: the key column, an expression naming the group, its join."""

    key: str  # column of the per-row views, and the report's first column
    name: str  # SQL for the group's name (``r`` is the row, ``gd`` the joined table)
    join: str  # joins ``gd`` (empty for day)


DIMENSIONS = {
    "day": Dimension("day", "to_char(r.day, 'YYYY-MM-DD')", ""),
    "depot": Dimension("depot_id", "gd.name", "LEFT JOIN depots gd ON gd.id = r.depot_id"),
    "driver": Dimension("driver_id", "gd.name", "LEFT JOIN drivers gd ON gd.id = r.driver_id"),
    "customer": Dimension(
        "customer_id", "gd.name", "LEFT JOIN customers gd ON gd.id = r.customer_id"
    ),
}

ORDERS = """report_orders AS (
    SELECT * FROM order_delivery_kpis
    WHERE day BETWEEN %(start)s AND %(end)s
      AND (%(depot)s::bigint IS NULL OR depot_id = %(depot)s)
)"""

# {k}: the group key, {nm}: its name, {join}: the dimension's join, {orders}: ORDERS.
# One row per group and a last row for all of them (name 'all').
KPIS = """
WITH {orders}, g AS (
    SELECT CASE WHEN grouping(r.{k}) = 0 THEN r.{k} END AS {k},
           CASE WHEN grouping(r.{k}) = 0 THEN {nm} ELSE 'all' END AS name,
           grouping(r.{k}) AS is_total,
           count(*) AS deliveries,
           count(*) FILTER (WHERE r.perfect) AS perfect,
           count(*) FILTER (WHERE r.on_time) AS on_time,
           count(*) FILTER (WHERE r.in_full) AS in_full,
           count(*) FILTER (WHERE r.on_time AND r.in_full) AS otif,
           count(*) FILTER (WHERE r.damage_free) AS damage_free,
           count(*) FILTER (WHERE r.documents_accurate) AS documents_accurate,
           count(*) FILTER (WHERE r.on_time_reason = 'late') AS late,
           avg(r.lead_time_s) AS avg_lead_time_s,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY r.lead_time_s) AS p90_lead_time_s,
           count(*) FILTER (WHERE r.arrival_method = 'geofence') AS arrivals_geofence,
           count(*) FILTER (WHERE r.arrival_method = 'driver') AS arrivals_tap,
           coalesce(sum(cc.n), 0)::bigint AS complaints
    FROM report_orders r
    {join}
    CROSS JOIN LATERAL (SELECT count(*) AS n FROM complaints c WHERE c.order_id = r.order_id) cc
    GROUP BY GROUPING SETS ((r.{k}, {nm}), ())
), n AS (SELECT g.*, nullif(g.deliveries, 0)::float8 AS d FROM g)
SELECT {k}, name, deliveries,
       perfect, perfect / d AS perfect_rate,
       on_time, on_time / d AS on_time_rate,
       in_full, in_full / d AS in_full_rate,
       otif, otif / d AS otif_rate,
       damage_free / d AS damage_free_rate,
       documents_accurate / d AS documents_accurate_rate,
       late, avg_lead_time_s, p90_lead_time_s,
       arrivals_geofence, arrivals_tap,
       arrivals_geofence / d AS geofence_share, arrivals_tap / d AS tap_share,
       complaints, complaints * 100 / d AS complaints_per_100
FROM n
ORDER BY is_total, {k}
"""

FAILURES = """
WITH {orders}, g AS (
    SELECT r.*, {nm} AS group_name, count(*) OVER (PARTITION BY r.{k}) AS group_orders
    FROM report_orders r {join}
)
SELECT g.{k}, g.group_name AS name, f.criterion, f.reason, count(*) AS failures,
       count(*)::float8 / min(g.group_orders) AS share
FROM g
CROSS JOIN LATERAL (VALUES (1, 'on_time', g.on_time_reason),
                           (2, 'in_full', g.in_full_reason),
                           (3, 'damage_free', g.damage_reason),
                           (4, 'documents_accurate', g.documents_reason))
  AS f (ord, criterion, reason)
WHERE f.reason IS NOT NULL
GROUP BY g.{k}, g.group_name, f.ord, f.criterion, f.reason
ORDER BY g.{k}, f.ord, failures DESC, f.reason
"""

_STAGE_VALUES = (
    ",\n".join(f"({i}, '{s}', g.{s}_s)" for i, s in enumerate(STAGES, 1))
    + f",\n({len(STAGES) + 1}, 'plan', NULL::float8)"
)
# One row per group and stage (and 'plan', which has no duration: only late deliveries).
STAGE_ROWS = (
    """
WITH {orders}, g AS (SELECT r.*, {nm} AS group_name FROM report_orders r {join})
SELECT g.{k}, g.group_name AS name, s.stage, avg(s.secs) AS avg_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY s.secs) AS p90_s,
       avg(s.secs) / nullif(avg(g.lead_time_s), 0) AS share,
       count(*) FILTER (WHERE g.late_stage = s.stage) AS late_attributed
FROM g
CROSS JOIN LATERAL (VALUES """
    + _STAGE_VALUES
    + """) AS s (ord, stage, secs)
GROUP BY g.{k}, g.group_name, s.ord, s.stage
ORDER BY g.{k}, s.ord
"""
)

# Alerts on the range's days; by customer an alert counts once for each customer whose
# orders it names ({customers} is CUSTOMERS then, else NO_CUSTOMERS).
ALERTS = """
WITH r AS (
    SELECT ak.*, c.customer_id FROM alert_kpis ak {customers}
    WHERE ak.day BETWEEN %(start)s AND %(end)s
      AND (%(depot)s::bigint IS NULL OR ak.depot_id = %(depot)s)
), g AS (SELECT r.*, {nm} AS group_name FROM r {join})
SELECT g.{k}, g.group_name AS name, g.type, count(*) AS alerts,
       count(g.acknowledged_at) AS acknowledged,
       count(*) FILTER (WHERE g.acknowledged_at IS NULL AND g.resolved_at IS NULL)
         AS unacknowledged,
       avg(g.ack_s) AS avg_ack_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY g.ack_s) AS p90_ack_s
FROM g
GROUP BY g.{k}, g.group_name, g.type
ORDER BY g.{k}, alerts DESC, g.type
"""
CUSTOMERS = (
    "LEFT JOIN LATERAL (SELECT DISTINCT o.customer_id FROM orders o"
    " WHERE o.id = ANY(ak.order_ids)) c ON true"
)
NO_CUSTOMERS = "CROSS JOIN (SELECT NULL::bigint AS customer_id) c"

TRIPS = """
SELECT tk.trip_id, tk.day, tk.depot_id, dp.name AS depot_name, tk.vehicle_id, v.plate,
       tk.driver_id, d.name AS driver_name, tk.state,
       tk.planned_departure, tk.actual_departure, tk.planned_return, tk.actual_return,
       tk.planned_distance_km, tk.actual_distance_km,
       tk.actual_distance_km - tk.planned_distance_km AS distance_delta_km,
       tk.planned_duration_s, tk.actual_duration_s,
       tk.actual_duration_s - tk.planned_duration_s AS duration_delta_s,
       extract(epoch FROM tk.actual_departure - tk.planned_departure)::float8
         AS departure_delay_s,
       tk.stops, tk.stops_arrived, tk.arrivals_geofence, tk.arrivals_tap,
       tk.arrivals_dispatcher,
       (SELECT count(*) FROM alerts a WHERE a.trip_id = tk.trip_id) AS alerts
FROM trip_kpis tk
LEFT JOIN depots dp ON dp.id = tk.depot_id
LEFT JOIN vehicles v ON v.id = tk.vehicle_id
LEFT JOIN drivers d ON d.id = tk.driver_id
WHERE tk.day BETWEEN %(start)s AND %(end)s
  AND (%(depot)s::bigint IS NULL OR tk.depot_id = %(depot)s)
ORDER BY tk.day, tk.trip_id
"""

STOPS = """
SELECT s.trip_id, t.day, t.depot_id, v.plate, d.name AS driver_name, s.seq, s.id AS stop_id,
       CASE WHEN s.actual_departure IS NOT NULL THEN 'departed'
            WHEN s.actual_arrival IS NOT NULL THEN 'arrived' ELSE 'pending' END AS state,
       s.lat, s.lon, s.window_start, s.window_end, s.planned_arrival, s.planned_departure,
       s.actual_arrival, s.actual_departure, s.arrival_method, s.geofence_arrival,
       s.driver_arrival,
       extract(epoch FROM s.actual_arrival - s.planned_arrival)::float8 AS arrival_delay_s,
       extract(epoch FROM s.actual_departure - s.actual_arrival)::float8 AS dwell_s,
       s.out_of_sequence,
       so.orders, so.order_numbers
FROM stops s
JOIN trips t ON t.id = s.trip_id
LEFT JOIN vehicles v ON v.id = t.vehicle_id
LEFT JOIN drivers d ON d.id = t.driver_id
CROSS JOIN LATERAL (
    SELECT count(*) AS orders, string_agg(o.tracking_number, ' ' ORDER BY o.tracking_number)
           AS order_numbers
    FROM stop_orders so JOIN orders o ON o.id = so.order_id  -- order_id: NOT NULL, a key
    WHERE so.stop_id = s.id
) so
WHERE t.day BETWEEN %(start)s AND %(end)s
  AND (%(depot)s::bigint IS NULL OR t.depot_id = %(depot)s)
  AND (%(trip)s::bigint IS NULL OR s.trip_id = %(trip)s)
ORDER BY t.day, s.trip_id, s.seq
"""
