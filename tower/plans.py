"""Load what the rules compare vehicles with: each device's vehicle and, when it has one,
the dispatched or running trip it is driving, as ``deviation.plan.TripPlan``.

A device is a vehicle's tracker or the phone of the driver assigned to the trip; both
feed the same vehicle's rules. One trip per vehicle is active at a time: the running
one, else the earliest dispatched one of the day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from deviation.plan import PlannedStop, TripPlan
from geofence.projection import LocalProjection

__all__ = ["PlanSettings", "VehicleInfo", "device_vehicles", "load_vehicles"]

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """The settings that shape a loaded plan (defaults as in menara.settings)."""

    stop_radius_m: float = 150.0
    depot_radius_m: float = 300.0
    avg_speed_kmh: float = 30.0
    road_factor: float = 1.3


@dataclass(frozen=True, slots=True)
class VehicleInfo:
    """A tracked vehicle: its own limits, depot and the trip it is on (if any)."""

    vehicle_id: int
    device_id: str  # the vehicle's own tracker
    plate: str
    depot_id: int | None
    max_speed_kmh: float | None
    trip: TripPlan | None


_VEHICLES = """
SELECT v.id, v.plate, v.depot_id, v.max_speed_kmh, v.tracker_device_id
FROM vehicles v WHERE v.tracker_device_id IS NOT NULL
"""

# The active trip per vehicle: in_progress first, then the earliest dispatched.
_TRIPS = """
SELECT DISTINCT ON (t.vehicle_id)
       t.id, t.vehicle_id, t.depot_id, t.state, t.route_geometry,
       extract(epoch FROM t.planned_departure)::float8 AS dep_s,
       extract(epoch FROM t.planned_return)::float8 AS ret_s,
       d.lat AS depot_lat, d.lon AS depot_lon, dr.phone_device_id
FROM trips t
JOIN depots d ON d.id = t.depot_id
LEFT JOIN drivers dr ON dr.id = t.driver_id
WHERE t.state IN ('dispatched', 'in_progress')
ORDER BY t.vehicle_id, t.state = 'in_progress' DESC, t.planned_departure
"""

_STOPS = """
SELECT s.id, s.trip_id, s.seq, s.lat, s.lon, s.radius_m, s.service_time_s,
       extract(epoch FROM s.planned_arrival)::float8 AS arr_s,
       extract(epoch FROM s.planned_departure)::float8 AS dep_s,
       extract(epoch FROM s.window_start)::float8 AS ws_s,
       extract(epoch FROM s.window_end)::float8 AS we_s,
       coalesce(array_agg(so.order_id ORDER BY so.order_id)
                FILTER (WHERE so.order_id IS NOT NULL), '{}') AS order_ids
FROM stops s LEFT JOIN stop_orders so ON so.stop_id = s.id
WHERE s.trip_id = ANY (%s)
GROUP BY s.id ORDER BY s.trip_id, s.seq
"""


def load_vehicles(
    conn: Conn, cfg: PlanSettings, partition: tuple[int, int] | None = None
) -> dict[str, VehicleInfo]:
    """Every tracked device → its vehicle and active trip (phones of trip drivers too);
    with ``partition`` (k, n) only vehicles whose id is k modulo n."""
    with conn.cursor(row_factory=dict_row) as cur:
        vehicles = cur.execute(_VEHICLES).fetchall()
        trips = {r["vehicle_id"]: r for r in cur.execute(_TRIPS).fetchall()}
        if partition is not None:
            k, n = partition
            vehicles = [v for v in vehicles if v["id"] % n == k]
            trips = {vid: t for vid, t in trips.items() if vid % n == k}
        stops: dict[int, list[dict[str, Any]]] = {}
        for s in cur.execute(_STOPS, ([t["id"] for t in trips.values()],)).fetchall():
            stops.setdefault(s["trip_id"], []).append(s)
    out: dict[str, VehicleInfo] = {}
    for v in vehicles:
        t = trips.get(v["id"])
        device = str(v["tracker_device_id"])
        plan = None if t is None else _plan(t, device, v, stops.get(t["id"], []), cfg)
        limit = None if v["max_speed_kmh"] is None else float(v["max_speed_kmh"])
        info = VehicleInfo(int(v["id"]), device, str(v["plate"]), v["depot_id"], limit, plan)
        out[device] = info
        if t is not None and t["phone_device_id"]:
            out.setdefault(str(t["phone_device_id"]), info)
    return out


def _plan(
    t: dict[str, Any],
    device: str,
    v: dict[str, Any],
    stops: list[dict[str, Any]],
    cfg: PlanSettings,
) -> TripPlan:
    proj = LocalProjection(float(t["depot_lat"]), float(t["depot_lon"]))
    geometry = t["route_geometry"]
    if isinstance(geometry, str):
        geometry = json.loads(geometry)
    route = tuple(proj.to_xy(float(lat), float(lon)) for lon, lat in geometry)
    planned = tuple(
        PlannedStop(
            stop_id=int(s["id"]),
            seq=int(s["seq"]),
            lat=float(s["lat"]),
            lon=float(s["lon"]),
            x_m=proj.to_xy(s["lat"], s["lon"])[0],
            y_m=proj.to_xy(s["lat"], s["lon"])[1],
            radius_m=float(s["radius_m"] or cfg.stop_radius_m),
            planned_arrival_s=float(s["arr_s"]),
            planned_departure_s=float(s["dep_s"]),
            service_s=float(s["service_time_s"]),
            window_start_s=None if s["ws_s"] is None else float(s["ws_s"]),
            window_end_s=None if s["we_s"] is None else float(s["we_s"]),
            order_ids=tuple(int(o) for o in s["order_ids"]),
        )
        for s in stops
    )
    return TripPlan(
        trip_id=int(t["id"]),
        vehicle_id=int(v["id"]),
        depot_id=int(t["depot_id"]),
        device_id=device,
        projection=proj,
        route_xy=route,
        stops=planned,
        depot_lat=float(t["depot_lat"]),
        depot_lon=float(t["depot_lon"]),
        depot_x_m=0.0,
        depot_y_m=0.0,
        depot_radius_m=cfg.depot_radius_m,
        planned_departure_s=float(t["dep_s"]),
        planned_return_s=float(t["ret_s"]),
        max_speed_kmh=None if v["max_speed_kmh"] is None else float(v["max_speed_kmh"]),
        avg_speed_kmh=cfg.avg_speed_kmh,
        road_factor=cfg.road_factor,
    )


def device_vehicles(conn: Conn) -> dict[str, int]:
    """Every tracked device → its vehicle id (as ``load_vehicles`` maps them, without
    loading plans): what routes a device's fixes to its vehicle's rule worker."""
    out: dict[str, int] = {}
    for vid, device in conn.execute(
        "SELECT id, tracker_device_id FROM vehicles WHERE tracker_device_id IS NOT NULL"
    ).fetchall():
        out[str(device)] = int(vid)
    tracked = set(out.values())
    with conn.cursor(row_factory=dict_row) as cur:
        for t in cur.execute(_TRIPS).fetchall():
            if t["phone_device_id"] and t["vehicle_id"] in tracked:
                out.setdefault(str(t["phone_device_id"]), int(t["vehicle_id"]))
    return out
