"""The tower's parameters, named exactly as their settings in ``menara.settings`` so the
wiring can copy them across (the defaults are the settings' defaults), and the rules'
own parameter records built from them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from deviation import corridor as corridor_rule
from deviation import overspeed as overspeed_rule
from deviation import quality as quality_rule
from deviation import schedule as schedule_rule
from deviation import silence as silence_rule
from deviation import stops as stops_rule
from geofence import membership

__all__ = ["Params", "TowerConfig"]


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


@dataclass(frozen=True, slots=True)
class Params:
    """Every rule's parameters, built once from the tower's configuration."""

    quality: quality_rule.QualityParams
    zones: membership.ZoneParams
    overspeed: overspeed_rule.OverspeedParams
    corridor: corridor_rule.CorridorParams
    stops: stops_rule.StopParams
    schedule: schedule_rule.ScheduleParams
    silence: silence_rule.SilenceParams
    default_limit_kmh: float

    @classmethod
    def of(cls, c: TowerConfig) -> Params:
        return cls(
            quality=quality_rule.QualityParams(
                c.max_implied_speed_kmh, c.stale_fix_s, c.future_fix_s
            ),
            zones=membership.ZoneParams(c.zone_min_inside_s, c.zone_min_outside_s),
            overspeed=overspeed_rule.OverspeedParams(c.overspeed_tolerance, c.overspeed_min_s),
            corridor=corridor_rule.CorridorParams(
                c.corridor_m,
                c.corridor_clear_m,
                c.corridor_min_s,
                c.corridor_min_fixes,
                avg_speed_kmh=c.plan_avg_speed_kmh,
                road_factor=c.plan_road_factor,
            ),
            stops=stops_rule.StopParams(
                arrival_dwell_s=c.arrival_dwell_s,
                min_outside_s=c.zone_min_outside_s,
                stop_speed_kmh=c.stop_speed_kmh,
                unplanned_stop_radius_m=c.unplanned_stop_radius_m,
                unplanned_stop_s=c.unplanned_stop_s,
                idle_s=c.idle_s,
                max_gap_s=c.silent_after_s,
                gap_reach_m=c.corridor_m,
            ),
            schedule=schedule_rule.ScheduleParams(
                c.departure_grace_s, c.eta_margin_s, c.eta_interval_s
            ),
            silence=silence_rule.SilenceParams(c.silent_after_s),
            default_limit_kmh=c.default_speed_limit_kmh,
        )
