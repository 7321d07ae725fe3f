"""Stops a vehicle passed while its tracker was silent.

A fix after a gap of ``max_gap_s`` or more may find the vehicle well down its route:
it drove to a stop, served it and left without a fix. Its progress along the planned
route shows which stops it passed, so they are not left waiting to be arrived at
(every later arrival would be out of sequence, and ETAs would send the van back).

Both ends of the gap are placed on the route: the last fix before it no earlier than
the last stop the vehicle arrived at, the first fix after it no earlier than that and
no farther along than the vehicle could have driven in the gap (``speed_mps``). Where
the route passes near one place twice (an out-and-back street, two carriageways), the
earliest pass within ``tolerance_m`` of the nearest wins: a stop wrongly taken as passed
would never report its real arrival, while one left unvisited only waits for it. A stop
not arrived at whose position along the route lies beyond the first and at least its
radius short of the second was passed. Either fix farther than ``reach_m`` from the
route says nothing of progress, and nothing is inferred.
"""

from __future__ import annotations

from collections.abc import Sequence

from deviation.plan import TripPlan
from deviation.route import Corridor, distances

__all__ = ["passed"]

_STEPS = 40  # halvings of the search window: far below a metre on any real route


def passed(
    plan: TripPlan,
    route: Corridor,
    along: Sequence[float],
    arrived: frozenset[int],
    before_xy: tuple[float, float],
    after_xy: tuple[float, float],
    gap_s: float,
    reach_m: float,
    speed_mps: float,
    tolerance_m: float,
) -> list[int]:
    """Plan indices (in visiting order) of the stops passed between the two positions;
    ``along`` is each stop's position along ``route`` (``deviation.route.stops_along``)."""
    lo = max(
        (along[k] - st.radius_m for k, st in enumerate(plan.stops) if st.stop_id in arrived),
        default=0.0,
    )
    start = _earliest(route, before_xy, max(lo, 0.0), route.length_m, reach_m, tolerance_m)
    if start is None:
        return []
    hi = min(start + max(gap_s, 0.0) * speed_mps, route.length_m)
    end = _earliest(route, after_xy, start, hi, reach_m, tolerance_m)
    if end is None:
        return []
    return [
        k
        for k, st in enumerate(plan.stops)
        if st.stop_id not in arrived and start - st.radius_m < along[k] <= end - st.radius_m
    ]


def _earliest(
    route: Corridor, xy: tuple[float, float], lo: float, hi: float, reach: float, tol: float
) -> float | None:
    """The earliest position along ``route`` in [lo, hi] within ``tol`` of the nearest
    distance there (None: nothing within ``reach``): the nearest of a shrinking window
    [lo, h], by bisection on h, since that distance only grows as h falls."""
    if not lo <= hi:
        return None
    best, at = _nearest(route, xy, lo, hi)
    if not best <= reach:
        return None
    bound, top = best + tol, hi
    low = lo
    for _ in range(_STEPS):
        mid = (low + top) / 2
        d, a = _nearest(route, xy, lo, mid)
        if d <= bound:
            top, at = mid, a
        else:
            low = mid
    return at


def _nearest(route: Corridor, xy: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
    d, a = distances(route, [xy[0]], [xy[1]], lo_m=lo, hi_m=hi)
    return float(d[0]), float(a[0])
