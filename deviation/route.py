"""A planned route as flat segment arrays, and the distance of fixes to it.

``Corridor`` holds the route's segments in projected metres; ``distances`` measures a
batch of fixes to the segments (not the vertices) within a stretch of the route, in one
numba kernel with no geometry objects; ``stops_along`` places the stops on the route.
``deviation.corridor`` decides which stretch and what a distance means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from deviation.errors import RouteError
from deviation.plan import PlannedStop

__all__ = ["Corridor", "distances", "stops_along"]

_F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Corridor:
    """A route polyline as segment arrays: start, direction, length, cumulative start."""

    ax: _F64
    ay: _F64
    dx: _F64
    dy: _F64
    len2: _F64  # squared segment length (0 for a repeated vertex)
    seg_m: _F64  # segment length
    cum_m: _F64  # along-route position of each segment's start
    length_m: float

    @classmethod
    def from_xy(cls, route_xy: Sequence[tuple[float, float]] | ArrayLike) -> Corridor:
        """Segments of a metric polyline; a single point is a zero-length route."""
        pts = np.asarray(route_xy, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0:
            raise RouteError("the planned route is empty: plan the trip before measuring it")
        if not np.isfinite(pts).all():
            raise RouteError("the planned route has non-finite coordinates: re-plan the trip")
        if len(pts) == 1:
            pts = np.vstack([pts, pts])
        a, b = pts[:-1], pts[1:]
        d = b - a
        len2 = (d * d).sum(axis=1)
        seg = np.sqrt(len2)
        cum = np.concatenate([[0.0], np.cumsum(seg)[:-1]])
        return cls(
            np.ascontiguousarray(a[:, 0]),
            np.ascontiguousarray(a[:, 1]),
            np.ascontiguousarray(d[:, 0]),
            np.ascontiguousarray(d[:, 1]),
            len2,
            seg,
            cum,
            float(seg.sum()),
        )


@njit(cache=True)
def _nearest(
    ax: _F64,
    ay: _F64,
    dx: _F64,
    dy: _F64,
    len2: _F64,
    seg_m: _F64,
    cum_m: _F64,
    lo: float,
    hi: float,
    xs: _F64,
    ys: _F64,
    dist: _F64,
    along: _F64,
) -> None:  # pragma: no cover - compiled; the same code runs under NUMBA_DISABLE_JIT
    # segments whose span [cum, cum + seg] meets the window: a contiguous run (cum sorted)
    j0, j1 = 0, cum_m.shape[0]
    while j0 < j1:  # first segment ending at or after lo
        mid = (j0 + j1) // 2
        if cum_m[mid] + seg_m[mid] < lo:
            j0 = mid + 1
        else:
            j1 = mid
    j1 = np.searchsorted(cum_m, hi, side="right")
    for i in range(xs.shape[0]):
        best = np.inf
        best_along = np.nan
        for j in range(j0, j1):
            # the part of segment j inside [lo, hi], as projection parameters
            t_lo = 0.0
            t_hi = 1.0
            if seg_m[j] > 0.0:
                t_lo = max((lo - cum_m[j]) / seg_m[j], 0.0)
                t_hi = min((hi - cum_m[j]) / seg_m[j], 1.0)
            rx = xs[i] - ax[j]
            ry = ys[i] - ay[j]
            t = t_lo
            if len2[j] > 0.0:
                t = (rx * dx[j] + ry * dy[j]) / len2[j]
                t = min(max(t, t_lo), t_hi)
            ex = rx - t * dx[j]
            ey = ry - t * dy[j]
            d2 = ex * ex + ey * ey
            if d2 < best:  # strict: a tie keeps the earlier point along the route
                best = d2
                best_along = min(max(cum_m[j] + t * seg_m[j], lo), hi)
        if best == np.inf:
            dist[i] = np.nan
            along[i] = np.nan
        else:
            dist[i] = math.sqrt(best)
            along[i] = best_along


def distances(
    corridor: Corridor,
    xs: ArrayLike,
    ys: ArrayLike,
    lo_m: float = -math.inf,
    hi_m: float = math.inf,
) -> tuple[_F64, _F64]:
    """(distance to the nearest route point, its along-route position) for every fix, in
    metres, counting only the route between ``lo_m`` and ``hi_m`` along it (the whole
    route by default); NaN for a fix with a NaN coordinate or a window off the route."""
    x = np.ascontiguousarray(xs, dtype=np.float64).reshape(-1)
    y = np.ascontiguousarray(ys, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"xs and ys differ in length ({x.size} vs {y.size})")
    lo, hi = float(lo_m), float(hi_m)
    if not lo <= hi:
        raise ValueError(f"route window [{lo}, {hi}] m is empty: pass lo_m <= hi_m")
    c = corridor
    dist = np.empty_like(x)
    along = np.empty_like(x)
    _nearest(c.ax, c.ay, c.dx, c.dy, c.len2, c.seg_m, c.cum_m, lo, hi, x, y, dist, along)
    return dist, along


def stops_along(corridor: Corridor, stops: Sequence[PlannedStop]) -> tuple[float, ...]:
    """Along-route position of each stop, in visiting order: each is looked for at or
    after the previous one, so a route that passes a place twice finds the right pass."""
    c = corridor
    out: list[float] = []
    prev = 0.0
    for stop in stops:
        rx, ry = stop.x_m - c.ax, stop.y_m - c.ay
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(c.len2 > 0, (rx * c.dx + ry * c.dy) / c.len2, 0.0)
            t_min = np.where(c.seg_m > 0, (prev - c.cum_m) / c.seg_m, 0.0)
        t = np.clip(np.maximum(t, t_min), 0.0, 1.0)
        d2 = (rx - t * c.dx) ** 2 + (ry - t * c.dy) ** 2
        d2[c.cum_m + c.seg_m < prev] = np.inf
        j = int(np.argmin(d2))
        prev = float(c.cum_m[j] + t[j] * c.seg_m[j])
        out.append(prev)
    return tuple(out)
