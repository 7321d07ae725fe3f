"""The fast paths of ``VehicleRules`` change nothing: random trips with faults, cut into
random batches, give the same findings and the same saved state with the fast paths on
as with every rule stepped over every fix.

The world is metric with round numbers: depot at the origin (300 m), stops of 150 m at a
few places along x (some shared, some overlapping), a restricted square, a 50 km/h speed
zone and a plain area; fixes stand at places chosen to sit inside, outside and exactly on
the circles' edges.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from shapely import box

from decoders.model import FixArray, empty_fixes
from deviation import membership, overspeed, silence, stops
from geofence import ZoneIndex
from geofence.zones import Zone
from menara.settings import Settings
from tower.effects import Finding
from tower.plans import VehicleInfo
from tower.vehicle import VehicleRules
from tower.warmup import PROJ, T0, straight_trip

STOP_XS = (1000.0, 1000.0, 2000.0, 2100.0, 3000.0)  # 1 and 2 share a place, 3 and 4 overlap
PLACES: tuple[float, ...] = (
    0.0,
    150.0,
    299.0,
    300.0,
    301.0,
    850.0,
    1000.0,
    1150.0,
    1151.0,
    2050.0,
    3000.0,
)
PLACES += (5000.0, 6000.0, 8000.0)  # off every stop: unplanned stops, the zones


def _latlon(x: float, y: float) -> tuple[float, float]:
    return PROJ.to_latlon(x, y)


def _zone(zid: str, kind: str, x0: float, x1: float, limit: float | None = None) -> Zone:
    (la0, lo0), (la1, lo1) = _latlon(x0, -200.0), _latlon(x1, 200.0)
    return Zone(zid, f"zone {zid}", kind, box(lo0, la0, lo1, la1), limit)


INDEX = ZoneIndex(
    [
        _zone("r", "restricted", 4900.0, 5100.0),
        _zone("s", "speed", 5500.0, 7000.0, 50.0),
        _zone("a", "area", 5900.0, 8500.0),
    ]
)


def plan(vehicle_limit: float | None) -> VehicleInfo:
    return straight_trip(STOP_XS, 8000.0, vehicle_limit)


Move = tuple[float, int, float, float, float, int, int]

moves = st.lists(
    st.tuples(
        st.sampled_from([0.0, 1.0, 5.0, 10.0, 30.0, 60.0, 200.0, 400.0]),  # between fixes
        st.integers(1, 30),  # fixes in a row
        st.sampled_from(PLACES),
        st.sampled_from([0.0, 0.0, 20.0, 140.0, 160.0, 400.0]),  # y off the road
        st.sampled_from([math.nan, 0.0, 2.9, 3.0, 30.0, 54.9, 56.0, 99.0, 120.0]),
        st.sampled_from([-1, 0, 1]),
        st.sampled_from([0, 0, 0, 1, 2]),  # fault: none, out of order, invalid
    ),
    min_size=1,
    max_size=25,
)


def timeline(ms: list[Move]) -> FixArray:
    rows: list[tuple[float, float, float, float, int, bool]] = []
    t = T0
    for dt, repeat, x, dy, v, ign, fault in ms:
        for i in range(repeat):
            t += dt
            lat, lon = _latlon(x, dy if i % 2 else -dy / 2)  # in and out of an edge
            when = t - 100.0 if fault == 1 and i == 0 else t
            rows.append((when, lat, lon, v, ign, fault != 2))
    arr = empty_fixes(len(rows))
    arr["fix_time_us"] = [round(r[0] * 1e6) for r in rows]
    arr["lat"] = [r[1] for r in rows]
    arr["lon"] = [r[2] for r in rows]
    arr["speed_kmh"] = [r[3] for r in rows]
    arr["ignition"] = [r[4] for r in rows]
    arr["valid"] = [r[5] for r in rows]
    return arr


def _canon(findings: list[Finding]) -> str:
    rows: list[Any] = [
        [f.event.kind, f.event.phase, f.event.t_s, f.event.key, f.event.data, f.evidence, f.extra]
        for f in findings
    ]
    return json.dumps(rows, sort_keys=True, default=str)


def _run(info: VehicleInfo, fixes: FixArray, cuts: list[int], ticks: list[bool], fast: bool,
         zones: bool) -> tuple[list[str], list[str]]:  # fmt: skip
    rules = VehicleRules.new(info, Settings())
    rules.fast_paths = fast
    said, saved = [], []
    bounds = sorted({0, len(fixes), *(c % (len(fixes) + 1) for c in cuts)})
    for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        b = fixes[lo:hi]
        received = float(b["fix_time_us"].max()) / 1e6 + 1.0
        members = INDEX.members(b["lat"], b["lon"]) if zones else None
        found = rules.process(b, received, members, INDEX if zones else None)
        if ticks[k % len(ticks)]:
            found += rules.tick(received + 30.0, received + 30.0)
        said.append(_canon(found))
        saved.append(json.dumps(rules.to_json(), sort_keys=True))
    return said, saved


@hyp_settings(max_examples=400, deadline=None)
@given(
    moves,
    st.lists(st.integers(0, 10_000), max_size=12),
    st.lists(st.booleans(), min_size=1, max_size=5),
    st.sampled_from([None, 40.0, 100.0]),
    st.booleans(),
)
def test_fast_paths_say_and_keep_exactly_what_stepping_does(
    ms: list[Move], cuts: list[int], ticks: list[bool], limit: float | None, zones: bool
) -> None:
    info, fixes = plan(limit), timeline(ms)
    fast = _run(info, fixes, cuts, ticks, True, zones)
    slow = _run(info, fixes, cuts, ticks, False, zones)
    assert fast == slow


def road(first: int, n: int, speed_kmh: float) -> FixArray:
    """Fixes every 5 s, 40 m apart along the road east of the last stop (x from 3300)."""
    arr = empty_fixes(n)
    for k in range(n):
        lat, lon = _latlon(3300.0 + 40.0 * (first + k), 0.0)
        arr[k]["fix_time_us"] = round((T0 + 5.0 * (first + k)) * 1e6)
        arr[k]["lat"], arr[k]["lon"] = lat, lon
    arr["speed_kmh"], arr["ignition"], arr["valid"] = speed_kmh, 1, True
    return arr


def test_a_quiet_drive_takes_the_fast_paths_and_speeding_still_alerts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the open road at a steady 29 km/h only the schedule steps (its ETAs fall due
    every 30 s, and it is late); a speeding run after it still opens its alert."""
    stepped: list[str] = []
    for mod in (stops, overspeed, silence, membership):
        monkeypatch.setattr(mod, "step", _counting(mod.step, mod.__name__, stepped))
    rules = VehicleRules.new(plan(None), Settings())
    rules.process(road(0, 10, 28.8), T0 + 60, None)  # leaves the depot: stepped
    stepped.clear()
    found = rules.process(road(10, 10, 28.8), T0 + 110, None)
    assert stepped == []
    assert {f.event.kind for f in found} <= {"eta", "eta_at_risk"}  # the schedule's
    assert found
    assert rules.stops.last_t_s == T0 + 95.0
    found = rules.process(road(20, 10, 120.0), T0 + 160, None)
    assert ("overspeed", "open") in [(f.event.kind, f.event.phase) for f in found]


def _counting(fn: Callable[..., Any], name: str, into: list[str]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        into.append(name)
        return fn(*args, **kwargs)

    return counted


def test_edges_are_stepped_not_guessed() -> None:
    """A fix exactly on a stop circle's edge is decided by ``step``'s own arithmetic."""
    x = np.array([1150.0])
    assert float(np.hypot(x - 1000.0, 0.0)[0]) == 150.0
    info = plan(None)
    fixes = timeline([(5.0, 20, 1150.0, 0.0, 0.0, -1, 0)])
    assert _run(info, fixes, [7], [False], True, False) == _run(
        info, fixes, [7], [False], False, False
    )


def test_a_whole_number_speed_limit_is_a_limit_like_any_other() -> None:
    """A limit given as an int (``Settings(default_speed_limit_kmh=90)``) resumes the
    overspeed fast path after an eventful fix as a float one does."""
    found = []
    for limit in (90, 90.0):
        rules = VehicleRules.new(plan(None), Settings(default_speed_limit_kmh=limit))
        fixes = road(0, 10, 28.8)
        said = rules.process(fixes, T0 + 60, None)  # leaves the depot: stepped, then resumes
        found.append(_canon(said))
    assert found[0] == found[1]
    assert found[0] != "[]"
