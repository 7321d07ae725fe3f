"""The rules' parameter records, built once from the typed ``menara.settings.Settings``
(the one place the tower's thresholds and their defaults are declared)."""

from __future__ import annotations

from dataclasses import dataclass

from deviation import corridor as corridor_rule
from deviation import membership
from deviation import overspeed as overspeed_rule
from deviation import quality as quality_rule
from deviation import schedule as schedule_rule
from deviation import silence as silence_rule
from deviation import stops as stops_rule
from menara.settings import Settings

__all__ = ["Params"]


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
    def of(cls, c: Settings) -> Params:
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
