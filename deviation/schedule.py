"""Schedule and ETA (issue 6, rule 4): late departure from the depot, a live ETA for every
remaining stop, and stops at risk of missing their window.

ETAs start from where the vehicle is (or from the depot at the later of now and the planned
departure, while it has not left) and follow the plan from there: the first remaining stop
is reached at the planner's average speed over the straight distance × road factor, each
later one after waiting for the previous stop's window to open, serving it, and driving the
planned leg. A delay therefore propagates to every later stop. ``remaining_etas`` is the
plain function the API and worker can call without events; re-running the solver from the
current position (``oms_core.planning.replan_remaining``) could replace it later in
``oms_core``, which may import the planner (this package may not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

from deviation.model import Event, Sample
from deviation.plan import PlannedStop, TripPlan

__all__ = [
    "ScheduleParams",
    "ScheduleState",
    "StopEta",
    "idle",
    "remaining_etas",
    "step",
    "tick",
]

LateStatus = Literal["watch", "open", "done"]


@dataclass(frozen=True, slots=True)
class ScheduleParams:
    """Thresholds; defaults equal the settings of the same names."""

    departure_grace_s: float = 600.0
    eta_margin_s: float = 300.0
    eta_interval_s: float = 30.0
    update_min: float = 1.0  # an at-risk alert is updated when its lateness moves this much


class StopEta(NamedTuple):
    stop: PlannedStop
    eta_s: float


@dataclass(frozen=True, slots=True)
class ScheduleState:
    late: LateStatus = "watch"  # late departure: watching, alert open, or decided
    eta_at_s: float | None = None  # fix time of the last ETA computation
    arrived_seen: frozenset[int] = frozenset()  # arrivals known at that computation
    at_risk: tuple[tuple[int, float], ...] = ()  # open at-risk stop -> minutes_late reported


def remaining_etas(
    plan: TripPlan,
    now_s: float,
    position_xy: tuple[float, float] | None,
    departed_s: float | None,
    arrived_stop_ids: frozenset[int],
    busy_until_s: float | None = None,
) -> list[StopEta]:
    """ETA of every stop not yet arrived, in plan order. Before departure, or without a
    position, the vehicle is taken to be at the depot, leaving no earlier than planned;
    ``busy_until_s`` (``StopState.serving_until_s``) holds it at the stop it is serving."""
    remaining = [st for st in plan.stops if st.stop_id not in arrived_stop_ids]
    if not remaining:
        return []
    if departed_s is None or position_xy is None:
        start_s, (x, y) = max(now_s, plan.planned_departure_s), (plan.depot_x_m, plan.depot_y_m)
    else:
        start_s, (x, y) = now_s, position_xy
    if busy_until_s is not None:
        start_s = max(start_s, busy_until_s)
    speed_ms = plan.avg_speed_kmh / 3.6
    first = remaining[0]
    eta = start_s + math.hypot(first.x_m - x, first.y_m - y) * plan.road_factor / speed_ms
    out = [StopEta(first, eta)]
    prev = first
    for stop in remaining[1:]:
        ready = eta if prev.window_start_s is None else max(eta, prev.window_start_s)
        eta = ready + prev.service_s + (stop.planned_arrival_s - prev.planned_departure_s)
        out.append(StopEta(stop, eta))
        prev = stop
    return out


def tick(
    state: ScheduleState,
    now_s: float,
    plan: TripPlan,
    departed_s: float | None,
    params: ScheduleParams = ScheduleParams(),
) -> tuple[ScheduleState, list[Event]]:
    """Late departure by the clock: a vehicle that never leaves may send no fixes at all."""
    events: list[Event] = []
    return replace(state, late=_late(state.late, now_s, plan, departed_s, params, events)), events


def _late(
    status: LateStatus,
    now_s: float,
    plan: TripPlan,
    departed_s: float | None,
    p: ScheduleParams,
    events: list[Event],
) -> LateStatus:
    """Open at the deadline (planned departure + grace), close at the departure; a
    departure first seen after the deadline opens and closes at once."""
    if status == "done":
        return status
    planned = plan.planned_departure_s
    deadline = planned + p.departure_grace_s
    if status == "watch":
        if departed_s is not None and departed_s < deadline:
            return "done"
        if departed_s is None and now_s < deadline:
            return "watch"
        late_s = (departed_s if departed_s is not None else now_s) - planned
        data = {"minutes_late": round(late_s / 60, 1), "planned_departure_s": planned}
        events.append(Event("late_departure", "open", deadline, data=data))
        status = "open"
    if departed_s is None:
        return status
    data = {"departed_s": departed_s, "minutes_late": round((departed_s - planned) / 60, 1)}
    events.append(Event("late_departure", "close", departed_s, data=data))
    return "done"


def step(
    state: ScheduleState,
    sample: Sample,
    plan: TripPlan,
    departed_s: float | None,
    arrived_stop_ids: frozenset[int],
    params: ScheduleParams = ScheduleParams(),
    *,
    busy_until_s: float | None = None,
) -> tuple[ScheduleState, list[Event]]:
    """Late departure, then ETAs at most every ``eta_interval_s`` of fix time and always
    right after an arrival; at-risk alerts open, update by the minute, and close.
    ``busy_until_s`` is ``StopState.serving_until_s(plan)`` from the stops rule."""
    events: list[Event] = []
    late = _late(state.late, sample.t_s, plan, departed_s, params, events)
    if late != state.late:
        state = replace(state, late=late)
    due = (
        state.eta_at_s is None
        or sample.t_s - state.eta_at_s >= params.eta_interval_s
        or arrived_stop_ids != state.arrived_seen
    )
    if not due:
        return state, events
    here = (sample.x_m, sample.y_m)
    etas = remaining_etas(plan, sample.t_s, here, departed_s, arrived_stop_ids, busy_until_s)
    if etas or arrived_stop_ids != state.arrived_seen:  # the last arrival empties the list once
        data = {"etas": [{"stop_id": e.stop.stop_id, "eta_s": e.eta_s} for e in etas]}
        events.append(Event("eta", "info", sample.t_s, data=data))
    at_risk = _risk(dict(state.at_risk), etas, plan, arrived_stop_ids, sample.t_s, params, events)
    return replace(
        state, eta_at_s=sample.t_s, arrived_seen=arrived_stop_ids, at_risk=at_risk
    ), events


def idle(
    state: ScheduleState,
    t_s: float,
    plan: TripPlan,
    departed_s: float | None,
    arrived_stop_ids: frozenset[int],
    params: ScheduleParams = ScheduleParams(),
) -> bool:
    """True when ``step`` at a fix at ``t_s`` would return ``state`` unchanged and say
    nothing: the late-departure watch cannot move and no ETA is due. The worker skips such
    fixes (most of them: ETAs are due every ``eta_interval_s``)."""
    if state.eta_at_s is None or t_s - state.eta_at_s >= params.eta_interval_s:
        return False
    if arrived_stop_ids != state.arrived_seen:
        return False
    if state.late == "done" or (state.late == "open" and departed_s is None):
        return True
    deadline = plan.planned_departure_s + params.departure_grace_s
    return state.late == "watch" and departed_s is None and t_s < deadline


def _risk(
    reported: dict[int, float],
    etas: list[StopEta],
    plan: TripPlan,
    arrived: frozenset[int],
    t_s: float,
    p: ScheduleParams,
    events: list[Event],
) -> tuple[tuple[int, float], ...]:
    """``minutes_late`` is minutes beyond the window end (negative: still inside the margin)."""
    by_id = {st.stop_id: st for st in plan.stops}
    now: dict[int, float] = {}
    for e in etas:
        end = e.stop.window_end_s
        if end is None or e.eta_s <= end - p.eta_margin_s:
            continue
        minutes = round((e.eta_s - end) / 60, 1)
        data = _risk_data(e.stop, minutes, e.eta_s)
        key = str(e.stop.stop_id)
        old = reported.get(e.stop.stop_id)
        if old is None:
            events.append(Event("eta_at_risk", "open", t_s, key, data))
        elif round(abs(minutes - old), 6) >= p.update_min:  # tenths: no float dust
            events.append(Event("eta_at_risk", "update", t_s, key, data))
        else:
            minutes = old
        now[e.stop.stop_id] = minutes
    for sid, old in reported.items():
        if sid in now:
            continue
        stop = by_id.get(sid)
        reason = "arrived" if sid in arrived else ("on_time" if stop else "not_in_plan")
        data = {"stop_id": sid, "reason": reason, "minutes_late": old}
        if stop is not None:
            data |= {"seq": stop.seq, "order_ids": list(stop.order_ids)}
        events.append(Event("eta_at_risk", "close", t_s, str(sid), data))
    return tuple(sorted(now.items()))


def _risk_data(stop: PlannedStop, minutes: float, eta_s: float) -> dict[str, Any]:
    return {
        "stop_id": stop.stop_id,
        "seq": stop.seq,
        "eta_s": eta_s,
        "window_end_s": stop.window_end_s,
        "minutes_late": minutes,
        "order_ids": list(stop.order_ids),
    }
