"""Stops a vehicle passed while its tracker was silent.

A fix after a gap of ``max_gap_s`` or more may find the vehicle well down its route:
it drove to a stop, served it and left without a fix. Its progress along the planned
route shows which stops it passed, so they are not left waiting to be arrived at
(every later arrival would be out of sequence, and ETAs would send the van back).

Both ends of the gap are placed on the route: the last fix before it no earlier than
the last stop the vehicle arrived at (a route passing one place twice finds the right
pass), the first fix after it no earlier than that. A stop not arrived at whose
position along the route lies beyond the first and at least its radius short of the
second was passed. Either fix farther than ``reach_m`` from the route says nothing of
progress, and nothing is inferred.
"""

from __future__ import annotations

from collections.abc import Sequence

from deviation.plan import TripPlan
from deviation.route import Corridor, distances

__all__ = ["passed"]


def passed(
    plan: TripPlan,
    route: Corridor,
    along: Sequence[float],
    arrived: frozenset[int],
    before_xy: tuple[float, float],
    after_xy: tuple[float, float],
    reach_m: float,
) -> list[int]:
    """Plan indices (in visiting order) of the stops passed between the two positions;
    ``along`` is each stop's position along ``route`` (``deviation.route.stops_along``)."""
    lo = max(
        (along[k] - st.radius_m for k, st in enumerate(plan.stops) if st.stop_id in arrived),
        default=0.0,
    )
    d0, a0 = distances(route, [before_xy[0]], [before_xy[1]], lo_m=max(lo, 0.0))
    if not d0[0] <= reach_m:
        return []
    d1, a1 = distances(route, [after_xy[0]], [after_xy[1]], lo_m=float(a0[0]))
    if not d1[0] <= reach_m:
        return []
    start, end = float(a0[0]), float(a1[0])
    return [
        k
        for k, st in enumerate(plan.stops)
        if st.stop_id not in arrived and start - st.radius_m < along[k] <= end - st.radius_m
    ]
