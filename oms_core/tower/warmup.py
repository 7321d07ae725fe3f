"""Compile the rules' numba kernels before the first round (see ``decoders.warmup``).

A rule worker with an empty numba cache would otherwise spend its first round compiling
(seconds) while committed fixes queue behind it and alerts wait. ``warm_up`` drives one
small synthetic trip through ``VehicleRules.process``: out of the depot, through a stop
it serves, past it and off the route, with a bad fix among them, in batches as the
worker gets them, so every kernel meets the column types of real rounds.
"""

from __future__ import annotations

import time

import numpy as np

from decoders.model import FixArray, empty_fixes
from deviation.plan import PlannedStop, TripPlan
from geofence.projection import LocalProjection
from oms_core.tower.config import TowerConfig
from oms_core.tower.plans import VehicleInfo
from oms_core.tower.vehicle import VehicleRules

__all__ = ["warm_up"]

_PROJ = LocalProjection(52.0, 5.0)
_T0 = 1_780_000_000.0


def warm_up(config: TowerConfig | None = None) -> float:
    """Seconds spent; milliseconds once numba's cache holds the kernels."""
    start = time.perf_counter()
    rules = VehicleRules.new(_info(), config or TowerConfig())
    fixes = _drive()
    for lo in range(0, len(fixes), 10):
        batch = fixes[lo : lo + 10]
        rules.process(batch, float(batch["fix_time_us"][-1]) / 1e6 + 1.0, None)
    return time.perf_counter() - start


def _info() -> VehicleInfo:
    stops = []
    for k, x in enumerate((1000.0, 2000.0), start=1):
        lat, lon = _PROJ.to_latlon(x, 0.0)
        t = _T0 + 300.0 * k
        stops.append(
            PlannedStop(k, k, lat, lon, x, 0.0, 150.0, t, t + 60, 60.0, t - 600, t + 300, (k,))
        )
    trip = TripPlan(
        trip_id=0, vehicle_id=0, depot_id=0, device_id="warm-up", projection=_PROJ,
        route_xy=((0.0, 0.0), (3000.0, 0.0), (0.0, 0.0)), stops=tuple(stops),
        depot_lat=52.0, depot_lon=5.0, depot_x_m=0.0, depot_y_m=0.0, depot_radius_m=300.0,
        planned_departure_s=_T0 + 60, planned_return_s=_T0 + 3600, max_speed_kmh=None,
    )  # fmt: skip
    return VehicleInfo(0, "warm-up", "warm-up", 0, None, trip)


def _drive() -> FixArray:
    """5 s fixes: depot, 1 km east to stop 1, two minutes there, then 600 m off route."""
    xs = [*np.linspace(0, 1000, 20), *[1000.0] * 24, *np.linspace(1000, 1600, 10)]
    ys = [0.0] * 44 + list(np.linspace(0, 600, 10))
    arr = empty_fixes(len(xs))
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        lat, lon = _PROJ.to_latlon(float(x), float(y))
        moving = i < 20 or i >= 44
        arr[i]["fix_time_us"] = round((_T0 + 5.0 * i) * 1e6)
        arr[i]["lat"], arr[i]["lon"] = lat, lon
        arr[i]["speed_kmh"] = 36.0 if moving else 0.0
        arr[i]["ignition"] = 1 if moving else 0
        arr[i]["valid"] = i != 30  # one invalid fix: quality refuses it
    return arr
