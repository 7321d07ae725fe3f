"""Live map: where every van is, what it is doing, where it should drive, what is wrong.

One Geomap with four layers, each fed by its own query (layers pick their frame by refId):
the latest fix per vehicle coloured by trip state, points along the planned routes, the
stops coloured by state, and the open alerts at the position the vehicle had when last seen.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import geomap, table
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import geomap as gm

from dashboards.common import (
    depot_filter,
    finish,
    new_dashboard,
    place,
    units,
    vehicle_filter,
)
from dashboards.query import Sql

UID = "menara-live-map"

VEHICLES = f"""
SELECT v.plate, p.lat AS latitude, p.lon AS longitude, p.speed_kmh, p.fix_time AS last_fix,
       coalesce(t.state, 'no trip') AS trip_state
FROM vehicles v
JOIN LATERAL (
    SELECT lat, lon, speed_kmh, fix_time FROM positions
    WHERE device_id = v.tracker_device_id AND $__timeFilter(fix_time)
    ORDER BY fix_time DESC LIMIT 1
) p ON true
LEFT JOIN LATERAL (
    SELECT state FROM trips
    WHERE vehicle_id = v.id AND planned_departure <= $__timeTo()
    ORDER BY state IN ('dispatched', 'in_progress') DESC, planned_departure DESC LIMIT 1
) t ON true
WHERE {depot_filter("v.depot_id")} AND {vehicle_filter("v.id")}
ORDER BY v.plate
"""

_TRIPS_IN_RANGE = (
    "t.planned_departure <= $__timeTo() AND t.planned_return >= $__timeFrom()"
    f" AND t.state <> 'cancelled' AND {depot_filter('t.depot_id')}"
    f" AND {vehicle_filter('t.vehicle_id')}"
)

# route_geometry is a jsonb array of [lon, lat] pairs (0002_oms.sql)
ROUTES = f"""
SELECT t.id AS trip_id, v.plate, pt.seq, (pt.xy->>1)::float8 AS latitude,
       (pt.xy->>0)::float8 AS longitude, t.state AS trip_state
FROM trips t
JOIN vehicles v ON v.id = t.vehicle_id
CROSS JOIN LATERAL jsonb_array_elements(t.route_geometry) WITH ORDINALITY AS pt(xy, seq)
WHERE {_TRIPS_IN_RANGE}
ORDER BY t.id, pt.seq
"""

STOPS = f"""
SELECT s.id AS stop_id, v.plate, s.seq, s.lat AS latitude, s.lon AS longitude,
       CASE
           WHEN EXISTS (SELECT 1 FROM epods e WHERE e.stop_id = s.id AND e.outcome = 'failed')
               THEN 'failed'
           WHEN s.actual_departure IS NOT NULL THEN 'done'
           WHEN s.actual_arrival IS NOT NULL THEN 'at stop'
           WHEN s.unconfirmed_from IS NOT NULL THEN 'unconfirmed'
           WHEN s.eta > s.window_end THEN 'at risk'
           ELSE 'pending'
       END AS stop_state,
       s.planned_arrival, s.eta, s.actual_arrival, s.window_end
FROM stops s
JOIN trips t ON t.id = s.trip_id
JOIN vehicles v ON v.id = t.vehicle_id
WHERE {_TRIPS_IN_RANGE}
ORDER BY t.id, s.seq
"""

ALERTS = f"""
SELECT a.id AS alert_id, a.type, a.severity, a.message, a.opened_at, v.plate,
       p.lat AS latitude, p.lon AS longitude
FROM alerts a
LEFT JOIN vehicles v ON v.id = a.vehicle_id
JOIN LATERAL (
    SELECT lat, lon FROM positions
    WHERE device_id = a.device_id AND fix_time <= a.last_seen_at
    ORDER BY fix_time DESC LIMIT 1
) p ON true
WHERE a.state <> 'resolved' AND a.last_seen_at >= $__timeFrom() AND a.opened_at <= $__timeTo()
  AND {depot_filter("a.depot_id")} AND {vehicle_filter("a.vehicle_id")}
ORDER BY a.opened_at
"""

LAST_FIX = f"""
SELECT v.plate, d.name AS depot, v.tracker_device_id AS device_id, p.fix_time AS last_fix,
       extract(epoch from $__timeTo()::timestamptz - p.fix_time) AS age_s,
       p.speed_kmh, p.protocol, p.transport
FROM vehicles v
LEFT JOIN depots d ON d.id = v.depot_id
LEFT JOIN LATERAL (
    SELECT fix_time, speed_kmh, protocol, transport FROM positions
    WHERE device_id = v.tracker_device_id AND fix_time <= $__timeTo()
    ORDER BY fix_time DESC LIMIT 1
) p ON true
WHERE {depot_filter("v.depot_id")} AND {vehicle_filter("v.id")}
ORDER BY p.fix_time NULLS FIRST, v.plate
"""

# colours for the state fields of every layer (values do not collide across fields)
_STATE_COLOURS = {
    "in_progress": "green",
    "dispatched": "blue",
    "planned": "text",
    "completed": "purple",
    "no trip": "text",
    "done": "green",
    "at stop": "blue",
    "unconfirmed": "yellow",  # passed during a tracker silence: call the driver
    "pending": "text",
    "at risk": "orange",
    "failed": "red",
    "info": "blue",
    "warning": "orange",
    "critical": "red",
}


def _markers(
    name: str, ref: str, colour_field: str, size: int, text_field: str | None
) -> cb.MapLayerOptions:
    style: dict[str, object] = {
        "color": {"field": colour_field, "fixed": "dark-green"},
        "opacity": 0.9,
        "size": {"fixed": size},
        "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
    }
    if text_field is not None:
        style["text"] = {"field": text_field, "fixed": "", "mode": "field"}
        style["textConfig"] = {"fontSize": 11, "offsetY": -12, "textAlign": "center"}
    return (
        cb.MapLayerOptions()
        .type("markers")
        .name(name)
        .config({"showLegend": True, "style": style})
        .location(
            cb.FrameGeometrySource()
            .mode(cm.FrameGeometrySourceMode.COORDS)
            .latitude("latitude")
            .longitude("longitude")
        )
        .filter_data({"id": "byRefId", "options": ref})
        .tooltip(True)
    )


def build() -> model.Dashboard:
    colours = model.ValueMap(
        {
            k: model.ValueMappingResult(color=c, index=i)
            for i, (k, c) in enumerate(_STATE_COLOURS.items())
        }
    )
    layers: list[Builder[cm.MapLayerOptions]] = [
        _markers("Planned routes", "B", "trip_state", 3, None),
        _markers("Stops", "C", "stop_state", 7, None),
        _markers("Vehicles", "A", "trip_state", 12, "plate"),
        _markers("Open alerts", "D", "severity", 16, "type"),
    ]
    board = (
        new_dashboard(UID, "Live map", "Every vehicle's latest fix, its plan, its stops and alerts")
        .refresh("5s")
        .time("now-12h", "now")
        .with_panel(
            place(geomap.Panel(), 24, 18)
            .title("Fleet")
            .with_target(Sql(VEHICLES).ref_id("A"))
            .with_target(Sql(ROUTES).ref_id("B"))
            .with_target(Sql(STOPS).ref_id("C"))
            .with_target(Sql(ALERTS).ref_id("D"))
            .mappings([colours])
            .basemap(cb.MapLayerOptions().type("default").name("Basemap"))
            .layers(layers)
            .view(geomap.MapViewConfig().id("fit").all_layers(True).max_zoom(15).zoom(12))
            .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True))
            .tooltip(geomap.TooltipOptions().mode(gm.TooltipMode.DETAILS))
        )
        .with_panel(
            units(place(table.Panel(), 24, 8), "s", "age_s")
            .title("Last fix per vehicle")
            .with_target(Sql(LAST_FIX))
        )
    )
    return finish(board)
