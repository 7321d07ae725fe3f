"""The tower's parameters, named exactly as their settings in ``menara.settings`` so the
wiring can copy them across; the defaults are the settings' defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["TowerConfig"]


@dataclass(frozen=True, slots=True)
class TowerConfig:
    """Every threshold the rules and the worker use (see README "Settings")."""

    stop_radius_m: float = 150.0
    depot_radius_m: float = 300.0
    arrival_dwell_s: float = 60.0
    zone_min_inside_s: float = 20.0
    zone_min_outside_s: float = 30.0
    corridor_m: float = 300.0
    corridor_clear_m: float = 200.0
    corridor_min_s: float = 60.0
    corridor_min_fixes: int = 5
    departure_grace_s: float = 600.0
    eta_margin_s: float = 300.0
    eta_interval_s: float = 30.0
    default_speed_limit_kmh: float = 90.0
    overspeed_tolerance: float = 1.1
    overspeed_min_s: float = 20.0
    stop_speed_kmh: float = 3.0
    unplanned_stop_radius_m: float = 50.0
    unplanned_stop_s: float = 300.0
    idle_s: float = 600.0
    silent_after_s: float = 300.0
    max_implied_speed_kmh: float = 300.0
    stale_fix_s: float = 3600.0
    future_fix_s: float = 300.0
    escalate_after_s: float = 900.0
    plan_avg_speed_kmh: float = 30.0
    plan_road_factor: float = 1.3

    @classmethod
    def from_settings(cls, settings: Any) -> TowerConfig:
        """Copy the same-named attributes of a ``menara.settings.Settings``."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})
