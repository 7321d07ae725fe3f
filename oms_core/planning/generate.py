"""Seeded random delivery days around Jakarta, for tests, benchmarks and demos.

Sizes and numbers are chosen so a day is comfortably servable: customers within
``radius_km`` of the depots, two- to four-hour windows spread over the day, parcels of
5–60 kg, vans of 1,000 kg / 8 m³ on 07:00–19:00 shifts (enough capacity for all the jobs
when ``n_vehicles`` ≥ ``n_jobs`` / 25).
"""

from __future__ import annotations

import math

import numpy as np

from oms_core.planning.model import Job, Problem, Site, Vehicle

JAKARTA = (-6.2000, 106.8166)
HOUR = 3_600


def random_problem(
    n_jobs: int,
    n_vehicles: int,
    *,
    seed: int = 0,
    n_depots: int = 1,
    radius_km: float = 15.0,
    same_site_share: float = 0.05,
) -> Problem:
    """A reproducible problem; ``same_site_share`` of jobs go to an earlier job's site."""
    rng = np.random.default_rng(seed)
    lat0, lon0 = JAKARTA
    km_lat, km_lon = 1 / 110.574, 1 / (111.320 * math.cos(math.radians(lat0)))
    depots = [
        Site(f"D{i}", lat0 + rng.uniform(-3, 3) * km_lat, lon0 + rng.uniform(-3, 3) * km_lon)
        for i in range(n_depots)
    ]
    sites: list[Site] = []
    jobs: list[Job] = []
    for i in range(n_jobs):
        if sites and rng.random() < same_site_share:
            site = sites[int(rng.integers(len(sites)))]
        else:
            r, a = radius_km * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
            site = Site(f"S{i}", lat0 + r * math.sin(a) * km_lat, lon0 + r * math.cos(a) * km_lon)
            sites.append(site)
        start = int(rng.integers(8, 16)) * HOUR
        jobs.append(
            Job(
                order_id=f"O{i}",
                site=site,
                weight_kg=round(float(rng.uniform(5, 60)), 1),
                volume_m3=round(float(rng.uniform(0.02, 0.4)), 3),
                service_s=int(rng.integers(3, 11)) * 60,
                window_start_s=start,
                window_end_s=start + int(rng.integers(2, 5)) * HOUR,
            )
        )
    vehicles = tuple(
        Vehicle(
            id=f"V{i}",
            depot=depots[i % n_depots],
            capacity_kg=1_000.0,
            capacity_m3=8.0,
            shift_start_s=7 * HOUR,
            shift_end_s=19 * HOUR,
        )
        for i in range(n_vehicles)
    )
    return Problem(
        jobs=tuple(jobs), vehicles=vehicles, depot_open_s=6 * HOUR, depot_close_s=20 * HOUR
    )
