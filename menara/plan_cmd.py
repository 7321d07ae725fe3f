"""``menara plan --date D [--depot X] [--replace]``: plan a day's reserved orders into trips.

Runs ``oms_core.dispatch.plan_day`` against the configured database with the planning
settings (time limit, road factor, average speed; with ``osrm_url`` OSRM's road travel
times and route geometry instead), printing the planner's progress,
then every trip stored and every order left reserved with the reason why. ``--replace``
re-plans a day whose trips are all still planned.
"""

from __future__ import annotations

import sys
from datetime import date

import psycopg

from menara import db
from menara.settings import Settings
from oms_core import dispatch, trips
from oms_core.errors import OmsError
from oms_core.planning.routes import road_providers


def run(day: date, depot_id: int | None, cfg: Settings, *, replace: bool = False) -> int:
    """Plan ``day`` (one depot or all; ``replace``: again, over its planned trips); the
    exit code (1 with a message on refusal)."""
    try:
        db.ready(cfg)
    except db.DatabaseError as exc:
        print(f"menara plan: {exc}", file=sys.stderr)
        return 1
    matrix, routes = road_providers(
        cfg.osrm_url, road_factor=cfg.plan_road_factor, avg_speed_kmh=cfg.plan_avg_speed_kmh
    )
    with psycopg.connect(cfg.db_dsn, autocommit=True) as conn:
        try:
            result = dispatch.plan_day(
                conn,
                day,
                depot_id=depot_id,
                matrix=matrix,
                time_limit_s=cfg.plan_time_limit_s,
                progress=lambda line: print(line, flush=True),
                replace=replace,
                routes=routes,
            )
        except OmsError as exc:
            print(f"menara plan: {exc}", file=sys.stderr)
            return 1
        for trip in trips.list_trips(conn, day, depot_id):
            if trip.id not in result.trip_ids:
                continue
            orders = sum(len(s.order_ids) for s in trip.stops)
            print(
                f"trip {trip.id}: vehicle {trip.vehicle_id}, driver {trip.driver_id},"
                f" {len(trip.stops)} stops, {orders} orders,"
                f" {trip.planned_departure:%H:%M}–{trip.planned_return:%H:%M} UTC"
            )
    if result.replaced:
        print(f"replaced trips {', '.join(map(str, result.replaced))}")
    for order_id, reason in sorted(result.unassigned.items()):
        print(f"order {order_id} not planned: {reason}")
    for vehicle_id, reason in sorted(result.idle_vehicles.items()):
        print(f"vehicle {vehicle_id} idle: {reason}")
    print(
        f"{day}: {len(result.trip_ids)} trips, {len(result.scheduled)} orders scheduled,"
        f" {len(result.unassigned)} left reserved, {result.distance_m / 1000:.1f} km,"
        f" {result.duration_s / 3600:.1f} h"
    )
    return 0
