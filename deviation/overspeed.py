"""Overspeed: one alert per episode of driving above the limit × tolerance.

Rules of the alert (kind ``overspeed``, key ``""``), after traccar's overspeed processor:

- *over* means ``speed_kmh > limit_kmh × tolerance``. An episode opens once the vehicle
  has been over continuously for ``min_s`` seconds (first to latest fix over); the ``open``
  event is stamped at the first fix over. A fix not over before then ends the run.
- End hysteresis: an open episode closes only after the speed has stayed at or under the
  threshold for ``end_s`` seconds (a short dip, or one noisy fix, is the same episode). The
  ``close`` event is stamped at the first fix back under; ``duration_s`` runs to it.
- ``update`` events when the max speed has grown by ``update_grow_kmh`` since the last one.
- Unknown speed (NaN) neither starts, continues nor ends anything: the fix is skipped.
- The limit and its source are the ones in force at the episode's first fix over; later
  fixes are judged against their own limit (the worker passes it per fix).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from deviation.model import Event, Phase, Sample

__all__ = ["KIND", "OverspeedParams", "OverspeedState", "fast_forward", "limit_for", "step"]

KIND = "overspeed"


def limit_for(
    zone_limits: Iterable[float], vehicle_limit: float | None, default: float
) -> tuple[float, str]:
    """(limit in km/h, source): the lowest speed-zone limit and the vehicle's own limit
    combine by min (a tie names the zone); neither → the default. Limits that are not
    positive finite numbers do not apply."""
    best, source = math.inf, "default"
    for z in zone_limits:
        if math.isfinite(z) and 0 < z < best:
            best, source = z, "zone"
    if vehicle_limit is not None and math.isfinite(vehicle_limit) and 0 < vehicle_limit < best:
        best, source = vehicle_limit, "vehicle"
    return (default, "default") if best == math.inf else (best, source)


@dataclass(frozen=True, slots=True)
class OverspeedParams:
    """Defaults equal the ``overspeed_*`` settings."""

    tolerance: float = 1.1
    min_s: float = 20.0
    end_s: float = 10.0
    update_grow_kmh: float = 10.0
    evidence_max: int = 20


Fix = tuple[float, float, float, float]  # t_s, lat, lon, speed_kmh


@dataclass(frozen=True, slots=True)
class OverspeedState:
    """A run over the threshold (pending) or an open episode."""

    over_since_s: float | None = None
    is_open: bool = False
    under_since_s: float | None = None  # open episode: first fix back under
    max_speed_kmh: float = 0.0
    reported_max_kmh: float = 0.0
    limit_kmh: float = 0.0
    source: str = ""
    evidence: tuple[Fix, ...] = ()


def _event(phase: Phase, t_s: float, end_s: float, st: OverspeedState, speed: float) -> Event:
    started = st.over_since_s if st.over_since_s is not None else t_s
    data = {
        "limit_kmh": st.limit_kmh,
        "source": st.source,
        "speed_kmh": round(speed, 1),
        "max_speed_kmh": round(st.max_speed_kmh, 1),
        "started_s": started,
        "duration_s": end_s - started,
        "evidence": [
            {"t_s": f[0], "lat": f[1], "lon": f[2], "speed_kmh": round(f[3], 1)}
            for f in st.evidence
        ],
    }
    return Event(KIND, phase, t_s, "", data)


def step(
    state: OverspeedState,
    sample: Sample,
    limit_kmh: float,
    source: str,
    params: OverspeedParams = OverspeedParams(),
) -> tuple[OverspeedState, list[Event]]:
    """One fix judged against the limit in force there (see ``limit_for``)."""
    v, t, p = sample.speed_kmh, sample.t_s, params
    if not math.isfinite(v):
        return state, []
    over = v > limit_kmh * p.tolerance
    if state.is_open:
        if not over:
            under = t if state.under_since_s is None else state.under_since_s
            if t - under >= p.end_s:
                return OverspeedState(), [_event("close", under, under, state, v)]
            return replace(state, under_since_s=under), []
        if v <= state.max_speed_kmh and state.under_since_s is None:
            return state, []  # the common case while open: nothing changes
        st = replace(state, under_since_s=None, max_speed_kmh=max(state.max_speed_kmh, v))
        if st.max_speed_kmh >= st.reported_max_kmh + p.update_grow_kmh:
            st = replace(st, reported_max_kmh=st.max_speed_kmh)
            return st, [_event("update", t, t, st, v)]
        return st, []
    if not over:
        return (OverspeedState() if state.over_since_s is not None else state), []
    fix = (t, sample.lat, sample.lon, v)
    if state.over_since_s is None:  # a new run: the limit in force at its first fix
        since, lim, src, top, evidence = t, limit_kmh, source, v, (fix,)[: p.evidence_max]
    else:
        since, lim, src = state.over_since_s, state.limit_kmh, state.source
        top, evidence = max(state.max_speed_kmh, v), (*state.evidence, fix)[: p.evidence_max]
    opened = t - since >= p.min_s
    st = OverspeedState(since, opened, None, top, top if opened else 0.0, lim, src, evidence)
    return st, [_event("open", since, t, st, v)] if opened else []


def fast_forward(
    state: OverspeedState,
    speed_kmh: NDArray[np.float64],
    limit_kmh: NDArray[np.float64] | float,
    params: OverspeedParams = OverspeedParams(),
) -> tuple[OverspeedState, int]:
    """(state, n): stepping the first n fixes (float64 speeds, the limit per fix or one
    for all) provably changes nothing, so ``state`` stands; step the rest. With no run or
    episode, that is every fix before the first one over its threshold (unknown speeds
    are skipped by ``step`` too)."""
    if state.over_since_s is not None or state.is_open:
        return state, 0
    over = speed_kmh > np.multiply(limit_kmh, params.tolerance)
    return state, (int(np.argmax(over)) if over.any() else len(speed_kmh))
