"""The rules a vehicle's fixes walk through, listed once and in step order (``RULES``).

Each rule is one object with the same interface: the ``VehicleRules`` attribute that
holds its state, whether it needs a trip, its fast path (``forward``: how far it proves
fixes quiet, moving its clock over them) and its ``step`` at one fix. ``VehicleRules``
dispatches by looping over the tuple; nothing refers to a rule by its place in it.

Quality is not here: it judges a whole batch before any of these rules see a fix (the
fixes it refuses reach none of them).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from deviation import corridor as corridor_rule
from deviation import membership
from deviation import overspeed as overspeed_rule
from deviation import schedule as schedule_rule
from deviation import silence as silence_rule
from deviation import stops as stops_rule
from deviation.model import Event, Phase, Sample
from deviation.plan import TripPlan
from geofence.errors import UnknownZone
from geofence.index import ZoneIndex
from tower.effects import Finding

if TYPE_CHECKING:
    from tower.vehicle import VehicleRules

__all__ = ["RESTRICTED", "RULES", "VEHICLE_RULES", "Batch", "Round", "Rule", "finding", "zone_of"]

RESTRICTED = "restricted_zone"

_F64 = NDArray[np.float64]


class Batch(NamedTuple):
    """The accepted fixes of one batch, in time order, as float64 columns."""

    t: _F64
    lat: _F64
    lon: _F64
    x: _F64
    y: _F64
    speed: _F64
    ign: NDArray[np.integer[Any]]
    inside: list[frozenset[str]]
    dist: _F64 | None
    along: _F64 | None

    def sample(self, k: int, received_s: float) -> Sample:
        return Sample(
            float(self.t[k]), float(self.lat[k]), float(self.lon[k]), float(self.x[k]),
            float(self.y[k]), float(self.speed[k]), int(self.ign[k]), True, received_s,
        )  # fmt: skip


class Round(NamedTuple):
    """What every rule reads besides its own state during one batch."""

    trip: TripPlan | None
    zone_index: ZoneIndex | None
    limits: list[tuple[float, str]]  # per fix: the speed limit and where it comes from
    lims: _F64 | float  # the same limits as one column (one number when all are equal)
    times: list[float]  # the batch's fix times


class Rule(Protocol):
    name: str  # the VehicleRules attribute holding the state, and its key when saved
    on_trip: bool  # needs a trip plan (else it never runs)
    lazy: bool  # decides at each fix, after the rules before it stepped (the schedule)

    def forward(self, v: VehicleRules, b: Batch, lo: int, r: Round) -> int:
        """The index of the first fix from ``lo`` on that the rule must step, having moved
        its state over the ones before (``lo``: no fast path applies)."""
        ...

    def step(self, v: VehicleRules, s: Sample, b: Batch, k: int, r: Round) -> list[Finding]:
        """Advance the rule's state by fix ``k`` (``s``); what it found there."""
        ...


class _Zones:
    name, on_trip, lazy = "zones", False, False

    def forward(self, v: VehicleRules, b: Batch, lo: int, r: Round) -> int:
        v.zones, n = membership.fast_forward(v.zones, r.times[lo:], b.inside[lo:], v.params.zones)
        return lo + n

    def step(self, v: VehicleRules, s: Sample, b: Batch, k: int, r: Round) -> list[Finding]:
        """Entering a restricted zone is an alert; other zones' events are facts."""
        v.zones, events = membership.step(v.zones, s.t_s, b.inside[k], v.params.zones)
        out = []
        for e in events:
            zone = None if r.zone_index is None else zone_of(r.zone_index, e.key)
            if zone is not None and zone.kind == "restricted" and e.kind != "zone_dwell":
                phase: Phase = "open" if e.kind == "zone_enter" else "close"
                data = {**e.data, "zone_id": e.key, "zone_name": zone.name}
                out.append(Finding(Event(RESTRICTED, phase, e.t_s, e.key, data)))
            else:
                out.append(Finding(e))
        return out


class _Overspeed:
    name, on_trip, lazy = "overspeed", False, False

    def forward(self, v: VehicleRules, b: Batch, lo: int, r: Round) -> int:
        lim = r.lims[lo:] if isinstance(r.lims, np.ndarray) else r.lims
        v.overspeed, n = overspeed_rule.fast_forward(
            v.overspeed, b.speed[lo:], lim, v.params.overspeed
        )
        return lo + n

    def step(self, v: VehicleRules, s: Sample, b: Batch, k: int, r: Round) -> list[Finding]:
        lim, src = r.limits[k]
        v.overspeed, ev = overspeed_rule.step(v.overspeed, s, lim, src, v.params.overspeed)
        return [finding(e) for e in ev]


class _Silence:
    name, on_trip, lazy = "silence", True, False

    def forward(self, v: VehicleRules, b: Batch, lo: int, r: Round) -> int:
        p = v.params.silence
        v.silence, n = silence_rule.fast_forward(v.silence, b.t[lo:], v.last_fix_s, p)
        return lo + n

    def step(self, v: VehicleRules, s: Sample, b: Batch, k: int, r: Round) -> list[Finding]:
        v.silence, ev = silence_rule.step(v.silence, s, v.params.silence, last_fix_s=v.last_fix_s)
        return [finding(e) for e in ev]


class _Stops:
    name, on_trip, lazy = "stops", True, False

    def forward(self, v: VehicleRules, b: Batch, lo: int, r: Round) -> int:
        assert r.trip is not None
        v.stops, n = stops_rule.fast_forward(
            v.stops, r.trip, b.t[lo:], b.x[lo:], b.y[lo:], b.speed[lo:], b.ign[lo:],
            v.params.stops,
        )  # fmt: skip
        return lo + n

    def step(self, v: VehicleRules, s: Sample, b: Batch, k: int, r: Round) -> list[Finding]:
        assert r.trip is not None
        v.stops, ev = stops_rule.step(v.stops, s, r.trip, v.params.stops)
        return [finding(e) for e in ev]


class _Corridor:
    name, on_trip, lazy = "corridor", True, False

    def forward(self, v: VehicleRules, b: Batch, lo: int, r: Round) -> int:
        dist = None if b.dist is None else b.dist[lo:]
        along = None if b.along is None else b.along[lo:]
        v.corridor, n = corridor_rule.fast_forward(
            v.corridor, b.t[lo:], dist, along, v.params.corridor
        )
        return lo + n

    def step(self, v: VehicleRules, s: Sample, b: Batch, k: int, r: Round) -> list[Finding]:
        assert r.trip is not None
        d = math.nan if b.dist is None else float(b.dist[k])
        a = math.nan if b.along is None else float(b.along[k])
        nxt, nxt_along = v.next_stop(r.trip)
        v.corridor, ev = corridor_rule.step(
            v.corridor, s, d, a, nxt, v.params.corridor, stop_along_m=nxt_along
        )
        return [finding(e) for e in ev]


class _Schedule:
    """Idle (nothing due) is judged per fix, after the stops rule has stepped there."""

    name, on_trip, lazy = "schedule", True, True

    def forward(self, v: VehicleRules, b: Batch, lo: int, r: Round) -> int:
        assert r.trip is not None
        st = v.stops
        idle = schedule_rule.idle(
            v.schedule, float(b.t[lo]), r.trip, st.departed_s, st.arrived_stop_ids,
            v.params.schedule,
        )  # fmt: skip
        return lo + 1 if idle else lo

    def step(self, v: VehicleRules, s: Sample, b: Batch, k: int, r: Round) -> list[Finding]:
        assert r.trip is not None
        st = v.stops
        v.schedule, ev = schedule_rule.step(
            v.schedule, s, r.trip, st.departed_s, st.arrived_stop_ids, v.params.schedule,
            busy_until_s=st.serving_until_s(r.trip),
        )  # fmt: skip
        return [finding(e) for e in ev]


RULES: tuple[Rule, ...] = (_Zones(), _Overspeed(), _Silence(), _Stops(), _Corridor(), _Schedule())
VEHICLE_RULES = tuple(rule for rule in RULES if not rule.on_trip)  # off a trip


def finding(e: Event) -> Finding:
    """Alert evidence travels beside the event, not inside its details."""
    evidence = e.data.get("evidence")
    if isinstance(evidence, list):
        data = {k: v for k, v in e.data.items() if k != "evidence"}
        return Finding(replace(e, data=data), tuple(evidence))
    return Finding(e)


def zone_of(index: ZoneIndex, zone_id: str) -> Any:
    try:
        return index.zone(zone_id)
    except UnknownZone:
        return None  # the zone was removed since the vehicle entered it
