"""A trip plan's stop circles and route, computed once per plan rather than once per fix:
what ``deviation.stops`` compares each fix with."""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from deviation.errors import RouteError
from deviation.plan import TripPlan
from deviation.route import Corridor, stops_along

__all__ = ["PlanGeo", "plan_geo"]

_F64 = NDArray[np.float64]


class PlanGeo(NamedTuple):
    """A plan's circles, computed once per plan rather than once per fix."""

    circles: tuple[tuple[float, float, float], ...]  # stops' (x, y, radius) in plan order
    pos: dict[int, int]  # stop id -> index in plan order
    service: tuple[float, ...]
    ready: tuple[float, ...]  # the planned service start (planned departure less service)
    cx: _F64  # the stops' centres, then the depot's
    cy: _F64
    r2_in: _F64  # a squared distance below this is surely inside (see stops.fast_forward)
    r2_out: _F64  # above this, surely outside
    memo: list[Any]  # one slot: fast_forward's last masks (see stops._masks)
    route: Corridor | None  # the planned route (None: none usable) and the stops along it
    along: tuple[float, ...]


_GEO: dict[int, tuple[weakref.ref[TripPlan], PlanGeo]] = {}  # by id(plan), while it lives
_EPS = 1e-9  # relative margin: numpy's and math's hypot may differ in the last bit


def plan_geo(plan: TripPlan) -> PlanGeo:
    """The plan's geometry, cached by identity (a plan is frozen and replaced whole)."""
    key = id(plan)
    hit = _GEO.get(key)
    if hit is not None and hit[0]() is plan:
        return hit[1]
    circles = tuple((st.x_m, st.y_m, st.radius_m) for st in plan.stops)
    depot = (plan.depot_x_m, plan.depot_y_m, plan.depot_radius_m)
    cols = np.array([*circles, depot], dtype=np.float64)
    try:
        route: Corridor | None = Corridor.from_xy(plan.route_xy)
    except RouteError:
        route = None
    r = cols[:, 2]
    ok = r >= 0  # hypot <= a negative or NaN radius never holds: surely outside
    g = PlanGeo(
        circles,
        {st.stop_id: k for k, st in enumerate(plan.stops)},
        tuple(st.service_s for st in plan.stops),
        tuple(st.planned_departure_s - st.service_s for st in plan.stops),
        cols[:, 0].copy(),
        cols[:, 1].copy(),
        np.where(ok, r * r * (1 - _EPS), -1.0),
        np.where(ok, r * r * (1 + _EPS), -1.0),
        [None],
        route,
        () if route is None else stops_along(route, plan.stops),
    )
    _GEO[key] = (weakref.ref(plan), g)
    weakref.finalize(plan, _GEO.pop, key, None)  # forgotten with the plan, not before
    return g
