"""Route deviation: distance to the planned route's *segments* and a debounced alert.

The worker builds a ``deviation.route.Corridor`` once per plan, measures a whole batch of
fixes with ``distances_for`` (a numba kernel, no geometry objects), then calls ``step``
per fix.

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
from dataclasses import dataclass, replace

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from deviation.model import Event, Phase, Sample
from deviation.plan import PlannedStop
from deviation.route import Corridor, distances

__all__ = [
    "KIND",
    "CorridorParams",
    "CorridorState",
    "distances_before_departure",
    "distances_for",
    "extra_time_s",
    "fast_forward",
    "step",
    "window",
]

KIND = "route_deviation"
_F64 = NDArray[np.float64]


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
    if home.all():  # waiting at the depot, or leaving it: one window for every fix
        return distances(corridor, x, y, *window(0.0, 0.0, params))
    start = t[0] if since_s is None else min(since_s, float(t[0]))
    if not home.any():
        return distances(corridor, x, y, *window(0.0, float(np.max(t)) - start, params))
    dist = np.full(t.shape, np.nan)
    along = np.full(t.shape, np.nan)
    lo, hi = window(0.0, 0.0, params)
    dist[home], along[home] = distances(corridor, x[home], y[home], lo, hi)
    away = ~home
    seen = np.where(home, t, -np.inf)
    last_home = np.maximum(np.maximum.accumulate(seen), start)
    lo, hi = window(0.0, float(np.max(t[away] - last_home[away])), params)
    dist[away], along[away] = distances(corridor, x[away], y[away], lo, hi)
    return dist, along


def fast_forward(
    state: CorridorState,
    t_s: _F64,
    dist: _F64 | None,
    along: _F64 | None,
    params: CorridorParams = CorridorParams(),
) -> tuple[CorridorState, int]:
    """(state, n): with no incident open, ``step`` over fixes on the route (finite,
    within ``corridor_m``) only moves progress; this is the same fold over the first n
    such fixes of a batch (``distances_for``'s). The caller steps the rest."""
    if dist is None or along is None:
        return state, len(t_s)  # no route: every distance is NaN and step changes nothing
    if state.is_open:
        return state, 0
    start = math.nan if state.progress_m is None else state.progress_m
    n, prog = _on_route(dist, along, float(params.corridor_m), float(params.back_m), start)
    if n == 0:
        return state, 0
    return CorridorState(progress_m=prog, progress_t_s=float(t_s[n - 1])), n


@njit(cache=True)
def _on_route(
    dist: _F64, along: _F64, corridor_m: float, back_m: float, prog: float
) -> tuple[int, float]:  # pragma: no cover - compiled; the same code runs under NUMBA_DISABLE_JIT
    """(n, progress): the leading fixes within ``corridor_m`` of the route (finite), and
    the progress folded over them from ``prog`` (NaN: none yet)."""
    for i in range(dist.shape[0]):
        d, a = dist[i], along[i]
        if not (math.isfinite(d) and math.isfinite(a) and d <= corridor_m):
            return i, prog
        prog = a if math.isnan(prog) else max(a, prog - back_m)
    return dist.shape[0], prog


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
