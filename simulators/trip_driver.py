"""A simulated vehicle that drives one planned trip, faults included, as a fix timeline.

``drive`` is pure and deterministic: the vehicle stands parked at the depot for
``before_s`` (so its departure is observable), leaves at the planned departure, follows
the planned route at ``cruise_kmh``, stands still at each stop for its service time,
returns to the depot and stays parked ``after_s``. Fixes come every ``fix_interval_s`` on
a grid anchored at the actual departure, so the first moving fix is exactly the
departure. Every fix carries GPS jitter (uniform in a disc of ``jitter_m``).

Ignition: on while driving or idling, off while parked (at the depot, at stops: the
driver is delivering, and at an ``UnplannedStop`` unless it says otherwise), so a clean
trip shows no idling.

A stop is served at the point of the route nearest to it, searched forward from the
previous stop; planned routes pass through their stops, so that is the stop itself.

``simulators.trip_sender.send_timeline`` pushes such timelines to a server.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from simulators.errors import SimulatorError
from simulators.faults import (
    Detour,
    Fault,
    FaultError,
    Idle,
    LateDeparture,
    Silence,
    Speeding,
    UnplannedStop,
)
from simulators.routes import EARTH_RADIUS_M
from simulators.vehicle import SimFix, quantize_cs

__all__ = [
    "DrivenStop",
    "DrivenTrip",
    "TripError",
    "drive",
    "drive_many",
]

MAX_STOP_GAP_M = 150.0  # a stop farther than this from the route is a planning error


class TripError(SimulatorError, ValueError):
    """A trip cannot be driven as given (naive time, degenerate route, stop off the route)."""


@dataclass(frozen=True, slots=True)
class DrivenStop:
    """A planned stop: where, and how long the vehicle stands there (seconds). With
    ``serve_from`` (the plan's service start) a vehicle there early waits for it, as the
    plan has it wait for the customer's window to open."""

    lat: float
    lon: float
    service_s: float
    serve_from: datetime | None = None


@dataclass(frozen=True, slots=True)
class DrivenTrip:
    """A planned trip as plain data: ``route`` is (lon, lat) from the depot and back."""

    device_id: str
    depot_lat: float
    depot_lon: float
    route: Sequence[tuple[float, float]]
    stops: tuple[DrivenStop, ...]
    planned_departure: datetime


@dataclass(frozen=True, slots=True)
class _Phase:
    """The vehicle from ``t0`` to ``t1`` (s after planned departure) goes ``d0`` -> ``d1``."""

    t0: float
    t1: float
    d0: float
    d1: float
    ignition: bool

    @property
    def speed_mps(self) -> float:
        return (self.d1 - self.d0) / (self.t1 - self.t0) if self.d1 > self.d0 else 0.0


class _Path:
    """The route in a flat metric frame centred on the depot (east x, north y)."""

    def __init__(self, trip: DrivenTrip) -> None:
        self.lat0, self.lon0 = trip.depot_lat, trip.depot_lon
        self.ky = math.radians(1.0) * EARTH_RADIUS_M
        self.kx = self.ky * math.cos(math.radians(self.lat0))
        pts: list[tuple[float, float]] = []
        for lon, lat in trip.route:
            p = ((lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky)
            if not pts or p != pts[-1]:
                pts.append(p)
        if len(pts) < 2:
            raise TripError(f"trip of {trip.device_id}: the route needs two distinct vertices")
        self.pts = pts
        self.cum = [0.0]
        for (ax, ay), (bx, by) in itertools.pairwise(pts):
            self.cum.append(self.cum[-1] + math.hypot(bx - ax, by - ay))
        self.length_m = self.cum[-1]

    def point(self, d: float) -> tuple[float, float, float]:
        """(x, y, heading in radians clockwise from north) after ``d`` metres."""
        i = min(max(bisect.bisect_right(self.cum, d) - 1, 0), len(self.pts) - 2)
        (ax, ay), (bx, by) = self.pts[i], self.pts[i + 1]
        f = (d - self.cum[i]) / (self.cum[i + 1] - self.cum[i])
        return ax + f * (bx - ax), ay + f * (by - ay), math.atan2(bx - ax, by - ay)

    def project(self, x: float, y: float, from_d: float) -> tuple[float, float]:
        """(distance along, distance away) of the route point nearest (x, y), not before
        ``from_d``; the first of equally near points wins."""
        best = (math.inf, self.length_m)
        for i, ((ax, ay), (bx, by)) in enumerate(itertools.pairwise(self.pts)):
            seg = self.cum[i + 1] - self.cum[i]
            if self.cum[i + 1] < from_d:
                continue
            t = ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / (seg * seg)
            t = min(max(t, (from_d - self.cum[i]) / seg, 0.0), 1.0)
            gap = math.hypot(ax + t * (bx - ax) - x, ay + t * (by - ay) - y)
            if gap < best[0] - 1e-9:
                best = (gap, self.cum[i] + t * seg)
        return best[1], best[0]

    def latlon(self, x: float, y: float) -> tuple[float, float]:
        return self.lat0 + y / self.ky, self.lon0 + x / self.kx


def _ceil_to_grid(s: float, anchor: float, step: float) -> float:
    return anchor + math.ceil((s - anchor) / step - 1e-9) * step


def _stills(
    trip: DrivenTrip, path: _Path, faults: Sequence[Fault]
) -> list[tuple[float, float, bool, float | None]]:
    """(distance, duration, ignition, serve from) of every stand-still on the road, in
    driving order; serve from is seconds after the planned departure (stops only)."""
    out: list[tuple[float, int, float, bool, float | None]] = []
    d = 0.0
    for n, stop in enumerate(trip.stops):
        x, y = (stop.lon - path.lon0) * path.kx, (stop.lat - path.lat0) * path.ky
        d, gap = path.project(x, y, d)
        if gap > MAX_STOP_GAP_M:
            raise TripError(
                f"trip of {trip.device_id}: stop {n} is {gap:.0f} m from the route"
                f" (limit {MAX_STOP_GAP_M:.0f} m); pass a route that goes through it"
            )
        ready = None
        if stop.serve_from is not None:
            ready = (stop.serve_from - trip.planned_departure).total_seconds()
        if stop.service_s > 0 or ready is not None:
            out.append((d, 0, stop.service_s, False, ready))
    for f in faults:
        if isinstance(f, UnplannedStop):
            out.append((f.after_m, 1, f.duration_s, f.ignition, None))
        elif isinstance(f, Idle) and f.at != "depot":
            out.append((float(f.at), 1, f.duration_s, True, None))
    return [(d, s, ign, r) for d, _, s, ign, r in sorted(out, key=lambda e: (e[0], e[1]))]


def _starts_m(f: Fault) -> float:
    """Where along the route a fault begins (0 for those at the depot or timed)."""
    if isinstance(f, Detour | Speeding | UnplannedStop):
        return f.after_m
    if isinstance(f, Silence):
        return f.after_m or 0.0
    if isinstance(f, Idle) and f.at != "depot":
        return float(f.at)
    return 0.0


def _plan(
    trip: DrivenTrip,
    path: _Path,
    faults: Sequence[Fault],
    *,
    interval: float,
    cruise_mps: float,
    before_s: float,
    after_s: float,
) -> tuple[list[_Phase], float]:
    """The phases of the whole trip and the actual departure (s after planned)."""
    dep = sum(f.delay_s for f in faults if isinstance(f, LateDeparture))
    idle = sum(f.duration_s for f in faults if isinstance(f, Idle) and f.at == "depot")
    start = dep - math.ceil((dep - min(-before_s, dep - idle)) / interval - 1e-9) * interval
    phases = [_Phase(start, dep - idle, 0.0, 0.0, False)]
    if idle:
        phases.append(_Phase(dep - idle, dep, 0.0, 0.0, True))
    stills = _stills(trip, path, faults)
    fast = [f for f in faults if isinstance(f, Speeding)]
    cuts = {0.0, path.length_m, *(d for d, _, _, _ in stills)}
    for f in fast:
        cuts |= {min(f.after_m, path.length_m), min(f.after_m + f.length_m, path.length_m)}
    t, pending = dep, list(stills)
    for a, b in itertools.pairwise(sorted(cuts)):
        while pending and pending[0][0] <= a:
            d, dur, ign, ready = pending.pop(0)
            dur += 0.0 if ready is None else max(0.0, ready - t)  # early: wait, then serve
            phases.append(_Phase(t, t + dur, d, d, ign))
            t += dur
        mid = (a + b) / 2
        speeds = [f.speed_kmh / 3.6 for f in fast if f.after_m <= mid < f.after_m + f.length_m]
        dt = (b - a) / (max(speeds) if speeds else cruise_mps)
        phases.append(_Phase(t, t + dt, a, b, True))
        t += dt
    for d, dur, ign, ready in pending:
        dur += 0.0 if ready is None else max(0.0, ready - t)
        phases.append(_Phase(t, t + dur, d, d, ign))
        t += dur
    phases.append(_Phase(t, t + after_s, path.length_m, path.length_m, False))
    return phases, dep


def _time_at(phases: list[_Phase], d: float) -> float:
    """When the vehicle first gets ``d`` metres along the route."""
    for p in phases:
        if p.d0 <= d < p.d1 or (p.d0 == p.d1 == d):
            return p.t0 + (d - p.d0) / p.speed_mps if p.d1 > p.d0 else p.t0
    return phases[-1].t0


def _fix_times(
    phases: list[_Phase], faults: Sequence[Fault], dep: float, interval: float
) -> list[float]:
    """The grid from the first to the last phase, minus silences, plus wake-up fixes."""
    start, end = phases[0].t0, phases[-1].t1
    windows = []
    for f in faults:
        if isinstance(f, Silence):
            at = dep + f.after_s if f.after_s is not None else _time_at(phases, f.after_m or 0.0)
            t0 = _ceil_to_grid(at, dep, interval)
            windows.append((t0, t0 + f.duration_s))
    # On whole centiseconds (fix times are sent to the centisecond), so two instants
    # closer than that are one fix and every grid step is exactly the interval.
    step = max(1, round(interval * 100))
    first, last = round(start * 100), round(end * 100)
    grid = set(range(first, last + 1, step))
    wakes = {round(b * 100) for _, b in windows if b <= end}
    cut = [(round(a * 100), round(b * 100)) for a, b in windows]
    times = sorted(c for c in grid | wakes if not any(a < c < b for a, b in cut))
    return [c / 100 for c in times]


def drive(
    trip: DrivenTrip,
    *,
    faults: Sequence[Fault] = (),
    fix_interval_s: float = 5.0,
    cruise_kmh: float = 36.0,
    jitter_m: float = 3.0,
    seed: int = 1,
    before_s: float = 180.0,
    after_s: float = 60.0,
) -> list[SimFix]:
    """The fixes the vehicle's tracker sends for the whole trip, in time order."""
    if trip.planned_departure.tzinfo is None:
        raise TripError(f"trip of {trip.device_id}: planned_departure must be timezone-aware")
    for name, v in (("fix_interval_s", fix_interval_s), ("cruise_kmh", cruise_kmh)):
        if not (math.isfinite(v) and v > 0):
            raise TripError(f"{name} must be a finite number > 0, not {v}")
    if not (math.isfinite(jitter_m) and jitter_m >= 0):
        raise TripError(f"jitter_m must be a finite number >= 0, not {jitter_m}")
    path = _Path(trip)
    for f in faults:
        if _starts_m(f) > path.length_m + 1e-6:  # at the very end is still on the route
            raise FaultError(
                f"trip of {trip.device_id}: {f} starts past the end of its"
                f" {path.length_m:.0f} m route; use a smaller distance"
            )
    phases, dep = _plan(
        trip,
        path,
        faults,
        interval=fix_interval_s,
        cruise_mps=cruise_kmh / 3.6,
        before_s=max(before_s, 0.0),
        after_s=max(after_s, 0.0),
    )
    detours = [f for f in faults if isinstance(f, Detour)]
    rng = random.Random(f"trip/{seed}/{trip.device_id}")
    base = quantize_cs(trip.planned_departure)
    starts = [p.t0 for p in phases]
    out: list[SimFix] = []
    for s in _fix_times(phases, faults, dep, fix_interval_s):
        p = phases[max(bisect.bisect_right(starts, s) - 1, 0)]
        d = p.d0 + (s - p.t0) * p.speed_mps
        x, y, heading = path.point(d)
        off = sum(f.offset_at(d) for f in detours)
        slope = sum(f.slope_at(d) for f in detours) if p.speed_mps else 0.0
        r, a = jitter_m * math.sqrt(rng.random()), rng.uniform(0.0, 2 * math.pi)
        x += -math.cos(heading) * off + r * math.cos(a)
        y += math.sin(heading) * off + r * math.sin(a)
        lat, lon = path.latlon(x, y)
        course = math.degrees(heading - math.atan(slope)) % 360.0
        out.append(
            SimFix(
                device_id=trip.device_id,
                fix_time=base + timedelta(microseconds=round(s * 100) * 10_000),
                lat=round(lat, 7),
                lon=round(lon, 7),
                speed_kmh=round(p.speed_mps * 3.6, 2),
                course_deg=round(course, 2) % 360.0,
                altitude_m=8.0,
                satellites=9,
                hdop=0.9,
                ignition=p.ignition,
            )
        )
    return out


def drive_many(
    trips_with_faults: Iterable[tuple[DrivenTrip, Sequence[Fault]]],
    *,
    fix_interval_s: float = 5.0,
    cruise_kmh: float = 36.0,
    jitter_m: float = 3.0,
    seed: int = 1,
) -> list[SimFix]:
    """Every trip's fixes merged in time order (then device id): what a fleet sends."""
    fixes = [
        fix
        for trip, faults in trips_with_faults
        for fix in drive(
            trip,
            faults=faults,
            fix_interval_s=fix_interval_s,
            cruise_kmh=cruise_kmh,
            jitter_m=jitter_m,
            seed=seed,
        )
    ]
    return sorted(fixes, key=lambda f: (f.fix_time, f.device_id))
