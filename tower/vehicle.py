"""One vehicle's rules, chained in a fixed order over each batch of its fixes.

Quality runs first on the whole batch: fixes it refuses (out of order, from the future,
impossible jumps, invalid) reach no other rule. The accepted ones get their corridor
distance in one vectorised call, then walk, fix by fix, through zones, overspeed and
(on a trip) silence, stops, corridor and schedule. Vehicle-level rule states (quality,
zones, overspeed) survive a change of trip; trip-level ones start afresh.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from decoders.model import FixArray
from deviation import corridor as corridor_rule
from deviation import membership
from deviation import overspeed as overspeed_rule
from deviation import quality as quality_rule
from deviation import schedule as schedule_rule
from deviation import silence as silence_rule
from deviation import stops as stops_rule
from deviation.plan import PlannedStop, TripPlan
from deviation.plan_geo import plan_geo
from deviation.route import Corridor
from geofence.errors import GeofenceError
from geofence.index import ZoneIndex
from geofence.projection import LocalProjection
from menara.settings import Settings
from tower.codec import decode, encode
from tower.config import Params
from tower.effects import Finding
from tower.plans import VehicleInfo
from tower.rules import RESTRICTED, RULES, VEHICLE_RULES, Batch, Round, finding, zone_of

__all__ = ["RESTRICTED", "VehicleRules"]


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
    def new(cls, info: VehicleInfo, cfg: Settings | Params) -> VehicleRules:
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
            geo = plan_geo(trip)  # the stops rule's copy of the route, made once per plan
            usable = len(trip.route_xy) >= 2
            self._route, self._stops_along = (geo.route, geo.along) if usable else (None, ())
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
        n = len(fixes)
        if n == 0:
            return []
        us = fixes["fix_time_us"]
        if n > 1 and bool((us[1:] < us[:-1]).any()):  # most batches come in order
            order = np.argsort(us, kind="stable")
            fixes, us = fixes[order], us[order]
            if members is not None:
                members = [members[i] for i in order.tolist()]
        lat, lon = fixes["lat"], fixes["lon"]  # float64 already (FIX_DTYPE)
        if self.projection is None:
            self.projection = LocalProjection(float(lat[0]), float(lon[0]))
        x, y = self.projection.to_xy_arrays(lat, lon)
        t = us / 1e6
        p = self.params
        self.quality, q_events, ok = quality_rule.check_batch(
            self.quality, t, x, y, np.full(n, received_s), fixes["valid"], p.quality
        )
        out = [finding(e) for e in q_events]
        speed, ign = fixes["speed_kmh"].astype(np.float64), fixes["ignition"]
        if bool(ok.all()):
            inside = members
        else:  # keep the accepted fixes only
            idx = np.flatnonzero(ok)
            if idx.size == 0:
                return out
            t, lat, lon, x, y = t[idx], lat[idx], lon[idx], x[idx], y[idx]
            speed, ign = speed[idx], ign[idx]
            inside = None if members is None else [members[i] for i in idx.tolist()]
        trip = self.info.trip
        if (
            trip is not None
            and self.silence.active_since_s is None
            and float(t[-1]) >= trip.planned_departure_s
        ):
            # The trip is under way by fix time even if no clock tick has seen it yet (a
            # replay faster than the ticks): silence counts from its planned departure.
            self.silence = dataclasses.replace(
                self.silence, active_since_s=trip.planned_departure_s
            )
        dist = along = None
        if trip is not None and self._route is not None:
            if self.stops.departed_s is None:
                home = np.hypot(x - trip.depot_x_m, y - trip.depot_y_m)
                dist, along = corridor_rule.distances_before_departure(
                    self._route, t, x, y, home <= trip.depot_radius_m,
                    self.corridor.progress_t_s, p.corridor,
                )  # fmt: skip
            else:
                dist, along = corridor_rule.distances_for(
                    self.corridor, self._route, t, x, y, p.corridor
                )
        if inside is None:
            inside = [_NOWHERE] * len(t)
        batch = Batch(t, lat, lon, x, y, speed, ign, inside, dist, along)
        out.extend(self._walk(batch, received_s, index, trip))
        return out

    def _walk(
        self, b: Batch, received_s: float, index: ZoneIndex | None, trip: TripPlan | None
    ) -> list[Finding]:
        """Each rule's fast path moves it over the fixes where it proves nothing but the
        clock changes; at an eventful fix the rule steps, and its fast path takes over
        again from the next fix (a stop arrival no longer costs the rest of the batch a
        step per fix). Rules step in ``RULES`` order at each fix, and a lazy rule (the
        schedule) decides there whether it is due, so the findings are those of stepping
        every rule over every fix."""
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
        r = Round(trip, index, limits, lims, times)
        rules = RULES if trip is not None else VEHICLE_RULES
        fast = self.fast_paths
        # the fix each rule steps next, its fast path having moved it over those before
        done = [rule.forward(self, b, 0, r) if fast and not rule.lazy else 0 for rule in rules]
        out: list[Finding] = []
        last = len(times) - 1
        for k, t_s in enumerate(times):
            s = None
            stepped = []
            for i, rule in enumerate(rules):
                if done[i] > k or (rule.lazy and fast and rule.forward(self, b, k, r) > k):
                    continue
                if s is None:
                    s = b.sample(k, received_s)
                out.extend(rule.step(self, s, b, k, r))
                stepped.append(i)
            self.last_fix_s = t_s
            if fast and k < last:
                for i in stepped:
                    if not rules[i].lazy:
                        done[i] = rules[i].forward(self, b, k + 1, r)
        return out

    def _limit(self, inside: frozenset[str], index: ZoneIndex | None) -> tuple[float, str]:
        return overspeed_rule.limit_for(
            _speed_limits(inside, index), self.info.max_speed_kmh, self.params.default_limit_kmh
        )

    def next_stop(self, trip: TripPlan) -> tuple[PlannedStop | None, float | None]:
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
        return [finding(e) for e in events]

    def _trip_active(self, trip: TripPlan, now_s: float) -> bool:
        """Silence matters from the planned departure until the vehicle is back at the
        depot with every stop visited."""
        if now_s < trip.planned_departure_s:
            return False
        done = len(self.stops.arrived_stop_ids) >= len(trip.stops)
        return not (done and self.stops.returned_s is not None)

    # -- persistence ------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Every state, by the one codec (``tower.codec``), for the ``rule_state`` table."""
        proj = self.projection
        return {
            "v": _SAVE_VERSION,
            "projection": None if proj is None else [proj.lat0, proj.lon0],
            "last_fix_s": self.last_fix_s,
            **{name: encode(getattr(self, name)) for name in _STATES},
        }

    @classmethod
    def from_json(cls, info: VehicleInfo, cfg: Settings, d: dict[str, Any]) -> VehicleRules:
        """Saved states back (an unreadable save starts afresh rather than stopping)."""
        rules = cls.new(info, cfg)
        try:
            if not isinstance(d, dict):
                raise ValueError(f"a save is an object, not {type(d).__name__}")
            if d.get("v") == 1:
                d = _from_v1(d)
            elif d.get("v") != _SAVE_VERSION:
                raise ValueError(f"saved layout {d.get('v')!r}, expected {_SAVE_VERSION}")
            if rules.projection is None and d.get("projection"):
                rules.projection = LocalProjection(*d["projection"])
            last = d.get("last_fix_s")
            rules.last_fix_s = None if last is None else float(last)
            for name in _STATES:
                setattr(rules, name, decode(type(getattr(rules, name)), d[name]))
        except (KeyError, TypeError, ValueError, GeofenceError):
            return cls.new(info, cfg)
        return rules


_NOWHERE: frozenset[str] = frozenset()  # in no zone (no zone index)
_SAVE_VERSION = 2  # 1: each state had its own hand-written layout
_TRACK = ("zone_id", "inside", "pending_s", "entered_s", "dwell_sent")


def _from_v1(d: dict[str, Any]) -> dict[str, Any]:
    """A layout-1 save in layout 2, so an upgrade keeps open incidents: its states used
    their field names as keys already, except the zones' rows."""
    zones = d["zones"]
    tracks = [dict(zip(_TRACK, row, strict=True)) for row in zones["tracks"]]
    return {**d, "v": _SAVE_VERSION, "zones": {"tracks": tracks}}


_STATES = ("quality", *(rule.name for rule in RULES))  # the saved states, by attribute


def _speed_limits(inside: frozenset[str], index: ZoneIndex | None) -> list[float]:
    if index is None or not inside:
        return []
    zones = (zone_of(index, z) for z in inside)
    return [float(z.speed_limit_kmh) for z in zones if z is not None and z.speed_limit_kmh]
