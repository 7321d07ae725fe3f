"""What each alert type means to a person: its severity and a message that says what
happened and what to do, built from the figures the rule put in the event's data.

Rules may leave a figure out (or a new rule may emit a type listed nowhere here): the
message then says less, never fails. Unknown types are warnings with a generic text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["SEVERITIES", "TYPES", "Severity", "Subject", "describe", "severity_of"]

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


@dataclass(frozen=True, slots=True)
class Subject:
    """Who the alert is about, as the message names it."""

    vehicle_id: int | None
    trip_id: int | None = None
    stop_id: int | None = None
    key: str = ""


def _num(data: Mapping[str, Any], *keys: str) -> float | None:
    """The first of ``keys`` holding a finite number."""
    for k in keys:
        v = data.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None


def _minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{max(1, round(seconds / 60))} min"


def _who(s: Subject) -> str:
    who = f"Vehicle {s.vehicle_id}" if s.vehicle_id is not None else "A vehicle"
    return who + (f" (trip {s.trip_id})" if s.trip_id is not None else "")


def _stop(s: Subject) -> str:
    return f"stop {s.stop_id}" if s.stop_id is not None else "its next stop"


def _route_deviation(d: Mapping[str, Any], s: Subject) -> str:
    dist = _num(d, "max_distance_m", "distance_m")
    extra = _num(d, "extra_time_s", "extra_s")
    far = f" {dist:.0f} m" if dist is not None else ""
    late = f", about {_minutes(extra)} extra to {_stop(s)}" if extra is not None else ""
    return f"{_who(s)} is{far} off its planned route{late}: call the driver."


def _overspeed(d: Mapping[str, Any], s: Subject) -> str:
    top, limit = _num(d, "max_speed_kmh", "speed_kmh"), _num(d, "limit_kmh")
    dur = _num(d, "duration_s")
    at = f" at up to {top:.0f} km/h" if top is not None else ""
    lim = f" where the limit is {limit:.0f} km/h" if limit is not None else ""
    for_ = f" for {dur:.0f} s" if dur is not None else ""
    return f"{_who(s)} is speeding{at}{lim}{for_}: tell the driver to slow down."


def _unplanned_stop(d: Mapping[str, Any], s: Subject) -> str:
    dur = _num(d, "duration_s")
    for_ = f" for {_minutes(dur)}" if dur is not None else ""
    return f"{_who(s)} has stopped away from any planned stop{for_}: check on the driver."


def _idling(d: Mapping[str, Any], s: Subject) -> str:
    dur = _num(d, "duration_s")
    for_ = f" for {_minutes(dur)}" if dur is not None else ""
    return f"{_who(s)} is idling with the engine on{for_}: ask the driver to switch it off."


def _silent_device(d: Mapping[str, Any], s: Subject) -> str:
    dur = _num(d, "silent_s", "duration_s")
    for_ = f" for {_minutes(dur)}" if dur is not None else ""
    return f"{_who(s)} has sent no position{for_} during its trip: call the driver."


def _late_departure(d: Mapping[str, Any], s: Subject) -> str:
    late = _num(d, "late_s")
    by = f" {_minutes(late)}" if late is not None else ""
    return f"{_who(s)} left the depot{by} late: check the later stops' windows."


def _eta_at_risk(d: Mapping[str, Any], s: Subject) -> str:
    late = _num(d, "late_s", "over_s")
    by = f" by about {_minutes(late)}" if late is not None else ""
    return f"{_who(s)} will miss the window of {_stop(s)}{by}: warn the customer or re-plan."


def _out_of_sequence(d: Mapping[str, Any], s: Subject) -> str:
    seq, want = _num(d, "seq", "actual_seq"), _num(d, "expected_seq")
    order = ""
    if seq is not None:
        instead = f" instead of #{want:.0f}" if want is not None else ""
        order = f" (#{seq:.0f}{instead})"
    return (
        f"{_who(s)} visited {_stop(s)} out of the planned order{order}:"
        " confirm the change with the driver."
    )


def _restricted_zone(d: Mapping[str, Any], s: Subject) -> str:
    name = d.get("zone_name") or (f"zone {s.key}" if s.key else "a zone")
    return f"{_who(s)} entered the restricted area {name}: contact the driver now."


def _telemetry(d: Mapping[str, Any], s: Subject) -> str:
    reason = (s.key or str(d.get("reason") or "bad data")).replace("_", " ")
    n = _num(d, "count")
    times = f" ({n:.0f} times)" if n is not None else ""
    return f"{_who(s)}'s tracker sends {reason} fixes{times}: check the device."


_Text = Callable[[Mapping[str, Any], Subject], str]
TYPES: Mapping[str, tuple[Severity, _Text]] = {
    "route_deviation": ("warning", _route_deviation),
    "overspeed": ("critical", _overspeed),
    "unplanned_stop": ("warning", _unplanned_stop),
    "idling": ("info", _idling),
    "silent_device": ("critical", _silent_device),
    "late_departure": ("warning", _late_departure),
    "eta_at_risk": ("warning", _eta_at_risk),
    "stop_out_of_sequence": ("info", _out_of_sequence),
    "restricted_zone": ("critical", _restricted_zone),
    "telemetry": ("info", _telemetry),
}


def severity_of(kind: str) -> Severity:
    """The severity of an alert type; unknown types are warnings."""
    entry = TYPES.get(kind)
    return "warning" if entry is None else entry[0]


def describe(kind: str, data: Mapping[str, Any], subject: Subject) -> tuple[Severity, str]:
    """(severity, message) for an alert of ``kind`` with the rule's ``data``."""
    entry = TYPES.get(kind)
    if entry is None:
        what = kind.replace("_", " ") or "an incident"
        return "warning", f"{_who(subject)}: {what} detected: look at the alert's details."
    return entry[0], entry[1](data, subject)
