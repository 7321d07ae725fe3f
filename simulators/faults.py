"""Misbehaviour a simulated vehicle shows on purpose while it drives a planned trip.

Each fault is a frozen value handed to ``trip_driver.drive``. Distances (``after_m``,
``length_m``) are metres driven along the planned route from the depot; durations are
seconds of fix time. The control tower's end-to-end tests inject these and expect
exactly one alert of the matching kind, so each one is shaped to be unambiguous:

- ``LateDeparture``: the vehicle waits ``delay_s`` longer at the depot (parked).
- ``Detour``: over ``[after_m, after_m + length_m]`` the vehicle drifts ``offset_m`` to
  the side of the route (positive: left of the direction of travel), entering and
  leaving linearly over ``ramp_m`` (at most half the stretch), then rejoins it.
- ``Speeding``: over ``[after_m, after_m + length_m]`` it drives at ``speed_kmh``.
- ``UnplannedStop``: after ``after_m`` it stands still for ``duration_s``, ignition as
  given (off: a driver who parks; on: one who waits with the engine running).
- ``Silence``: the tracker sends the first fix due at or after ``after_m`` (or ``after_s``
  seconds after leaving the depot), then nothing for exactly ``duration_s``, then fixes
  again; the vehicle keeps driving meanwhile.
- ``Idle``: ignition on, speed 0 for ``duration_s``, at the depot just before leaving
  or after ``after_m`` on the road.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from simulators.errors import SimulatorError

__all__ = [
    "DETOUR_RAMP_M",
    "Detour",
    "Fault",
    "FaultError",
    "Idle",
    "LateDeparture",
    "Silence",
    "Speeding",
    "UnplannedStop",
]

DETOUR_RAMP_M = 100.0  # how gradually a detour leaves and rejoins the route


class FaultError(SimulatorError, ValueError):
    """A fault's parameters are out of range or do not fit the trip they are given."""


def _positive(name: str, value: float, *, zero_ok: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if zero_ok else value > 0)
    if not ok:
        raise FaultError(
            f"{name} must be a finite number {'>=' if zero_ok else '>'} 0, not {value}"
        )


@dataclass(frozen=True, slots=True)
class LateDeparture:
    """Leave the depot ``delay_s`` after the planned departure."""

    delay_s: float

    def __post_init__(self) -> None:
        _positive("LateDeparture.delay_s", self.delay_s)


@dataclass(frozen=True, slots=True)
class Detour:
    """Drive ``offset_m`` beside the route for ``length_m`` from ``after_m`` (see module)."""

    after_m: float
    length_m: float
    offset_m: float
    ramp_m: float = DETOUR_RAMP_M

    def __post_init__(self) -> None:
        _positive("Detour.after_m", self.after_m, zero_ok=True)
        _positive("Detour.length_m", self.length_m)
        _positive("Detour.ramp_m", self.ramp_m)
        if not math.isfinite(self.offset_m) or self.offset_m == 0:
            raise FaultError(
                f"Detour.offset_m must be a non-zero finite number, not {self.offset_m}"
            )

    def offset_at(self, d: float) -> float:
        """Lateral offset in metres after driving ``d`` metres along the route."""
        ramp = min(self.ramp_m, self.length_m / 2)
        into, left = d - self.after_m, self.after_m + self.length_m - d
        if into <= 0 or left <= 0:
            return 0.0
        return self.offset_m * min(1.0, into / ramp, left / ramp)

    def slope_at(self, d: float) -> float:
        """d(offset)/d(distance) at ``d``: how sharply the vehicle is turning off or back."""
        ramp = min(self.ramp_m, self.length_m / 2)
        into, left = d - self.after_m, self.after_m + self.length_m - d
        if into <= 0 or left <= 0 or min(into, left) >= ramp:
            return 0.0
        return self.offset_m / ramp * (1.0 if into < left else -1.0)


@dataclass(frozen=True, slots=True)
class Speeding:
    """Drive at ``speed_kmh`` for ``length_m`` from ``after_m``."""

    after_m: float
    length_m: float
    speed_kmh: float

    def __post_init__(self) -> None:
        _positive("Speeding.after_m", self.after_m, zero_ok=True)
        _positive("Speeding.length_m", self.length_m)
        _positive("Speeding.speed_kmh", self.speed_kmh)


@dataclass(frozen=True, slots=True)
class UnplannedStop:
    """Stand still ``duration_s`` after ``after_m``, with the ignition on or off."""

    after_m: float
    duration_s: float
    ignition: bool = False

    def __post_init__(self) -> None:
        _positive("UnplannedStop.after_m", self.after_m, zero_ok=True)
        _positive("UnplannedStop.duration_s", self.duration_s)


@dataclass(frozen=True, slots=True)
class Silence:
    """Send no fix for ``duration_s`` from ``after_m`` or ``after_s`` (exactly one)."""

    duration_s: float
    after_m: float | None = None
    after_s: float | None = None

    def __post_init__(self) -> None:
        _positive("Silence.duration_s", self.duration_s)
        if (self.after_m is None) == (self.after_s is None):
            raise FaultError("Silence needs exactly one of after_m or after_s")
        if self.after_m is not None:
            _positive("Silence.after_m", self.after_m, zero_ok=True)
        if self.after_s is not None:
            _positive("Silence.after_s", self.after_s, zero_ok=True)


@dataclass(frozen=True, slots=True)
class Idle:
    """Ignition on, speed 0, for ``duration_s``: at the depot before leaving or after ``at`` m."""

    at: Literal["depot"] | float
    duration_s: float

    def __post_init__(self) -> None:
        _positive("Idle.duration_s", self.duration_s)
        if self.at != "depot":
            if isinstance(self.at, str):
                raise FaultError(
                    f"Idle.at must be 'depot' or metres along the route, not {self.at!r}"
                )
            _positive("Idle.at", self.at, zero_ok=True)


Fault = LateDeparture | Detour | Speeding | UnplannedStop | Silence | Idle
