"""The plan a vehicle is driving, as the rules read it (loaded from trips/stops by the
rule worker; rules never touch the database). All times are UTC epoch seconds and all
geometry is metric in ``projection`` (see ``geofence.projection``)."""

from __future__ import annotations

from dataclasses import dataclass

from geofence.projection import LocalProjection

__all__ = ["PlannedStop", "TripPlan"]


@dataclass(frozen=True, slots=True)
class PlannedStop:
    """One planned stop of a trip, in visiting order (``seq`` from 1)."""

    stop_id: int
    seq: int
    lat: float
    lon: float
    x_m: float
    y_m: float
    radius_m: float  # the stop zone (stop's own radius_m or the stop_radius_m setting)
    planned_arrival_s: float
    planned_departure_s: float
    service_s: float
    window_start_s: float | None
    window_end_s: float | None
    order_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True, weakref_slot=True)  # see plan_geo
class TripPlan:
    """A dispatched or running trip: route polyline, stops and the depot it leaves from."""

    trip_id: int
    vehicle_id: int
    depot_id: int
    device_id: str
    projection: LocalProjection
    route_xy: tuple[tuple[float, float], ...]  # planned route polyline, metric, in order
    stops: tuple[PlannedStop, ...]
    depot_lat: float
    depot_lon: float
    depot_x_m: float
    depot_y_m: float
    depot_radius_m: float
    planned_departure_s: float
    planned_return_s: float
    max_speed_kmh: float | None  # the vehicle's own limit, if set
    avg_speed_kmh: float = 30.0  # planner's average speed (ETA, extra-time estimates)
    road_factor: float = 1.3  # planner's road / straight-line ratio

    def orders(self) -> tuple[int, ...]:
        """Every order on board, in stop order."""
        return tuple(o for s in self.stops for o in s.order_ids)
