"""``tower.warmup`` compiles the rules' kernels for the types real rounds bring:
after it, a fresh interpreter running a random faulty trip through the rules in random
batches (the fast-path test's world) compiles no further specialisation."""

from __future__ import annotations

import os

import pytest

from menara.settings import Settings
from tests.fresh import run_json
from tower.warmup import warm_up

SCRIPT = r"""
import json, math
from deviation import quality, route, stops
from menara.settings import Settings
from tower.vehicle import VehicleRules
from tower.warmup import warm_up
from tests.tower.test_vehicle_fastpath import INDEX, plan, timeline

KERNELS = (stops._quiet_prefix, route._nearest, quality._clean)
warm_up()
before = [len(k.signatures) for k in KERNELS]
moves = [(5.0, 12, 0.0, 0.0, 0.0, 1, 0), (5.0, 20, 1000.0, 20.0, 2.0, 0, 0),
         (5.0, 8, 5000.0, 400.0, 30.0, 1, 1), (60.0, 5, 6000.0, 0.0, 120.0, -1, 2),
         (5.0, 10, 3000.0, 0.0, math.nan, 1, 0)]
fixes = timeline(moves)
rules = VehicleRules.new(plan(80.0), Settings())
for lo in range(0, len(fixes), 7):
    b = fixes[lo : lo + 7]
    rules.process(b, float(b["fix_time_us"].max()) / 1e6 + 1.0,
                  INDEX.members(b["lat"], b["lon"]), INDEX)
print(json.dumps({"before": before, "after": [len(k.signatures) for k in KERNELS]}))
"""


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="nothing compiles")
def test_after_the_warm_up_a_real_trip_compiles_nothing() -> None:
    seen = run_json(SCRIPT)
    assert min(seen["before"]) >= 1
    assert seen["after"] == seen["before"]


def test_warm_up_runs_with_the_configured_thresholds() -> None:
    assert warm_up(Settings(stop_radius_m=80.0, corridor_m=400.0)) >= 0.0
