"""Where the vehicle stops: planned-stop arrival and departure by geofence, leaving and
returning to the depot, unplanned stops and idling (issue 6, rules 2 and 6).

One pure state machine per vehicle and trip. Fixes come in non-decreasing time (the
quality rule upstream drops out-of-order ones); distances are Euclidean in the trip's
metric projection. The rule only sees fixes: time without fixes never counts as stopped
time (a gap of ``max_gap_s`` or more restarts a stop or idling run that has not yet been
reported), so a silent device is the silence rule's business, never an unplanned stop.

Unplanned stops and idling are judged independently: a vehicle standing still away from
any stop with its engine running is reported twice, once as ``unplanned_stop`` (where it
stands) and once as ``idling`` (what it burns). Idling is reported at stops and at the
depot too.

Stops that share a place (one customer, two orders) are visited one at a time: among the
unvisited stops whose circles hold the vehicle, the lowest ``seq`` arrives first, and the
next one only once that visit departs or its service is over (stamped then), so serving
the first is never an out-of-sequence arrival at the second. A visit's service starts no
earlier than the plan's (its planned departure less its service time): a van there
early waits for the customer's window, as the plan has it, and is serving this stop, not
the next one at the same door, while it waits.

After a tracker gap, stops the vehicle's progress along its route shows it passed
(``deviation.gap``) count as visited, unconfirmed: a ``stop_visit_unconfirmed`` fact with
the gap as evidence, for the driver's ePOD or a dispatcher to confirm, so the stops
after them are in sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

from deviation import gap as gap_rule
from deviation.model import Event, Sample
from deviation.plan import PlannedStop, TripPlan
from deviation.plan_geo import PlanGeo, plan_geo
from deviation.still import Still, StopParams, idling, inside, unplanned

__all__ = ["Still", "StopParams", "StopState", "fast_forward", "step"]

_F64 = NDArray[np.float64]
_DEFAULTS = StopParams()


@dataclass(frozen=True, slots=True)
class StopState:
    """What the rule remembers; ``departed_s`` and ``arrived_stop_ids`` feed the schedule rule."""

    inside: tuple[tuple[int, float, float | None], ...] = ()  # (stop, first in, out since)
    visiting: tuple[tuple[int, float, float | None], ...] = ()  # (stop, arrived_s, out_since)
    arrived_stop_ids: frozenset[int] = frozenset()
    departed_s: float | None = None  # first departure from the depot
    returned_s: float | None = None  # latest return to the depot
    at_depot: bool = True  # a trip starts at its depot
    depot_edge_s: float | None = None  # first fix of a pending depot departure or return
    still: Still | None = None  # unplanned-stop run
    idle: Still | None = None  # idling run
    last_t_s: float | None = None
    last_x_m: float = math.nan  # the last fix's place: where a tracker gap began
    last_y_m: float = math.nan
    unconfirmed: frozenset[int] = frozenset()  # of arrived_stop_ids: passed in a tracker gap

    def serving_until_s(self, plan: TripPlan) -> float | None:
        """When the planned service at the stop being visited ends (None: not at a stop)."""
        if not self.visiting:
            return None
        g = plan_geo(plan)
        ends = [
            _served(g, g.pos[sid], arrived) if sid in g.pos else arrived
            for sid, arrived, _ in self.visiting
        ]
        return max(ends)


def step(
    state: StopState, sample: Sample, plan: TripPlan, params: StopParams = _DEFAULTS
) -> tuple[StopState, list[Event]]:
    """Advance by one fix; events come in the order depot, stops, unplanned stop, idling."""
    events: list[Event] = []
    x, y = sample.x_m, sample.y_m
    ins = [math.hypot(x - cx, y - cy) <= r for cx, cy, r in plan_geo(plan).circles]
    at_depot_zone = inside(sample, plan.depot_x_m, plan.depot_y_m, plan.depot_radius_m)
    gap = state.last_t_s is not None and sample.t_s - state.last_t_s >= params.max_gap_s
    state = _depot(state, sample, plan, at_depot_zone, params, events)
    if gap:
        state = _unseen(state, sample, plan, ins, params, events)
    state = _planned(state, sample, plan, ins, params, events)
    in_zone = at_depot_zone or any(ins)
    still = unplanned(state.still, sample, in_zone, gap, params, events)
    idle = idling(state.idle, sample, gap, params, events)
    return _runs(state, still, idle, sample.t_s, x, y), events


def _runs(
    st: StopState, still: Still | None, idle: Still | None, t_s: float, x: float, y: float
) -> StopState:
    """``replace(st, still=, idle=, last_…=)`` at a third of its cost (once per fix)."""
    s = st
    return StopState(
        s.inside, s.visiting, s.arrived_stop_ids, s.departed_s, s.returned_s, s.at_depot,
        s.depot_edge_s, still, idle, t_s, x, y, s.unconfirmed,
    )  # fmt: skip


def _unseen(
    state: StopState, s: Sample, plan: TripPlan, ins: list[bool], p: StopParams, events: list[Event]
) -> StopState:
    """The stops passed in the gap before ``s``, not holding the vehicle now, become
    visited-unconfirmed (one ``stop_visit_unconfirmed`` fact each, in visiting order)."""
    g = plan_geo(plan)
    if g.route is None or math.isnan(state.last_x_m) or state.last_t_s is None:
        return state
    ks = gap_rule.passed(
        plan, g.route, g.along, state.arrived_stop_ids,
        (state.last_x_m, state.last_y_m), (s.x_m, s.y_m), s.t_s - state.last_t_s,
        p.gap_reach_m, p.gap_speed_mps, p.gap_tolerance_m,
    )  # fmt: skip
    ks = [k for k in ks if not ins[k]]
    if not ks:
        return state
    for k in ks:
        st = plan.stops[k]
        data = {
            "stop_id": st.stop_id,
            "seq": st.seq,
            "gap_from_s": state.last_t_s,
            "gap_to_s": s.t_s,
            "order_ids": list(st.order_ids),
        }
        events.append(Event("stop_visit_unconfirmed", "info", s.t_s, str(st.stop_id), data))
    done = {plan.stops[k].stop_id for k in ks}
    return replace(
        state,
        inside=tuple(v for v in state.inside if v[0] not in done),
        arrived_stop_ids=state.arrived_stop_ids | done,
        unconfirmed=state.unconfirmed | done,
    )


def fast_forward(
    state: StopState,
    plan: TripPlan,
    t_s: _F64,
    x_m: _F64,
    y_m: _F64,
    speed_kmh: _F64,
    ignition: NDArray[np.integer[Any]],
    params: StopParams = _DEFAULTS,
) -> tuple[StopState, int]:
    """(state, n): ``step`` over the batch's first n fixes provably changes nothing but
    the fix time and says nothing, and this is the state after them; step the rest. That
    holds with no pending depot edge or run and no arrival falling due; a fix on the
    depot's side it is on, inside every stop being visited or dwelt in (outside those it
    stepped out of, until that lasts ``min_outside_s``) and outside every other unvisited
    stop; and not one that could start an unplanned stop (stopped outside every zone) or
    idling (stopped with ignition on)."""
    if state.depot_edge_s is not None or state.still is not None or state.idle is not None:
        return state, 0
    g = plan_geo(plan)
    masks = _masks(g, plan, state)
    if masks is None:
        return state, 0
    must_in, must_out, firsts, outs = masks
    t = np.ascontiguousarray(t_s, dtype=np.float64)
    last = math.nan if state.last_t_s is None else state.last_t_s
    n = _quiet_prefix(
        t,
        np.ascontiguousarray(x_m, dtype=np.float64),
        np.ascontiguousarray(y_m, dtype=np.float64),
        np.ascontiguousarray(speed_kmh, dtype=np.float64),
        np.ascontiguousarray(ignition),
        g.cx, g.cy, g.r2_in, g.r2_out, must_in, must_out, firsts, outs,
        float(params.arrival_dwell_s), float(params.min_outside_s), float(params.stop_speed_kmh),
        last, float(params.max_gap_s),
    )  # fmt: skip
    if not n:
        return state, 0
    return _runs(state, None, None, float(t[n - 1]), float(x_m[n - 1]), float(y_m[n - 1])), n


_Masks = tuple[NDArray[np.bool_], NDArray[np.bool_], _F64, _F64]


def _masks(g: PlanGeo, plan: TripPlan, state: StopState) -> _Masks | None:
    """``fast_forward``'s per-circle conditions for this state (None: it does not apply).
    They change only with the stop fields, which ``step`` passes on untouched while
    nothing happens, so the last answer is kept per plan and reused while they are the
    very same objects (most batches of a vehicle)."""
    key = (state.inside, state.visiting, state.arrived_stop_ids, state.at_depot)
    last = g.memo[0]
    if last is not None:
        k = last[0]
        if k[0] is key[0] and k[1] is key[1] and k[2] is key[2] and k[3] is key[3]:
            return last[1]  # type: ignore[no-any-return]
    kept = (*state.inside, *state.visiting)
    masks: _Masks | None = None
    dwelt = [g.pos.get(sid, -1) for sid, _, _ in state.inside]
    if (
        all(sid in g.pos for sid, _, _ in kept)
        and dwelt == sorted(set(dwelt))
        and not state.arrived_stop_ids & {s for s, _, _ in state.inside}
    ):  # else step would rewrite the lists
        must_in = np.zeros(len(g.circles) + 1, dtype=np.bool_)  # the stops, then the depot
        must_in[[g.pos[sid] for sid, _, out in kept if out is None]] = True
        done = state.arrived_stop_ids | {sid for sid, _, _ in state.inside}
        away = {sid for sid, _, out in kept if out is not None}  # stepped out, not yet left
        must_out = np.array([st.stop_id not in done or st.stop_id in away for st in plan.stops])
        must_in[-1] = state.at_depot
        must_out = np.append(must_out, not state.at_depot)
        firsts = np.array([f for _, f, out in state.inside if out is None], dtype=np.float64)
        outs = np.array([out for _, _, out in kept if out is not None], dtype=np.float64)
        masks = (must_in, must_out, firsts, outs)
    g.memo[0] = (key, masks)
    return masks


@njit(cache=True)
def _quiet_prefix(
    t: _F64, x: _F64, y: _F64, speed: _F64, ign: NDArray[np.integer[Any]],
    cx: _F64, cy: _F64, r2_in: _F64, r2_out: _F64,
    must_in: NDArray[np.bool_], must_out: NDArray[np.bool_], firsts: _F64, outs: _F64,
    dwell_s: float, outside_s: float, stop_kmh: float, last_t: float, max_gap_s: float,
) -> int:  # fmt: skip
    """How many leading fixes are quiet (``fast_forward``'s conditions, per fix): surely
    inside every ``must_in`` circle and outside every ``must_out`` one (squared distances
    against margins: a fix within a relative 1e-9 of an edge is left to ``step``), not
    stopped with ignition on or outside every circle, no dwell reaching arrival and no
    step out of a stop (since ``outs``) lasting long enough to be a departure, and none
    after a gap of ``max_gap_s`` (since ``last_t`` for the first; NaN: none before)."""
    for i in range(t.shape[0]):
        if t[i] - (last_t if i == 0 else t[i - 1]) >= max_gap_s:
            return i
        any_in = False
        for k in range(cx.shape[0]):
            dx, dy = x[i] - cx[k], y[i] - cy[k]
            d2 = dx * dx + dy * dy
            sure_in = d2 < r2_in[k]
            any_in = any_in or sure_in
            if (must_in[k] and not sure_in) or (must_out[k] and not d2 > r2_out[k]):
                return i
        stopped = math.isnan(speed[i]) or speed[i] < stop_kmh
        if stopped and (ign[i] == 1 or not any_in):
            return i
        for f in firsts:
            if not t[i] - f < dwell_s:
                return i
        for o in outs:
            if not t[i] - o < outside_s:
                return i
    return int(t.shape[0])


def _depot(
    state: StopState,
    s: Sample,
    plan: TripPlan,
    inside: bool,
    p: StopParams,
    events: list[Event],
) -> StopState:
    """Departure after ``min_outside_s`` outside; return after ``arrival_dwell_s`` inside."""
    if state.at_depot == inside:  # nothing pending
        return replace(state, depot_edge_s=None) if state.depot_edge_s is not None else state
    edge = s.t_s if state.depot_edge_s is None else state.depot_edge_s
    if state.at_depot:
        if s.t_s - edge < p.min_outside_s:
            return replace(state, depot_edge_s=edge)
        events.append(Event("depot_departure", "info", edge, data={"departed_s": edge}))
        first = edge if state.departed_s is None else state.departed_s
        return replace(state, at_depot=False, depot_edge_s=None, departed_s=first)
    if s.t_s - edge < p.arrival_dwell_s:
        return replace(state, depot_edge_s=edge)
    missed = [st.stop_id for st in plan.stops if st.stop_id not in state.arrived_stop_ids]
    unseen = [st.stop_id for st in plan.stops if st.stop_id in state.unconfirmed]
    data = {
        "returned_s": edge,
        "all_stops_visited": not missed and not unseen,
        "missed_stop_ids": missed,
        "unconfirmed_stop_ids": unseen,  # passed during a tracker gap, not seen visited
    }
    events.append(Event("depot_return", "info", edge, data=data))
    return replace(state, at_depot=True, depot_edge_s=None, returned_s=edge)


def _planned(
    state: StopState, s: Sample, plan: TripPlan, ins: list[bool], p: StopParams, events: list[Event]
) -> StopState:
    """Geofence arrival after ``arrival_dwell_s`` inside and departure after
    ``min_outside_s`` outside; excursions shorter than ``min_outside_s`` (GPS jitter at the
    border) interrupt neither the dwell nor the visit. A visit holds back arrivals at the
    stops around it until it departs or its service time is over (``_hold``); a stop it
    held then arrives only once the vehicle has stayed ``arrival_dwell_s`` beyond that (a
    van lingering a moment at a customer is not serving the order planned there later)."""
    if not state.visiting and not state.inside and not any(ins):
        return state  # the common case on the road: nothing to remember
    g = plan_geo(plan)
    visiting: list[tuple[int, float, float | None]] = []
    held, release = False, -math.inf  # a visit still serving; when the last one let go
    for sid, arrived_s, out_since in state.visiting:
        k = g.pos.get(sid)
        if k is None:  # re-planned away: nothing left to depart from
            continue
        if not ins[k]:
            out = s.t_s if out_since is None else out_since
            if s.t_s - out >= p.min_outside_s:
                data = {"stop_id": sid, "departed_s": out, "dwell_s": out - arrived_s}
                events.append(Event("stop_departure", "info", out, str(sid), data))
                release = max(release, out)
                continue
            out_since = out
        else:
            out_since = None
        visiting.append((sid, arrived_s, out_since))
        held, release = _hold(held, release, _served(g, k, arrived_s), s.t_s)
    was_inside = {sid: (first, out) for sid, first, out in state.inside}
    arrived = set(state.arrived_stop_ids)
    inside: list[tuple[int, float, float | None]] = []
    for k, stop in enumerate(plan.stops):  # in visiting order: the lowest seq goes first
        if stop.stop_id in arrived:
            continue
        first, out_since = was_inside.get(stop.stop_id, (s.t_s, None))
        if not ins[k]:
            left = s.t_s if out_since is None else out_since
            if stop.stop_id in was_inside and s.t_s - left < p.min_outside_s:
                inside.append((stop.stop_id, first, left))  # a brief excursion: border jitter
            continue
        if held or s.t_s - max(first, release) < p.arrival_dwell_s:
            # after a visit here lets go, the vehicle must stay a full dwell for this one
            inside.append((stop.stop_id, first, None))
            held = True  # a later stop here waits for this one
            continue
        at = max(first, release)
        _arrive(stop, at, plan, arrived, events)
        arrived.add(stop.stop_id)
        visiting.append((stop.stop_id, at, None))
        held, release = _hold(held, release, _served(g, k, at), s.t_s)
    new = (tuple(inside), tuple(visiting))
    if not events and new == (state.inside, state.visiting):
        return state
    return replace(state, inside=new[0], visiting=new[1], arrived_stop_ids=frozenset(arrived))


def _served(g: PlanGeo, k: int, arrived_s: float) -> float:
    """When the service of plan stop ``k`` ends for a vehicle there since ``arrived_s``:
    it starts on arrival, or at the planned start for a vehicle there early."""
    return max(arrived_s, g.ready[k]) + g.service[k]


def _hold(held: bool, release: float, service_end_s: float, t_s: float) -> tuple[bool, float]:
    """A visit holds other arrivals until its service ends; then it releases them, stamped
    at that end."""
    if t_s < service_end_s:
        return True, release
    return held, max(release, service_end_s)


def _arrive(
    stop: PlannedStop, at_s: float, plan: TripPlan, arrived: set[int], events: list[Event]
) -> None:
    skipped = [st for st in plan.stops if st.seq < stop.seq and st.stop_id not in arrived]
    key = str(stop.stop_id)
    data = {
        "stop_id": stop.stop_id,
        "seq": stop.seq,
        "arrived_s": at_s,
        "method": "geofence",
        "out_of_sequence": bool(skipped),
        "order_ids": list(stop.order_ids),
    }
    events.append(Event("stop_arrival", "info", at_s, key, data))
    if skipped:
        alert = {
            "stop_id": stop.stop_id,
            "seq": stop.seq,
            "expected_seq": min(st.seq for st in skipped),
            "skipped_stop_ids": [st.stop_id for st in skipped],
            "order_ids": list(stop.order_ids),
        }
        events.append(Event("stop_out_of_sequence", "open", at_s, key, alert))
        events.append(Event("stop_out_of_sequence", "close", at_s, key, dict(alert)))
