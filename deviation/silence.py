"""Silent device (issue 6, rule 6): no fix for ``silent_after_s`` while the vehicle's trip
is active. Absence of data is the news here, so the rule is driven by the clock (``tick``)
and closed by the next fix (``step``). The stops rule only sees fixes, so silence is never
mistaken for a stop.

Silence is measured from the later of the last fix and the first tick that saw the trip
active: a device that has not reported since the trip started is silent too, and a fix
from before the trip does not make a trip silent the moment it starts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deviation.model import Event, Sample

__all__ = ["SilenceParams", "SilenceState", "fast_forward", "step", "tick"]


@dataclass(frozen=True, slots=True)
class SilenceParams:
    """Threshold; the default equals the ``silent_after_s`` setting."""

    silent_after_s: float = 300.0


@dataclass(frozen=True, slots=True)
class SilenceState:
    active_since_s: float | None = None  # first tick that saw the trip active
    silent_from_s: float | None = None  # set while the alert is open: silence began here
    last_fix_s: float | None = None  # the last fix before the silence (None: none yet)


def tick(
    state: SilenceState,
    now_s: float,
    last_fix_s: float | None,
    trip_active: bool,
    params: SilenceParams = SilenceParams(),
) -> tuple[SilenceState, list[Event]]:
    """Open once silence reaches ``silent_after_s`` (stamped when it did); close if the trip
    stops being active while silent."""
    if not trip_active:
        events = []
        if state.silent_from_s is not None:
            data = {
                "last_fix_s": state.last_fix_s,
                "silent_s": now_s - state.silent_from_s,
                "reason": "trip_inactive",
            }
            events.append(Event("silent_device", "close", now_s, data=data))
        return SilenceState(), events
    active = now_s if state.active_since_s is None else state.active_since_s
    state = replace(state, active_since_s=active)
    if state.silent_from_s is not None:
        return state, []
    since = active if last_fix_s is None else max(active, last_fix_s)
    if now_s - since < params.silent_after_s:
        return state, []
    data = {"last_fix_s": last_fix_s, "silent_s": now_s - since}
    event = Event("silent_device", "open", since + params.silent_after_s, data=data)
    return replace(state, silent_from_s=since, last_fix_s=last_fix_s), [event]


def step(
    state: SilenceState,
    sample: Sample,
    params: SilenceParams = SilenceParams(),
    *,
    last_fix_s: float | None = None,
) -> tuple[SilenceState, list[Event]]:
    """The next fix ends the silence; ``silent_s`` is the gap it ended.

    A gap of ``silent_after_s`` or more that no tick saw while it lasted (fixes replayed or
    sent faster than the clock ticks) is reported when the fix that ends it arrives: an
    open and a close at once (``late: true``), so a replay finds the same incidents as
    live traffic. ``last_fix_s`` is the vehicle's previous fix time."""
    if state.silent_from_s is None:
        active = state.active_since_s
        if active is None or last_fix_s is None:
            return state, []
        since = max(active, last_fix_s)
        gap = sample.t_s - since
        if gap < params.silent_after_s:
            return state, []
        data: dict[str, Any] = {"last_fix_s": last_fix_s, "silent_s": gap, "late": True}
        opened = Event("silent_device", "open", since + params.silent_after_s, data=data)
        closed = Event("silent_device", "close", sample.t_s, data={**data, "reason": "fix"})
        return state, [opened, closed]
    ended: dict[str, Any] = {
        "last_fix_s": state.last_fix_s,
        "silent_s": sample.t_s - state.silent_from_s,
        "reason": "fix",
    }
    event = Event("silent_device", "close", sample.t_s, data=ended)
    return replace(state, silent_from_s=None, last_fix_s=None), [event]


def fast_forward(
    state: SilenceState,
    t_s: NDArray[np.float64],
    last_fix_s: float | None,
    params: SilenceParams = SilenceParams(),
) -> tuple[SilenceState, int]:
    """(state, n): stepping the first n fixes (times non-decreasing, ``last_fix_s`` the
    fix before them) provably says nothing, so ``state`` stands; step the rest. When not
    silent, that is every fix before the first gap since the trip became active reaching
    ``silent_after_s``."""
    if state.silent_from_s is not None:
        return state, 0
    active = state.active_since_s
    times = t_s.tolist()
    if active is None:
        return state, len(times)
    prev = last_fix_s
    for n, t in enumerate(times):  # step's own arithmetic, without its events
        if prev is not None and t - max(active, prev) >= params.silent_after_s:
            return state, n
        prev = t
    return state, len(times)
