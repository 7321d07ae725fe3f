"""One vehicle's rules, chained in a fixed order over each batch of its fixes.

Quality runs first on the whole batch: fixes it refuses (out of order, from the future,
impossible jumps, invalid) reach no other rule. The accepted ones get their corridor
distance in one vectorised call, then walk, fix by fix, through zones, overspeed and
(on a trip) silence, stops, corridor and schedule. Vehicle-level rule states (quality,
zones, overspeed) survive a change of trip; trip-level ones start afresh.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from decoders.model import FixArray
from deviation import corridor as corridor_rule
from deviation import overspeed as overspeed_rule
from deviation import quality as quality_rule
from deviation import schedule as schedule_rule
from deviation import silence as silence_rule
from deviation import stops as stops_rule
from deviation.plan import PlannedStop, TripPlan
from deviation.route import Corridor, stops_along
from geofence import membership
from geofence.errors import GeofenceError, UnknownZone
from geofence.index import ZoneIndex
from geofence.model import Event, Phase, Sample
from geofence.projection import LocalProjection
from tower.config import Params, TowerConfig
from tower.effects import Finding
from tower.plans import VehicleInfo

__all__ = ["RESTRICTED", "VehicleRules"]

RESTRICTED = "restricted_zone"
ZONES, OVERSPEED, SILENCE, STOPS, CORRIDOR = range(5)  # the fast-pathed rules, in step order
_RULES = (ZONES, OVERSPEED, SILENCE, STOPS, CORRIDOR)


@dataclass(slots=True)
class VehicleRules:
    """The rule states of one vehicle and the plan they compare it with."""

    info: VehicleInfo
    params: Params
    projection: LocalProjection | None
    quality: quality_rule.QualityState = field(default_factory=quality_rule.QualityState)
    zones: membership.ZoneState = field(default_factory=membership.ZoneState)
    overspeed: overspeed_rule.OverspeedState = field(default_factory=overspeed_rule.OverspeedState)
    stops: stops_rule.StopState = field(default_factory=stops_rule.StopState)
    corridor: corridor_rule.CorridorState = field(default_factory=corridor_rule.CorridorState)
    schedule: schedule_rule.ScheduleState = field(default_factory=schedule_rule.ScheduleState)
    silence: silence_rule.SilenceState = field(default_factory=silence_rule.SilenceState)
    last_fix_s: float | None = None
    fast_paths: bool = True  # off: every rule steps every fix (the reference they must equal)
    _route: Corridor | None = None
    _stops_along: tuple[float, ...] = ()
    _route_xy: tuple[tuple[float, float], ...] = ()

    @classmethod
    def new(cls, info: VehicleInfo, cfg: TowerConfig | Params) -> VehicleRules:
        params = cfg if isinstance(cfg, Params) else Params.of(cfg)
        proj = None if info.trip is None else info.trip.projection
        return cls(info, params, proj).with_info(info)

    def with_info(self, info: VehicleInfo) -> VehicleRules:
        """The same states against a reloaded plan (a re-plan replaces the route)."""
        self.info = info
        trip = info.trip
        if trip is not None:
            self.projection = trip.projection
            if self._route is not None and trip.route_xy != self._route_xy:
                self.corridor = self.corridor.replanned()  # progress meant the old route
            self._route_xy = trip.route_xy
            if len(trip.route_xy) >= 2:
                self._route = Corridor.from_xy(trip.route_xy)
                self._stops_along = stops_along(self._route, trip.stops)
            else:
                self._route, self._stops_along = None, ()
        return self

    def carry_over(self, fresh: VehicleRules) -> VehicleRules:
        """``fresh`` (a new trip) keeping this vehicle's quality, zone and speed memory."""
        fresh.quality, fresh.zones, fresh.overspeed = self.quality, self.zones, self.overspeed
        fresh.last_fix_s = self.last_fix_s
        if fresh.projection is None:
            fresh.projection = self.projection
        return fresh

    @property
    def trip_id(self) -> int | None:
        return None if self.info.trip is None else self.info.trip.trip_id

    @property
    def device_id(self) -> str:
        return self.info.device_id

    # -- fixes ------------------------------------------------------------------------

    def process(
        self,
        fixes: FixArray,
        received_s: float,
        members: list[frozenset[str]] | None,
        index: ZoneIndex | None = None,
    ) -> list[Finding]:
        """Every rule over one batch of this vehicle's fixes, in time order."""
        if len(fixes) == 0:
            return []
        order = np.argsort(fixes["fix_time_us"], kind="stable")
        f = fixes[order]
        lat = f["lat"].astype(np.float64)
        lon = f["lon"].astype(np.float64)
        if self.projection is None:
            self.projection = LocalProjection(float(lat[0]), float(lon[0]))
        x, y = self.projection.to_xy_arrays(lat, lon)
        t = f["fix_time_us"] / 1e6
        rcv = np.full(len(f), received_s)
        p = self.params
        self.quality, q_events, ok = quality_rule.check_batch(
            self.quality, t, x, y, rcv, f["valid"], p.quality
        )
        out = [_finding(e) for e in q_events]
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return out
        trip = self.info.trip
        if (
            trip is not None
            and self.silence.active_since_s is None
            and float(t[idx[-1]]) >= trip.planned_departure_s
        ):
            # The trip is under way by fix time even if no clock tick has seen it yet (a
            # replay faster than the ticks): silence counts from its planned departure.
            self.silence = dataclasses.replace(
                self.silence, active_since_s=trip.planned_departure_s
            )
        dist = along = None
        if trip is not None and self._route is not None:
            if self.stops.departed_s is None:
                home = np.hypot(x[idx] - trip.depot_x_m, y[idx] - trip.depot_y_m)
                dist, along = corridor_rule.distances_before_departure(
                    self._route, t[idx], x[idx], y[idx], home <= trip.depot_radius_m,
                    self.corridor.progress_t_s, p.corridor,
                )  # fmt: skip
            else:
                dist, along = corridor_rule.distances_for(
                    self.corridor, self._route, t[idx], x[idx], y[idx], p.corridor
                )
        empty: frozenset[str] = frozenset()
        inside = [empty] * idx.size if members is None else [members[order[i]] for i in idx]
        batch = _Batch(
            t[idx], lat[idx], lon[idx], x[idx], y[idx],
            f["speed_kmh"][idx].astype(np.float64), f["ignition"][idx], inside, dist, along,
        )  # fmt: skip
        out.extend(self._walk(batch, received_s, index, trip))
        return out

    def _walk(
        self, b: _Batch, received_s: float, index: ZoneIndex | None, trip: TripPlan | None
    ) -> list[Finding]:
        """Each rule's fast path moves it over the fixes where it proves nothing but the
        clock changes; at an eventful fix the rule steps, and its fast path takes over
        again from the next fix (a stop arrival no longer costs the rest of the batch a
        step per fix). Rules step in the fixed order at each fix, and the schedule steps
        only where it is not idle, so the findings are those of stepping every rule over
        every fix."""
        p = self.params
        known: dict[frozenset[str], tuple[float, str]] = {}
        for z in b.inside:
            if z not in known:
                known[z] = self._limit(z, index)
        limits = [known[z] for z in b.inside]
        lims: NDArray[np.float64] | float = (
            next(iter(known.values()))[0]
            if len(known) == 1
            else np.array([lim for lim, _ in limits], dtype=np.float64)
        )
        times = b.t.tolist()
        rules = _RULES if trip is not None else _RULES[:2]
        # up to which fix each rule's fast path has moved it (zones, overspeed, silence,
        # stops, corridor); a rule steps at fix k when k has reached its mark
        done = [self._forward(r, b, 0, times, lims, trip) for r in rules]
        out: list[Finding] = []
        for k, t_s in enumerate(times):
            s = None
            if k >= min(done):
                s = b.sample(k, received_s)
                stepped = [r for r in rules if k >= done[r]]
                if ZONES in stepped:
                    out.extend(self._zones(s, b.inside[k], index))
                if OVERSPEED in stepped:
                    lim, src = limits[k]
                    self.overspeed, ev = overspeed_rule.step(
                        self.overspeed, s, lim, src, p.overspeed
                    )
                    out.extend(_finding(e) for e in ev)
                if trip is not None:
                    self._trip_step(trip, s, b, k, stepped, out)
            if trip is not None and not (
                self.fast_paths
                and schedule_rule.idle(
                    self.schedule,
                    t_s,
                    trip,
                    self.stops.departed_s,
                    self.stops.arrived_stop_ids,
                    p.schedule,
                )
            ):
                self._schedule_step(trip, b.sample(k, received_s) if s is None else s, out)
            self.last_fix_s = t_s
            if s is not None and k + 1 < len(times):
                for r in stepped:
                    done[r] = self._forward(r, b, k + 1, times, lims, trip)
        return out

    def _forward(
        self,
        rule: int,
        b: _Batch,
        lo: int,
        times: list[float],
        lims: NDArray[np.float64] | float,
        trip: TripPlan | None,
    ) -> int:
        """Move ``rule`` by its fast path over the fixes from ``lo`` on; the fix index it
        must step next (``lo`` when its fast path does not apply or fast paths are off)."""
        if not self.fast_paths:
            return lo
        p, n = self.params, 0
        if rule == ZONES:
            self.zones, n = membership.fast_forward(self.zones, times[lo:], b.inside[lo:], p.zones)
        elif rule == OVERSPEED:
            lim = lims[lo:] if isinstance(lims, np.ndarray) else lims
            self.overspeed, n = overspeed_rule.fast_forward(
                self.overspeed, b.speed[lo:], lim, p.overspeed
            )
        elif trip is None:
            return lo
        elif rule == SILENCE:
            self.silence, n = silence_rule.fast_forward(
                self.silence, b.t[lo:], self.last_fix_s, p.silence
            )
        elif rule == STOPS:
            self.stops, n = stops_rule.fast_forward(
                self.stops, trip, b.t[lo:], b.x[lo:], b.y[lo:], b.speed[lo:], b.ign[lo:],
                p.stops,
            )  # fmt: skip
        else:
            dist = None if b.dist is None else b.dist[lo:]
            along = None if b.along is None else b.along[lo:]
            self.corridor, n = corridor_rule.fast_forward(
                self.corridor, b.t[lo:], dist, along, p.corridor
            )
        return lo + n

    def _limit(self, inside: frozenset[str], index: ZoneIndex | None) -> tuple[float, str]:
        return overspeed_rule.limit_for(
            _speed_limits(inside, index), self.info.max_speed_kmh, self.params.default_limit_kmh
        )

    def _zones(self, s: Sample, inside: frozenset[str], index: ZoneIndex | None) -> list[Finding]:
        self.zones, events = membership.step(self.zones, s.t_s, inside, self.params.zones)
        out = []
        for e in events:
            zone = None if index is None else _zone(index, e.key)
            if zone is not None and zone.kind == "restricted" and e.kind != "zone_dwell":
                phase: Phase = "open" if e.kind == "zone_enter" else "close"
                data = {**e.data, "zone_id": e.key, "zone_name": zone.name}
                out.append(Finding(Event(RESTRICTED, phase, e.t_s, e.key, data)))
            else:
                out.append(Finding(e))
        return out

    def _trip_step(
        self,
        trip: TripPlan,
        s: Sample,
        b: _Batch,
        k: int,
        todo: list[int],
        out: list[Finding],
    ) -> None:
        """Silence, stops and corridor at one fix, those whose fast path did not apply."""
        p = self.params
        if SILENCE in todo:
            self.silence, ev = silence_rule.step(
                self.silence, s, p.silence, last_fix_s=self.last_fix_s
            )
            out.extend(_finding(e) for e in ev)
        if STOPS in todo:
            self.stops, ev = stops_rule.step(self.stops, s, trip, p.stops)
            out.extend(_finding(e) for e in ev)
        if CORRIDOR in todo:
            d = math.nan if b.dist is None else float(b.dist[k])
            a = math.nan if b.along is None else float(b.along[k])
            nxt, nxt_along = self._next_stop(trip)
            self.corridor, ev = corridor_rule.step(
                self.corridor, s, d, a, nxt, p.corridor, stop_along_m=nxt_along
            )
            out.extend(_finding(e) for e in ev)

    def _schedule_step(self, trip: TripPlan, s: Sample, out: list[Finding]) -> None:
        self.schedule, ev = schedule_rule.step(
            self.schedule,
            s,
            trip,
            self.stops.departed_s,
            self.stops.arrived_stop_ids,
            self.params.schedule,
            busy_until_s=self.stops.serving_until_s(trip),
        )
        out.extend(_finding(e) for e in ev)

    def _next_stop(self, trip: TripPlan) -> tuple[PlannedStop | None, float | None]:
        done = self.stops.arrived_stop_ids
        for k, st in enumerate(trip.stops):
            if st.stop_id not in done:
                return st, (self._stops_along[k] if k < len(self._stops_along) else None)
        return None, None

    # -- the clock --------------------------------------------------------------------

    def tick(self, now_s: float, wall_s: float) -> list[Finding]:
        """Rules that fire on silence: telemetry incidents going quiet (receive clock),
        silent device and late departure (the tower's clock)."""
        self.quality, events = quality_rule.tick(self.quality, wall_s, self.params.quality)
        trip = self.info.trip
        if trip is not None:
            active = self._trip_active(trip, now_s)
            self.silence, ev = silence_rule.tick(
                self.silence, now_s, self.last_fix_s, active, self.params.silence
            )
            events = [*events, *ev]
            self.schedule, ev = schedule_rule.tick(
                self.schedule, now_s, trip, self.stops.departed_s, self.params.schedule
            )
            events = [*events, *ev]
        return [_finding(e) for e in events]

    def _trip_active(self, trip: TripPlan, now_s: float) -> bool:
        """Silence matters from the planned departure until the vehicle is back at the
        depot with every stop visited."""
        if now_s < trip.planned_departure_s:
            return False
        done = len(self.stops.arrived_stop_ids) >= len(trip.stops)
        return not (done and self.stops.returned_s is not None)

    # -- persistence ------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        proj = self.projection
        return {
            "v": 1,
            "projection": None if proj is None else [proj.lat0, proj.lon0],
            "last_fix_s": self.last_fix_s,
            "quality": self.quality.to_json(),
            "zones": json.loads(self.zones.to_json()),
            "overspeed": self.overspeed.to_json(),
            "stops": self.stops.to_json(),
            "corridor": self.corridor.to_json(),
            "schedule": self.schedule.to_json(),
            "silence": self.silence.to_json(),
        }

    @classmethod
    def from_json(cls, info: VehicleInfo, cfg: TowerConfig, d: dict[str, Any]) -> VehicleRules:
        """Saved states back (an unreadable save starts afresh rather than stopping)."""
        rules = cls.new(info, cfg)
        try:
            if rules.projection is None and d.get("projection"):
                rules.projection = LocalProjection(*d["projection"])
            rules.last_fix_s = d.get("last_fix_s")
            rules.quality = quality_rule.QualityState.from_json(d["quality"])
            rules.zones = membership.ZoneState.from_json(json.dumps(d["zones"]))
            rules.overspeed = overspeed_rule.OverspeedState.from_json(d["overspeed"])
            rules.stops = stops_rule.StopState.from_json(d["stops"])
            rules.corridor = corridor_rule.CorridorState.from_json(d["corridor"])
            rules.schedule = schedule_rule.ScheduleState.from_json(d["schedule"])
            rules.silence = silence_rule.SilenceState.from_json(d["silence"])
        except (KeyError, TypeError, ValueError, GeofenceError):
            return cls.new(info, cfg)
        return rules


class _Batch(NamedTuple):
    """The accepted fixes of one batch, in time order, as float64 columns."""

    t: NDArray[np.float64]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    speed: NDArray[np.float64]
    ign: NDArray[np.integer[Any]]
    inside: list[frozenset[str]]
    dist: NDArray[np.float64] | None
    along: NDArray[np.float64] | None

    def sample(self, k: int, received_s: float) -> Sample:
        return Sample(
            float(self.t[k]), float(self.lat[k]), float(self.lon[k]), float(self.x[k]),
            float(self.y[k]), float(self.speed[k]), int(self.ign[k]), True, received_s,
        )  # fmt: skip


def _zone(index: ZoneIndex, zone_id: str) -> Any:
    try:
        return index.zone(zone_id)
    except UnknownZone:
        return None  # the zone was removed since the vehicle entered it


def _speed_limits(inside: frozenset[str], index: ZoneIndex | None) -> list[float]:
    if index is None or not inside:
        return []
    zones = (_zone(index, z) for z in inside)
    return [float(z.speed_limit_kmh) for z in zones if z is not None and z.speed_limit_kmh]


def _finding(e: Event) -> Finding:
    """Alert evidence travels beside the event, not inside its details."""
    evidence = e.data.get("evidence")
    if isinstance(evidence, list):
        data = {k: v for k, v in e.data.items() if k != "evidence"}
        return Finding(replace(e, data=data), tuple(evidence))
    return Finding(e)
