"""Compile the rules' numba kernels before the first round (see ``decoders.warmup``).

A rule worker with an empty numba cache would otherwise spend its first round compiling
(seconds) while committed fixes queue behind it and alerts wait. ``warm_up`` drives one
small synthetic trip through ``VehicleRules.process``: out of the depot, through a stop
it serves, past it and off the route, with a bad fix among them, in batches as the
worker gets them, so every kernel meets the column types of real rounds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from decoders.model import FixArray, empty_fixes
from deviation.plan import PlannedStop, TripPlan
from geofence.projection import LocalProjection
from menara.settings import Settings
from tower.plans import VehicleInfo
from tower.vehicle import VehicleRules

__all__ = ["PROJ", "T0", "straight_trip", "warm_up"]

PROJ = LocalProjection(52.0, 5.0)
T0 = 1_780_000_000.0


def warm_up(config: Settings | None = None) -> float:
    """Seconds spent; milliseconds once numba's cache holds the kernels."""
    start = time.perf_counter()
    rules = VehicleRules.new(straight_trip((1000.0, 2000.0), 3000.0), config or Settings())
    fixes = _drive()
    for lo in range(0, len(fixes), 10):
        batch = fixes[lo : lo + 10]
        rules.process(batch, float(batch["fix_time_us"][-1]) / 1e6 + 1.0, None)
    return time.perf_counter() - start


def straight_trip(
    stop_xs: Sequence[float], route_end_m: float, max_speed_kmh: float | None = None
) -> VehicleInfo:
    """Vehicle 1 (device ``V1``) on trip 1: a depot of 300 m at the origin, the route east
    to ``route_end_m`` and back, 150 m stops at ``stop_xs`` on it, due 5 minutes apart
    (the warm-up's trip, and the tests' metric world)."""
    stops = []
    for k, x in enumerate(stop_xs, start=1):
        lat, lon = PROJ.to_latlon(x, 0.0)
        t = T0 + 300.0 * k
        stops.append(
            PlannedStop(k, k, lat, lon, x, 0.0, 150.0, t, t + 60, 60.0, t - 600, t + 300, (k,))
        )
    trip = TripPlan(
        trip_id=1, vehicle_id=1, depot_id=1, device_id="V1", projection=PROJ,
        route_xy=((0.0, 0.0), (route_end_m, 0.0), (0.0, 0.0)), stops=tuple(stops),
        depot_lat=PROJ.lat0, depot_lon=PROJ.lon0, depot_x_m=0.0, depot_y_m=0.0,
        depot_radius_m=300.0, planned_departure_s=T0 + 60, planned_return_s=T0 + 3600,
        max_speed_kmh=max_speed_kmh,
    )  # fmt: skip
    return VehicleInfo(1, "V1", "V 1", 1, max_speed_kmh, trip)


def _drive() -> FixArray:
    """5 s fixes: depot, 1 km east to stop 1, two minutes there, then 600 m off route."""
    xs = [*np.linspace(0, 1000, 20), *[1000.0] * 24, *np.linspace(1000, 1600, 10)]
    ys = [0.0] * 44 + list(np.linspace(0, 600, 10))
    arr = empty_fixes(len(xs))
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        lat, lon = PROJ.to_latlon(float(x), float(y))
        moving = i < 20 or i >= 44
        arr[i]["fix_time_us"] = round((T0 + 5.0 * i) * 1e6)
        arr[i]["lat"], arr[i]["lon"] = lat, lon
        arr[i]["speed_kmh"] = 36.0 if moving else 0.0
        arr[i]["ignition"] = 1 if moving else 0
        arr[i]["valid"] = i != 30  # one invalid fix: quality refuses it
    return arr
