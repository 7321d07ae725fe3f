"""A plan's geometry is made once while the plan lives, however many plans a worker holds."""

from __future__ import annotations

import dataclasses
import gc

from deviation import plan_geo as geo
from tower.warmup import straight_trip


def test_ten_thousand_plans_keep_their_geometry_and_it_goes_with_them() -> None:
    trip = straight_trip((1000.0, 2000.0), 3000.0, None).trip
    assert trip is not None
    plans = [dataclasses.replace(trip, trip_id=k) for k in range(10_000)]  # a big worker
    first = [geo.plan_geo(p) for p in plans]
    assert all(geo.plan_geo(p) is g for p, g in zip(plans, first, strict=True))  # none redone
    assert first[0].along == (1000.0, 2000.0)
    held = len(geo._GEO)
    del plans, first
    gc.collect()
    assert len(geo._GEO) <= held - 10_000  # forgotten with their plans
