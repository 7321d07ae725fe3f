"""Runs of a vehicle standing still: unplanned stops and idling (issue 6, rule 6), and
the thresholds of ``deviation.stops``, which steps them beside its stop visits.

A run starts at a stopped fix and is kept as its first fix's place and time; it becomes
an incident once it has lasted long enough, and ends when the vehicle moves off (or,
for idling, the ignition goes off). A gap of ``max_gap_s`` or more restarts a run not
yet reported: time without fixes is never evidence of standing still.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from deviation.model import Event, Sample

__all__ = ["Still", "StopParams", "idling", "inside", "unplanned"]


@dataclass(frozen=True, slots=True)
class StopParams:
    """Thresholds; defaults equal the settings of the same names."""

    arrival_dwell_s: float = 60.0  # inside a stop (or back at the depot) this long: arrived
    min_outside_s: float = 30.0  # outside this long after arrival: departed (border jitter)
    stop_speed_kmh: float = 3.0  # below this a fix counts as stopped
    unplanned_stop_radius_m: float = 50.0
    unplanned_stop_s: float = 300.0
    idle_s: float = 600.0
    max_gap_s: float = 300.0  # silent_after_s: a longer gap is not evidence of standing still
    gap_reach_m: float = 300.0  # corridor_m: a fix farther off its route shows no progress
    gap_speed_mps: float = 40.0  # 144 km/h along the route: how far a silent van can get
    gap_tolerance_m: float = 50.0  # GPS noise: the earliest pass this close to the nearest


@dataclass(frozen=True, slots=True)
class Still:
    """A run of fixes standing still around (x_m, y_m), the first stopped fix."""

    since_s: float
    last_s: float
    x_m: float
    y_m: float
    lat: float
    lon: float
    open: bool = False

    @classmethod
    def at(cls, s: Sample) -> Still:
        return cls(s.t_s, s.t_s, s.x_m, s.y_m, s.lat, s.lon)


def inside(s: Sample, x: float, y: float, r: float) -> bool:
    return math.hypot(s.x_m - x, s.y_m - y) <= r


def _stopped(s: Sample, p: StopParams) -> bool:
    """Slow enough to start a run; with unknown speed the run's radius decides."""
    return math.isnan(s.speed_kmh) or s.speed_kmh < p.stop_speed_kmh


def unplanned(
    run: Still | None,
    s: Sample,
    in_zone: bool,
    gap: bool,
    p: StopParams,
    events: list[Event],
) -> Still | None:
    """A run starts on a stopped fix outside every stop and depot zone and lasts while
    fixes stay within the radius of its first fix; any fix in a zone ends it, so jitter at
    a customer's border never turns a delivery into an unplanned stop."""
    if run is not None:
        moved = not inside(s, run.x_m, run.y_m, p.unplanned_stop_radius_m)
        if moved or in_zone:
            if run.open:
                data = _where(run) | {"ended_s": run.last_s}
                events.append(Event("unplanned_stop", "close", s.t_s, data=data))
            run = None
        elif gap and not run.open:
            run = None
        else:
            run = Still(run.since_s, s.t_s, run.x_m, run.y_m, run.lat, run.lon, run.open)
            if not run.open and s.t_s - run.since_s >= p.unplanned_stop_s:
                run = replace(run, open=True)
                events.append(Event("unplanned_stop", "open", run.since_s, data=_where(run)))
            return run
    return Still.at(s) if _stopped(s, p) and not in_zone else None


def _where(run: Still) -> dict[str, Any]:
    return {
        "lat": run.lat,
        "lon": run.lon,
        "started_s": run.since_s,
        "duration_s": run.last_s - run.since_s,
    }


def idling(
    run: Still | None, s: Sample, gap: bool, p: StopParams, events: list[Event]
) -> Still | None:
    """Ignition on and not moving (known speed below the threshold, or with unknown speed
    still within the unplanned-stop radius of the run's start). Unknown ignition ends a run."""
    if run is not None:
        if math.isnan(s.speed_kmh):
            moving = not inside(s, run.x_m, run.y_m, p.unplanned_stop_radius_m)
        else:
            moving = s.speed_kmh >= p.stop_speed_kmh
        if moving or s.ignition != 1:
            if run.open:
                reason = (
                    "moved"
                    if moving
                    else ("ignition_off" if s.ignition == 0 else "ignition_unknown")
                )
                data = {"duration_s": run.last_s - run.since_s, "reason": reason}
                events.append(Event("idling", "close", s.t_s, data=data))
            run = None
        elif gap and not run.open:
            run = None
        else:
            run = Still(run.since_s, s.t_s, run.x_m, run.y_m, run.lat, run.lon, run.open)
            if not run.open and s.t_s - run.since_s >= p.idle_s:
                run = replace(run, open=True)
                events.append(Event("idling", "open", run.since_s, data=_where(run)))
            return run
    return Still.at(s) if s.ignition == 1 and _stopped(s, p) else None
