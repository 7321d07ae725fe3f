"""Delivery performance: the delivery KPIs, and which stage of an order's life lost the time.

Every panel reads the report views of 0006_reports.sql (``order_delivery_kpis``, one row per
order with an outcome; ``trip_kpis``, one row per trip), so the dashboard and ``menara
report`` cannot disagree about a definition. Orders count in the range their outcome fell in.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import piechart as pm

from dashboards.common import (
    depot_filter,
    finish,
    legend,
    new_dashboard,
    place,
    units,
    vehicle_filter,
)
from dashboards.query import Sql

UID = "menara-delivery-performance"

_ORDERS = (
    "FROM order_delivery_kpis k\n"
    f"WHERE $__timeFilter(k.delivered_at) AND {depot_filter('k.depot_id')}"
    f" AND {vehicle_filter('k.vehicle_id')}"
)
_TRIPS = (
    "FROM trip_kpis t\n"
    "LEFT JOIN vehicles v ON v.id = t.vehicle_id\n"
    f"WHERE $__timeFilter(t.planned_departure) AND {depot_filter('t.depot_id')}"
    f" AND {vehicle_filter('t.vehicle_id')}"
)
_RATES = """avg(k.on_time::int) AS on_time, avg(k.in_full::int) AS in_full,
       avg((k.on_time AND k.in_full)::int) AS otif, avg(k.perfect::int) AS perfect"""

RATES = f"""
SELECT {_RATES}
{_ORDERS}
"""

# deliveries: every order with an outcome, failed attempts included (README, KPIs)
VOLUME = f"""
SELECT count(*) AS deliveries, count(*) FILTER (WHERE k.outcome = 'failed') AS failed,
       sum(c.n) AS complaints, 100.0 * sum(c.n) / nullif(count(*), 0) AS complaints_per_100
FROM order_delivery_kpis k
CROSS JOIN LATERAL (SELECT count(*) AS n FROM complaints WHERE order_id = k.order_id) c
WHERE $__timeFilter(k.delivered_at) AND {depot_filter("k.depot_id")}
  AND {vehicle_filter("k.vehicle_id")}
"""

FAILURES = f"""
SELECT f.criterion, f.reason, count(*) AS orders
FROM order_delivery_kpis k
CROSS JOIN LATERAL (VALUES ('on time', k.on_time_reason), ('in full', k.in_full_reason),
    ('damage free', k.damage_reason), ('documents', k.documents_reason)) AS f(criterion, reason)
WHERE f.reason IS NOT NULL AND $__timeFilter(k.delivered_at)
  AND {depot_filter("k.depot_id")} AND {vehicle_filter("k.vehicle_id")}
GROUP BY f.criterion, f.reason
ORDER BY f.criterion, orders DESC
"""

STAGES = f"""
SELECT s.stage, avg(s.seconds) AS avg_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY s.seconds) AS p90_s
FROM order_delivery_kpis k
CROSS JOIN LATERAL (VALUES (1, 'processing', k.processing_s),
    (2, 'waiting for dispatch', k.waiting_dispatch_s), (3, 'loading', k.loading_s),
    (4, 'transit', k.transit_s), (5, 'at customer', k.at_customer_s),
    (6, 'order to delivery', k.lead_time_s)) AS s(n, stage, seconds)
WHERE $__timeFilter(k.delivered_at) AND {depot_filter("k.depot_id")}
  AND {vehicle_filter("k.vehicle_id")}
GROUP BY s.n, s.stage
ORDER BY s.n
"""

LATE_BY_STAGE = f"""
SELECT k.late_stage AS stage, count(*) AS late_orders
{_ORDERS} AND k.late_stage IS NOT NULL
GROUP BY k.late_stage
ORDER BY late_orders DESC
"""

OVER_TIME = f"""
SELECT $__timeGroupAlias(k.delivered_at, '1h'), {_RATES}
{_ORDERS}
GROUP BY 1
ORDER BY 1
"""

LEAD_TIME = f"""
SELECT $__timeGroupAlias(k.delivered_at, '1h'), avg(k.lead_time_s) AS avg_lead_time_s,
       avg(k.transit_s) AS avg_transit_s, avg(k.at_customer_s) AS avg_at_customer_s
{_ORDERS}
GROUP BY 1
ORDER BY 1
"""

TRIPS = f"""
SELECT t.trip_id, v.plate, t.state, t.planned_departure, t.actual_departure,
       t.planned_distance_km, t.actual_distance_km,
       t.actual_distance_km - t.planned_distance_km AS extra_km,
       t.planned_duration_s, t.actual_duration_s,
       t.actual_duration_s - t.planned_duration_s AS overrun_s,
       t.stops, t.arrivals_geofence, t.arrivals_tap
{_TRIPS}
ORDER BY t.planned_departure, t.trip_id
"""

ARRIVALS = f"""
SELECT sum(t.arrivals_geofence) AS geofence, sum(t.arrivals_tap) AS driver_tap
{_TRIPS}
"""

BY_DRIVER = f"""
SELECT coalesce(d.name, '(no driver)') AS driver, count(*) AS orders, {_RATES},
       avg(k.lead_time_s) AS avg_lead_time_s
FROM order_delivery_kpis k
LEFT JOIN drivers d ON d.id = k.driver_id
WHERE $__timeFilter(k.delivered_at) AND {depot_filter("k.depot_id")}
  AND {vehicle_filter("k.vehicle_id")}
GROUP BY d.name
ORDER BY perfect NULLS FIRST, driver
"""

BY_CUSTOMER = f"""
SELECT c.name AS customer, count(*) AS orders, {_RATES},
       avg(k.lead_time_s) AS avg_lead_time_s
FROM order_delivery_kpis k
JOIN customers c ON c.id = k.customer_id
WHERE $__timeFilter(k.delivered_at) AND {depot_filter("k.depot_id")}
  AND {vehicle_filter("k.vehicle_id")}
GROUP BY c.id, c.name
ORDER BY perfect NULLS FIRST, orders DESC
LIMIT 100
"""

_PERCENT = ("on_time", "in_full", "otif", "perfect")


def _units(panel: table.Panel) -> table.Panel:
    panel = units(panel, "percentunit", *_PERCENT)
    return units(
        panel, "s", "avg_lead_time_s", "planned_duration_s", "actual_duration_s", "overrun_s"
    )


def _pie() -> piechart.Panel:
    legend = (
        piechart.PieChartLegendOptions()
        .show_legend(True)
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.RIGHT)
        .values([pm.PieChartLegendValues.VALUE, pm.PieChartLegendValues.PERCENT])
    )
    return place(piechart.Panel(), 6, 9).legend(legend)


def build() -> model.Dashboard:
    board = (
        new_dashboard(
            UID, "Delivery performance", "On-time, in-full, OTIF, perfect deliveries, stages"
        )
        .refresh("1m")
        .with_panel(
            place(stat.Panel(), 14, 5)
            .title("Delivery KPIs")
            .unit("percentunit")
            .decimals(1)
            .min(0)
            .max(1)
            .with_target(Sql(RATES))
        )
        .with_panel(place(stat.Panel(), 10, 5).title("Volume").with_target(Sql(VOLUME)))
        .with_panel(
            place(barchart.Panel(), 12, 9)
            .legend(legend())
            .title("Time per stage (avg and p90)")
            .unit("s")
            .x_field("stage")
            .with_target(Sql(STAGES))
        )
        .with_panel(
            _pie()
            .title("Late orders by stage that caused it")
            # one slice per row (stage), not one slice per numeric column
            .reduce_options(cb.ReduceDataOptions().values(True).calcs([]))
            .with_target(Sql(LATE_BY_STAGE))
        )
        .with_panel(_pie().title("Arrivals: geofence vs driver tap").with_target(Sql(ARRIVALS)))
        .with_panel(
            place(timeseries.Panel(), 12, 8)
            .title("KPIs over time")
            .unit("percentunit")
            .min(0)
            .max(1)
            .with_target(Sql(OVER_TIME).time_series())
        )
        .with_panel(
            place(timeseries.Panel(), 12, 8)
            .title("Order to delivery time")
            .unit("s")
            .with_target(Sql(LEAD_TIME).time_series())
        )
        .with_panel(
            place(table.Panel(), 12, 8)
            .title("Failures by criterion and reason")
            .with_target(Sql(FAILURES))
        )
        .with_panel(
            _units(place(table.Panel(), 12, 8)).title("By driver").with_target(Sql(BY_DRIVER))
        )
        .with_panel(
            _units(place(table.Panel(), 24, 9))
            .title("Trips: planned vs actual")
            .with_target(Sql(TRIPS))
        )
        .with_panel(
            _units(place(table.Panel(), 24, 9)).title("By customer").with_target(Sql(BY_CUSTOMER))
        )
    )
    return finish(board)
