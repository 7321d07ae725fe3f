"""The planning problem and its answer as frozen dataclasses (no solver types leak out).

Times are integer seconds since the start of the plan day, distances integer metres.
Weights (kg) and volumes (m³) stay floats here; the solver adapter turns them into
integers (grams and cm³, see ``GRAMS_PER_KG`` and ``CM3_PER_M3``) because PyVRP's
load arithmetic is integral: demands are rounded up and capacities down, so a plan the
solver accepts never overloads a vehicle in the exact float check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

GRAMS_PER_KG = 1_000
CM3_PER_M3 = 1_000_000


@dataclass(frozen=True)
class Site:
    """A place a vehicle drives to; equal ids mean the same place (one matrix row)."""

    id: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Job:
    """One order to deliver: service must *start* within [window_start_s, window_end_s]."""

    order_id: str
    site: Site
    weight_kg: float
    volume_m3: float
    service_s: int
    window_start_s: int
    window_end_s: int


@dataclass(frozen=True)
class Vehicle:
    """A vehicle and its driver's shift; it starts at ``start`` (default: its depot).

    ``start`` is set for a re-plan from the vehicle's current position (see
    ``solver.from_position``); the route always ends at ``depot``. ``max_speed_kmh``
    slows legs the matrix says are faster than the vehicle may drive.
    """

    id: str
    depot: Site
    capacity_kg: float
    capacity_m3: float
    shift_start_s: int
    shift_end_s: int
    max_speed_kmh: float | None = None
    start: Site | None = None

    @property
    def start_site(self) -> Site:
        """Where the route begins."""
        return self.depot if self.start is None else self.start


@dataclass(frozen=True)
class Problem:
    """One day's jobs and vehicles; depots are open [depot_open_s, depot_close_s]."""

    jobs: tuple[Job, ...]
    vehicles: tuple[Vehicle, ...]
    depot_open_s: int = 0
    depot_close_s: int = 86_400

    def sites(self) -> list[Site]:
        """Distinct sites (by id) in a stable order: vehicle starts and depots, then jobs."""
        seen: dict[str, Site] = {}
        for v in self.vehicles:
            seen.setdefault(v.start_site.id, v.start_site)
            seen.setdefault(v.depot.id, v.depot)
        for j in self.jobs:
            seen.setdefault(j.site.id, j.site)
        return list(seen.values())


@dataclass(frozen=True)
class PlannedStop:
    """One visit to a site serving ``order_ids`` back to back.

    The vehicle arrives at ``arrival_s``, waits if early, starts serving at
    ``service_start_s`` (inside ``window``, the intersection of its orders' windows)
    and leaves at ``departure_s`` = service start + the orders' service times.
    """

    order_ids: tuple[str, ...]
    site: Site
    arrival_s: int
    departure_s: int
    window: tuple[int, int]
    service_s: int = 0

    @property
    def service_start_s(self) -> int:
        """When service begins (after any wait)."""
        return self.departure_s - self.service_s


@dataclass(frozen=True)
class Route:
    """One vehicle's trip: leaves its start at ``depart_s``, back at its depot at ``return_s``."""

    vehicle_id: str
    stops: tuple[PlannedStop, ...]
    depart_s: int
    return_s: int
    distance_m: int
    duration_s: int


@dataclass(frozen=True)
class Plan:
    """Routes plus every order that is not on one, each with a stable reason code."""

    routes: tuple[Route, ...]
    unassigned: Mapping[str, str] = field(default_factory=dict)

    @property
    def distance_m(self) -> int:
        """Total driven distance."""
        return sum(r.distance_m for r in self.routes)

    @property
    def served(self) -> int:
        """Number of orders on a route."""
        return sum(len(s.order_ids) for r in self.routes for s in r.stops)
