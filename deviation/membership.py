"""Zone membership over time as enter / exit / dwell events, with hysteresis.

GPS jitter puts a vehicle parked at a zone's border in and out of it every few fixes.
So a change counts only once it has lasted: ``zone_enter`` after the vehicle has been
inside for ``min_inside_s``, ``zone_exit`` after it has been outside for
``min_outside_s``. Both are stamped with the *first* fix of the change (when the vehicle
really crossed), not the fix that confirmed it. ``zone_dwell`` says once per visit that
the vehicle has been inside for ``dwell_s``.

``step`` is pure and expects non-decreasing ``t_s``: the rule worker drops out-of-order
fixes before calling it (an older fix cannot undo a confirmed change).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from deviation.model import Event

__all__ = ["ZoneParams", "ZoneState", "ZoneTrack", "fast_forward", "step"]


@dataclass(frozen=True, slots=True)
class ZoneParams:
    """Hysteresis durations (seconds); the worker fills them from the zone settings."""

    min_inside_s: float = 20.0
    min_outside_s: float = 30.0
    dwell_s: float = 300.0


@dataclass(frozen=True, slots=True)
class ZoneTrack:
    """One zone the vehicle is in, or may be entering: confirmed side and pending change."""

    zone_id: str
    inside: bool = False  # confirmed (an enter was emitted and no exit since)
    pending_s: float | None = None  # first fix of an unconfirmed change of side
    entered_s: float | None = None  # first fix of the confirmed visit
    dwell_sent: bool = False


@dataclass(frozen=True, slots=True)
class ZoneState:
    """Per-vehicle memory: only zones that are confirmed inside or pending, by id."""

    tracks: tuple[ZoneTrack, ...] = ()

    def inside(self) -> frozenset[str]:
        """Zones the vehicle is confirmed inside."""
        return frozenset(t.zone_id for t in self.tracks if t.inside)


def _time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a time")
    return float(value)


def _info(kind: str, t_s: float, zone_id: str, **data: Any) -> Event:
    return Event(kind, "info", t_s, zone_id, {"zone_id": zone_id, **data})


def _advance(
    tr: ZoneTrack, t_s: float, now_in: bool, p: ZoneParams, events: list[Event]
) -> ZoneTrack | None:
    """The track after one fix (None: plainly outside, nothing to remember)."""
    if not tr.inside:
        if not now_in:
            return None  # a brief visit below min_inside_s leaves no trace
        since = t_s if tr.pending_s is None else tr.pending_s
        if t_s - since < p.min_inside_s:
            return replace(tr, pending_s=since)
        events.append(_info("zone_enter", since, tr.zone_id, entered_s=since, confirmed_s=t_s))
        tr = ZoneTrack(tr.zone_id, inside=True, entered_s=since)
    elif not now_in:
        since = t_s if tr.pending_s is None else tr.pending_s
        if t_s - since < p.min_outside_s:
            return replace(tr, pending_s=since)
        entered = tr.entered_s if tr.entered_s is not None else since
        events.append(
            _info(
                "zone_exit", since, tr.zone_id,
                entered_s=entered, exited_s=since, confirmed_s=t_s, inside_s=since - entered,
            )
        )  # fmt: skip
        return None
    elif tr.pending_s is not None:
        tr = replace(tr, pending_s=None)  # an excursion outside below min_outside_s
    entered = tr.entered_s if tr.entered_s is not None else t_s
    if not tr.dwell_sent and t_s - entered >= p.dwell_s:
        events.append(
            _info("zone_dwell", t_s, tr.zone_id, entered_s=entered, dwell_s=t_s - entered)
        )
        tr = replace(tr, dwell_sent=True)
    return tr


def step(
    state: ZoneState, t_s: float, inside: frozenset[str], params: ZoneParams = ZoneParams()
) -> tuple[ZoneState, list[Event]]:
    """One fix at ``t_s`` (non-decreasing) inside the zones ``inside``: new state and the
    zone_enter / zone_exit / zone_dwell events it confirms (phase "info", key = zone id)."""
    if not state.tracks and not inside:
        return state, []  # outside every zone, as most fixes are
    known = {t.zone_id: t for t in state.tracks}
    events: list[Event] = []
    tracks: list[ZoneTrack] = []
    for zid in sorted(known.keys() | inside):
        track = _advance(known.get(zid, ZoneTrack(zid)), t_s, zid in inside, params, events)
        if track is not None:
            tracks.append(track)
    return ZoneState(tuple(tracks)), events


def fast_forward(
    state: ZoneState,
    t_s: Sequence[float],
    insides: Sequence[frozenset[str]],
    params: ZoneParams = ZoneParams(),
) -> tuple[ZoneState, int]:
    """(state, n): stepping the first n fixes (times ``t_s``, inside ``insides``) provably
    changes nothing and says nothing, so ``state`` stands; step the rest. A fix qualifies
    when it is in exactly the zones the vehicle is confirmed or pending inside (none at
    all, the usual case) and out of those it is pending to leave, before any pending
    change is confirmed and any dwell falls due (``_advance``'s own arithmetic)."""
    expect: list[str] = []
    dwell_from: list[float] = []  # entered_s of confirmed tracks whose dwell is unsent
    entering: list[float] = []  # pending_s of pending entries
    leaving: list[float] = []  # pending_s of pending exits
    for t in state.tracks:
        if t.pending_s is None:
            if not t.inside or t.entered_s is None:
                return state, 0
            expect.append(t.zone_id)
            if not t.dwell_sent:
                dwell_from.append(t.entered_s)
        elif t.inside:
            leaving.append(t.pending_s)
        else:
            expect.append(t.zone_id)
            entering.append(t.pending_s)
    ids = [t.zone_id for t in state.tracks]
    if ids != sorted(set(ids)):
        return state, 0  # step would re-sort them
    confirmed = frozenset(expect)
    timed = dwell_from or entering or leaving
    p = params
    for n, (t_s_n, inside) in enumerate(zip(t_s, insides, strict=True)):
        if inside != confirmed:
            return state, n
        if timed and (
            any(t_s_n - e >= p.dwell_s for e in dwell_from)
            or any(t_s_n - since >= p.min_inside_s for since in entering)
            or any(t_s_n - since >= p.min_outside_s for since in leaving)
        ):
            return state, n
    return state, len(insides)
