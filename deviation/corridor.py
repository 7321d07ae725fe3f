"""Route deviation: distance to the planned route's *segments* and a debounced alert.

The worker builds a ``Corridor`` once per plan, measures a whole batch of fixes with
``distances_for`` (a numba kernel, no geometry objects), then calls ``step`` per fix.

Which part of the route: routes come back past where they went out (an out-and-back
street, a loop whose return leg runs near the outbound one), so the distance to the
*whole* route would call a vehicle on a detour close to a leg it will drive an hour later.
The state therefore keeps the vehicle's *progress* (the along-route position of its last
fix within the corridor) and fixes are measured only against the part of the route it can
plausibly be on: from ``back_m`` behind that progress to ``ahead_m`` plus ``max_speed_mps``
× the time since, ahead of it (``window``). Without progress (trip start, a re-plan) the
whole route counts. Off-route fixes never move progress, so a long detour keeps being
measured against the leg it left; after a long silence the window has grown enough to find
the vehicle far ahead. A detour long enough for the window to reach the return leg is
measured against it too: by then the vehicle could have driven there.

Rules of the alert (kind ``route_deviation``, key ``""``):

- *beyond* means farther than ``corridor_m``. An incident opens once the vehicle has been
  beyond for ``min_s`` seconds or ``min_fixes`` consecutive fixes, whichever comes first;
  the ``open`` event is stamped at the first fix beyond. Before it opens, any fix within
  ``corridor_m`` ends the run, so an excursion that returns in time, and jitter about the
  edge, raise nothing.
- Once open, the incident closes only at a fix within ``clear_m`` (hysteresis): a fix
  between ``clear_m`` and ``corridor_m`` neither opens nor closes.
- ``update`` events while open: when the max distance has grown by ``update_grow_m`` since
  the last event, or ``update_every_s`` after it (fresh extra-time figures, bounded volume).
- A fix whose distance is NaN (no route) changes nothing.
- Re-plan: the state does not hold the route, so the worker swaps the ``Corridor`` and
  keeps ``state.replanned()`` (the incident, progress forgotten). An open incident stays
  one incident: it closes at the first fix within ``clear_m`` of the new route (a re-plan
  from the vehicle's position closes it at once, the detour being the plan now) and stays
  open while the vehicle is off the new route too.

``extra_time_s`` is the delay to the next stop: the faster of heading back to the route
(``distance × road_factor``) and driving straight to the stop (``straight line ×
road_factor`` minus the planned remaining route from the nearest route point), at the
plan's average speed, floored at 0. Without a next stop it is the way back to the route.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from deviation.errors import RouteError
from deviation.plan import PlannedStop
from geofence.model import Event, Phase, Sample

__all__ = [
    "KIND",
    "Corridor",
    "CorridorParams",
    "CorridorState",
    "distances",
    "distances_for",
    "extra_time_s",
    "step",
    "stops_along",
    "window",
]

KIND = "route_deviation"
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


@dataclass(frozen=True, slots=True)
class CorridorParams:
    """Defaults equal the ``corridor_*`` settings and ``TripPlan``'s speed defaults."""

    corridor_m: float = 300.0
    clear_m: float = 200.0
    min_s: float = 60.0
    min_fixes: int = 5
    update_grow_m: float = 100.0
    update_every_s: float = 300.0
    evidence_max: int = 20
    avg_speed_kmh: float = 30.0
    road_factor: float = 1.3
    back_m: float = 500.0  # window behind progress: GPS noise, a vehicle backing up a little
    ahead_m: float = 2000.0  # window ahead of progress, plus max_speed_mps x time since it
    max_speed_mps: float = 40.0  # 144 km/h: a vehicle that went quiet or sped is still found

    def __post_init__(self) -> None:
        if not 0 <= self.clear_m <= self.corridor_m:
            raise ValueError(
                f"corridor clear distance {self.clear_m} m must be between 0 and the"
                f" corridor {self.corridor_m} m: lower corridor_clear_m"
            )
        if self.avg_speed_kmh <= 0:
            raise ValueError("avg_speed_kmh must be positive: fix the plan's average speed")
        if min(self.back_m, self.ahead_m, self.max_speed_mps) < 0:
            raise ValueError("corridor back_m, ahead_m and max_speed_mps must not be negative")


Fix = tuple[float, float, float, float]  # t_s, lat, lon, distance_m


@dataclass(frozen=True, slots=True)
class CorridorState:
    """A run of fixes beyond the corridor (pending) or an open incident, and the vehicle's
    progress along the route (which part of the route its next fixes are measured to)."""

    out_since_s: float | None = None  # first fix beyond of the run / incident
    out_fixes: int = 0  # consecutive fixes beyond while pending
    is_open: bool = False
    max_distance_m: float = 0.0
    reported_max_m: float = 0.0  # max distance at the last open/update event
    last_event_s: float = 0.0
    evidence: tuple[Fix, ...] = ()
    progress_m: float | None = None  # along-route position of the last fix within corridor_m
    progress_t_s: float | None = None  # and its time; None: unknown, the whole route counts

    def replanned(self) -> CorridorState:
        """The same incident with progress forgotten: call it when the route changes, since
        a position along the old route means nothing on the new one."""
        return replace(self, progress_m=None, progress_t_s=None)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (the worker keeps it in jsonb)."""
        return {
            "out_since_s": self.out_since_s,
            "out_fixes": self.out_fixes,
            "is_open": self.is_open,
            "max_distance_m": self.max_distance_m,
            "reported_max_m": self.reported_max_m,
            "last_event_s": self.last_event_s,
            "evidence": [list(f) for f in self.evidence],
            "progress_m": self.progress_m,
            "progress_t_s": self.progress_t_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CorridorState:
        """The inverse of ``to_json``; states saved before progress existed have none."""
        since = data["out_since_s"]
        prog, prog_t = data.get("progress_m"), data.get("progress_t_s")
        return cls(
            out_since_s=None if since is None else float(since),
            out_fixes=int(data["out_fixes"]),
            is_open=bool(data["is_open"]),
            max_distance_m=float(data["max_distance_m"]),
            reported_max_m=float(data["reported_max_m"]),
            last_event_s=float(data["last_event_s"]),
            evidence=tuple(
                (float(f[0]), float(f[1]), float(f[2]), float(f[3])) for f in data["evidence"]
            ),
            progress_m=None if prog is None else float(prog),
            progress_t_s=None if prog_t is None else float(prog_t),
        )


def window(
    progress_m: float | None, elapsed_s: float, params: CorridorParams = CorridorParams()
) -> tuple[float, float]:
    """(lo_m, hi_m): the part of the route a vehicle can be on ``elapsed_s`` after it was
    at ``progress_m``; the whole route when progress is unknown. An unknown (NaN) elapsed
    time leaves the window open ahead."""
    if progress_m is None:
        return -math.inf, math.inf
    p = params
    ahead = p.ahead_m + max(0.0, elapsed_s) * p.max_speed_mps
    if math.isnan(elapsed_s):
        ahead = math.inf
    return progress_m - p.back_m, progress_m + ahead


def distances_for(
    state: CorridorState,
    corridor: Corridor,
    t_s: ArrayLike,
    xs: ArrayLike,
    ys: ArrayLike,
    params: CorridorParams = CorridorParams(),
) -> tuple[_F64, _F64]:
    """``distances`` for a batch about to be stepped from ``state``: one window for the
    whole batch, from the state's progress and the latest fix's time. It is as wide as the
    last fix needs, wider than the earlier fixes need: that only lets them be found a little
    farther ahead, never misses the part of the route they are on."""
    t = np.asarray(t_s, dtype=np.float64).reshape(-1)
    elapsed = 0.0
    if state.progress_t_s is not None and t.size:
        elapsed = float(t.max()) - state.progress_t_s
    lo, hi = window(state.progress_m, elapsed, params)
    # a progress past the end (a stale one on a shorter route) still measures the end
    return distances(corridor, xs, ys, min(lo, corridor.length_m), hi)


def distances_before_departure(
    corridor: Corridor,
    t_s: ArrayLike,
    xs: ArrayLike,
    ys: ArrayLike,
    at_depot: ArrayLike,
    since_s: float | None,
    params: CorridorParams = CorridorParams(),
) -> tuple[_F64, _F64]:
    """``distances`` for a batch of a vehicle that has not left its depot yet, where the
    route's start and end meet. A fix at the depot is at the start (progress 0); a fix
    outside it is at most as far along as it could have driven since the latest depot fix
    before it (else since ``since_s``, else the batch's first fix). Otherwise a long wait
    at the depot in one batch would latch progress onto the return leg's end."""
    t = np.asarray(t_s, dtype=np.float64).reshape(-1)
    x = np.asarray(xs, dtype=np.float64).reshape(-1)
    y = np.asarray(ys, dtype=np.float64).reshape(-1)
    home = np.asarray(at_depot, dtype=np.bool_).reshape(-1)
    dist = np.full(t.shape, np.nan)
    along = np.full(t.shape, np.nan)
    if home.any():
        lo, hi = window(0.0, 0.0, params)
        dist[home], along[home] = distances(corridor, x[home], y[home], lo, hi)
    away = ~home
    if away.any():
        start = t[0] if since_s is None else min(since_s, float(t[0]))
        seen = np.where(home, t, -np.inf)
        last_home = np.maximum(np.maximum.accumulate(seen), start)
        lo, hi = window(0.0, float(np.max(t[away] - last_home[away])), params)
        dist[away], along[away] = distances(corridor, x[away], y[away], lo, hi)
    return dist, along


def extra_time_s(
    sample: Sample,
    distance_m: float,
    along_m: float,
    next_stop: PlannedStop | None,
    stop_along_m: float | None,
    params: CorridorParams,
) -> float:
    """Estimated extra seconds to the next stop caused by being off the route."""
    mps = params.avg_speed_kmh / 3.6
    rejoin = distance_m * params.road_factor / mps
    if next_stop is None or stop_along_m is None or not math.isfinite(along_m):
        return max(0.0, rejoin)
    straight = math.hypot(next_stop.x_m - sample.x_m, next_stop.y_m - sample.y_m)
    direct = straight * params.road_factor / mps - max(0.0, stop_along_m - along_m) / mps
    return max(0.0, min(rejoin, direct))


def _event(
    phase: Phase,
    t_s: float,
    st: CorridorState,
    sample: Sample,
    distance_m: float,
    along_m: float,
    next_stop: PlannedStop | None,
    stop_along_m: float | None,
    params: CorridorParams,
) -> Event:
    started = st.out_since_s if st.out_since_s is not None else sample.t_s
    extra = extra_time_s(sample, distance_m, along_m, next_stop, stop_along_m, params)
    data = {
        "distance_m": round(distance_m, 1),
        "max_distance_m": round(st.max_distance_m, 1),
        "started_s": started,
        "duration_s": sample.t_s - started,
        "extra_time_s": round(extra, 1),
        "stop_id": None if next_stop is None else next_stop.stop_id,
        "evidence": [
            {"t_s": f[0], "lat": f[1], "lon": f[2], "distance_m": round(f[3], 1)}
            for f in st.evidence
        ],
    }
    return Event(KIND, phase, t_s, "", data)


def step(
    state: CorridorState,
    sample: Sample,
    distance_m: float,
    along_m: float,
    next_stop: PlannedStop | None,
    params: CorridorParams = CorridorParams(),
    *,
    stop_along_m: float | None = None,
) -> tuple[CorridorState, list[Event]]:
    """One fix with its distance and along-route position (from ``distances_for``); a fix
    within ``corridor_m`` moves progress. ``stop_along_m`` is the next stop's position from
    ``stops_along`` (better extra time)."""
    if not math.isfinite(distance_m):
        return state, []
    p = params
    on_route = distance_m <= p.corridor_m and math.isfinite(along_m)
    prog, prog_t = state.progress_m, state.progress_t_s
    if on_route:  # progress may slip back by back_m at most: one noisy fix cannot undo it
        prog = along_m if prog is None else max(along_m, prog - p.back_m)
        prog_t = sample.t_s
    args = (sample, distance_m, along_m, next_stop, stop_along_m, p)
    if state.is_open:
        if distance_m <= p.clear_m:
            idle = CorridorState(progress_m=prog, progress_t_s=prog_t)
            return idle, [_event("close", sample.t_s, state, *args)]
        periodic = sample.t_s - state.last_event_s >= p.update_every_s
        if distance_m <= state.max_distance_m and not periodic:
            if on_route:
                return replace(state, progress_m=prog, progress_t_s=prog_t), []
            return state, []  # the common case while open: nothing changes
        st = replace(
            state,
            max_distance_m=max(state.max_distance_m, distance_m),
            progress_m=prog,
            progress_t_s=prog_t,
        )
        grown = st.max_distance_m >= st.reported_max_m + p.update_grow_m
        if grown or periodic:
            st = replace(st, reported_max_m=st.max_distance_m, last_event_s=sample.t_s)
            return st, [_event("update", sample.t_s, st, *args)]
        return st, []
    if distance_m <= p.corridor_m:
        return CorridorState(progress_m=prog, progress_t_s=prog_t), []
    since = sample.t_s if state.out_since_s is None else state.out_since_s
    fix = (sample.t_s, sample.lat, sample.lon, distance_m)
    st = CorridorState(
        out_since_s=since,
        out_fixes=state.out_fixes + 1,
        max_distance_m=max(state.max_distance_m, distance_m),
        evidence=(*state.evidence, fix)[: p.evidence_max],
        progress_m=prog,
        progress_t_s=prog_t,
    )
    if sample.t_s - since >= p.min_s or st.out_fixes >= p.min_fixes:
        st = replace(st, is_open=True, reported_max_m=st.max_distance_m, last_event_s=sample.t_s)
        return st, [_event("open", since, st, *args)]
    return st, []
