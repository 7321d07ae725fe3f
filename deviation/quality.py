"""Telemetry quality: which fixes the other rules may see, and per-reason incidents.

``check`` runs first on every fix and says whether the fix may be fed to the other rules
(which expect increasing fix times). Reasons (kind ``telemetry``, key = the reason):

- ``invalid`` (not accepted): the device says it has no fix, or a time or coordinate is
  not finite. Routine (tunnels, cold start), so an ``info`` event, counted, no alert.
- ``future`` (not accepted): fix time more than ``future_s`` after its receipt.
- ``out_of_order`` (not accepted): fix time at or before the last accepted fix's.
- ``impossible_jump`` (not accepted): implied speed from the last accepted fix above
  ``max_implied_speed_kmh``.
- ``stale`` (accepted): received more than ``stale_s`` after its time; true but late.

Every occurrence yields exactly one event carrying ``data["reason"]`` and ``data["count"]``
(occurrences in the incident, or lifetime for ``invalid``), so the worker counts
occurrences by counting events. Per reason, the first occurrence opens an incident,
later ones update it, and ``quiet_s`` without one closes it (checked on the next fix or
by ``tick``). Quality events are stamped with the receive time (the fix time when the
receipt is unknown), because a fix time is exactly what may be wrong here.

A rejected jump keeps the last good fix as the anchor, so one wild fix does not poison
the next. If the anchor itself was the bad one, every later fix would be rejected: so
``reanchor_fixes`` consecutive rejected fixes that are plausible from one another move
the anchor, and the last of them is accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from deviation.model import Event, Phase, Sample

__all__ = [
    "KIND",
    "REASONS",
    "QualityParams",
    "QualityState",
    "check",
    "check_batch",
    "tick",
]

KIND = "telemetry"
_F64 = NDArray[np.float64]
REASONS = ("future", "impossible_jump", "invalid", "out_of_order", "stale")


@dataclass(frozen=True, slots=True)
class QualityParams:
    """Defaults equal the ``max_implied_speed_kmh``, ``stale_fix_s``, ``future_fix_s``
    settings."""

    max_implied_speed_kmh: float = 300.0
    stale_s: float = 3600.0
    future_s: float = 300.0
    quiet_s: float = 600.0
    reanchor_fixes: int = 3


Point = tuple[float, float, float]  # t_s, x_m, y_m
Incident = tuple[str, int, float]  # reason, count, last occurrence (receive time)


@dataclass(frozen=True, slots=True)
class QualityState:
    """The last accepted fix, a re-anchor candidate, and the open incidents."""

    last: Point | None = None
    candidate: Point | None = None  # last rejected jump, if the streak may re-anchor
    streak: int = 0  # consecutive rejected jumps plausible from one another
    incidents: tuple[Incident, ...] = ()  # open, sorted by reason
    invalid_count: int = 0


def _fin(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _times(t: float, rcv: float) -> dict[str, float | None]:
    return {"fix_t_s": _fin(t), "received_s": _fin(rcv)}


def _kmh(a: Point, b: Point) -> float:
    dt = b[0] - a[0]
    return math.inf if dt <= 0 else math.hypot(b[1] - a[1], b[2] - a[2]) / dt * 3.6


def tick(
    state: QualityState, now_s: float, params: QualityParams = QualityParams()
) -> tuple[QualityState, list[Event]]:
    """Close the incidents quiet for ``quiet_s`` at ``now_s`` (receive-time clock)."""
    quiet = [i for i in state.incidents if now_s - i[2] >= params.quiet_s]
    if not quiet:
        return state, []
    events = [
        Event(KIND, "close", now_s, r, {"reason": r, "count": n, "last_s": s}) for r, n, s in quiet
    ]
    return replace(state, incidents=tuple(i for i in state.incidents if i not in quiet)), events


def _flag(
    state: QualityState, reason: str, now: float, data: dict[str, Any]
) -> tuple[QualityState, Event]:
    found = next((i for i in state.incidents if i[0] == reason), None)
    count = 1 if found is None else found[1] + 1
    phase: Phase = "open" if found is None else "update"
    rest = [i for i in state.incidents if i[0] != reason]
    incidents = tuple(sorted([*rest, (reason, count, now)]))
    event = Event(KIND, phase, now, reason, {"reason": reason, "count": count, **data})
    return replace(state, incidents=incidents), event


def check(
    state: QualityState, sample: Sample, params: QualityParams = QualityParams()
) -> tuple[QualityState, list[Event], bool]:
    """(state, events, accepted): accepted fixes have strictly increasing times and may go
    to the other rules; the events are this fix's findings and any quiet incident closed."""
    p, t, rcv = params, sample.t_s, sample.received_s
    last = state.last
    now = rcv if math.isfinite(rcv) else t if math.isfinite(t) else last[0] if last else 0.0
    events: list[Event] = []
    if state.incidents:
        state, events = tick(state, now, p)
    # one sum tests all five for NaN/inf (coordinates near 1e308 are nonsense anyway)
    if not sample.valid or not math.isfinite(t + sample.lat + sample.lon + sample.x_m + sample.y_m):
        n = state.invalid_count + 1
        info = {"reason": "invalid", "count": n, **_times(t, rcv)}
        events.append(Event(KIND, "info", now, "invalid", info))
        return replace(state, invalid_count=n), events, False
    lag = rcv - t  # NaN when the receipt is unknown: neither future nor stale
    if lag < -p.future_s:
        state, ev = _flag(state, "future", now, {**_times(t, rcv), "lag_s": lag})
        return state, [*events, ev], False
    here = (t, sample.x_m, sample.y_m)
    if last is not None:
        if t <= last[0]:
            data = {**_times(t, rcv), "last_t_s": last[0]}
            state, ev = _flag(state, "out_of_order", now, data)
            return state, [*events, ev], False
        if (kmh := _kmh(last, here)) > p.max_implied_speed_kmh:
            cand = state.candidate
            plausible = cand is not None and _kmh(cand, here) <= p.max_implied_speed_kmh
            streak = state.streak + 1 if plausible else 1
            if streak < p.reanchor_fixes:
                state = replace(state, candidate=here, streak=streak)
                data = {**_times(t, rcv), "implied_speed_kmh": _fin(round(kmh, 1))}
                state, ev = _flag(state, "impossible_jump", now, data)
                return state, [*events, ev], False
    state = QualityState(here, None, 0, state.incidents, state.invalid_count)
    if lag > p.stale_s:
        state, ev = _flag(state, "stale", now, {**_times(t, rcv), "lag_s": lag})
        events.append(ev)
    return state, events, True


@njit(cache=True)
def _clean(
    last_t: float,
    last_x: float,
    last_y: float,
    t: _F64,
    x: _F64,
    y: _F64,
    rcv: _F64,
    ok: NDArray[np.bool_],
    future_s: float,
    stale_s: float,
    max_kmh: float,
) -> bool:  # pragma: no cover - compiled; the same code runs under NUMBA_DISABLE_JIT
    """True when ``check`` would accept every fix without a finding."""
    for i in range(t.shape[0]):
        if not ok[i] or not math.isfinite(t[i] + x[i] + y[i]) or t[i] <= last_t:
            return False
        lag = rcv[i] - t[i]  # NaN compares False: neither future nor stale
        if lag < -future_s or lag > stale_s:
            return False
        if math.hypot(x[i] - last_x, y[i] - last_y) / (t[i] - last_t) * 3.6 > max_kmh:
            return False
        last_t, last_x, last_y = t[i], x[i], y[i]
    return True


def check_batch(
    state: QualityState,
    t_s: ArrayLike,
    x_m: ArrayLike,
    y_m: ArrayLike,
    received_s: ArrayLike,
    valid: ArrayLike | None = None,
    params: QualityParams = QualityParams(),
) -> tuple[QualityState, list[Event], NDArray[np.bool_]]:
    """``check`` over one device's batch at once: (state, events, accepted mask), equal to
    folding ``check`` over the fixes. A clean batch (nothing to flag, no open incident)
    costs one compiled pass and one new state instead of one per fix; any other
    batch goes fix by fix (lat/lon are not needed: x/y carry the same finiteness)."""
    p = params
    t = np.ascontiguousarray(t_s, np.float64).reshape(-1)
    x = np.ascontiguousarray(x_m, np.float64).reshape(-1)
    y = np.ascontiguousarray(y_m, np.float64).reshape(-1)
    rcv = np.ascontiguousarray(received_s, np.float64).reshape(-1)
    every = np.ones(t.size, np.bool_)
    ok = every if valid is None else np.ascontiguousarray(valid, np.bool_).reshape(-1)
    if t.size and not state.incidents and state.last is not None:
        lt, lx, ly = state.last
        args = (p.future_s, p.stale_s, p.max_implied_speed_kmh)
        if _clean(lt, lx, ly, t, x, y, rcv, ok, *args):
            last = (float(t[-1]), float(x[-1]), float(y[-1]))
            return QualityState(last, None, 0, (), state.invalid_count), [], every
    events: list[Event] = []
    accepted = np.zeros(t.size, np.bool_)
    for i in range(t.size):
        sample = Sample(
            float(t[i]),
            0.0,
            0.0,
            float(x[i]),
            float(y[i]),
            valid=bool(ok[i]),
            received_s=float(rcv[i]),
        )
        state, ev, accepted[i] = check(state, sample, p)
        events += ev
    return state, events, accepted
