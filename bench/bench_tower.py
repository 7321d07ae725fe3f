"""Rule evaluation per core: 1,000 vehicles on active trips through every rule.

Run: ``.venv/bin/python bench/bench_tower.py [--vehicles 1000] [--fixes 300] [--batch 10]``.
``--vehicles 10000 --fixes 60`` is the 10,000-vehicle run.

Each vehicle drives its own ten-stop trip over a 30 km × 30 km city (simulators.trip_driver,
5 s fixes, stops served) among 1,000 polygon zones (bench_zones' city). The worker's hot
path is timed in CPU seconds, round by round as the worker runs it: the zone index
answers membership for every vehicle's batch of the round in one call
(``round_members``), then per vehicle ``VehicleRules.process`` runs quality, zones,
overspeed, silence, stops, corridor and schedule over its batch. No database: what is
measured is the rules, not the effects.

Baseline in the same run, on the same fixes: the bare geometry a shapely-only engine
would do and nothing else — per round, as the worker does, one STRtree query plus
``contains_xy`` for the zones of every vehicle's batch, then per vehicle ``shapely.dwithin``
against its route line for the corridor. The floor is
the cost of making one ``Sample`` per fix, which every per-fix rule engine pays.

Memory per vehicle, after the timed runs: Python allocations (``tracemalloc``) of fresh
rule states for every vehicle taken through three rounds (states, per-plan geometry
caches and a shallow copy of each plan; the stops and routes it shares are not
counted), and the size of one
saved state (the ``rule_state`` row's JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_zones import city_zones  # noqa: E402

from decoders.model import FixArray, empty_fixes  # noqa: E402
from deviation.model import Sample  # noqa: E402
from deviation.plan import PlannedStop, TripPlan  # noqa: E402
from geofence import ZoneIndex  # noqa: E402
from geofence.projection import LocalProjection  # noqa: E402
from menara.settings import Settings  # noqa: E402
from simulators.trip_driver import DrivenStop, DrivenTrip, drive  # noqa: E402
from tower.plans import VehicleInfo  # noqa: E402
from tower.vehicle import VehicleRules  # noqa: E402
from tower.worker import round_members  # noqa: E402

LAT0, LON0 = 52.37, 4.90
T0 = datetime(2026, 6, 2, 8, 0, tzinfo=UTC)
SERVICE_S = 180.0


def trip(i: int, rng: np.random.Generator, fixes: int) -> tuple[VehicleInfo, FixArray]:
    """One vehicle's plan and its first ``fixes`` fixes."""
    proj = LocalProjection(LAT0, LON0)
    depot = (rng.uniform(-5000, 5000), rng.uniform(-5000, 5000))
    pts = [depot]
    for _ in range(10):
        x, y = pts[-1]
        pts.append((x + rng.uniform(-1500, 1500), y + rng.uniform(-1500, 1500)))
    pts.append(depot)
    latlon = [proj.to_latlon(x, y) for x, y in pts]
    speed = 36 / 3.6
    t = T0.timestamp()
    stops = []
    for k in range(1, 11):
        t += math.dist(pts[k - 1], pts[k]) / speed
        stops.append(
            PlannedStop(
                i * 100 + k,
                k,
                *latlon[k],
                *pts[k],
                150.0,
                t,
                t + SERVICE_S,
                SERVICE_S,
                t - 1800,
                t + 1800,
                (i * 100 + k,),
            )
        )
        t += SERVICE_S
    device = f"BENCH{i:05d}"
    plan = TripPlan(
        trip_id=i, vehicle_id=i, depot_id=1, device_id=device, projection=proj,
        route_xy=tuple(pts), stops=tuple(stops), depot_lat=latlon[0][0], depot_lon=latlon[0][1],
        depot_x_m=depot[0], depot_y_m=depot[1], depot_radius_m=300.0,
        planned_departure_s=T0.timestamp(), planned_return_s=t + 600, max_speed_kmh=None,
    )  # fmt: skip
    driven = DrivenTrip(
        device, latlon[0][0], latlon[0][1], [(lon, lat) for lat, lon in latlon],
        tuple(DrivenStop(s.lat, s.lon, SERVICE_S) for s in stops), T0,
    )  # fmt: skip
    sim = drive(driven, seed=i)[:fixes]
    arr = empty_fixes(len(sim))
    arr["fix_time_us"] = [int(f.fix_time.timestamp() * 1e6) for f in sim]
    arr["lat"] = [f.lat for f in sim]
    arr["lon"] = [f.lon for f in sim]
    arr["speed_kmh"] = [f.speed_kmh for f in sim]
    arr["ignition"] = [-1 if f.ignition is None else int(f.ignition) for f in sim]
    arr["valid"] = True
    return VehicleInfo(i, device, f"B {i}", 1, None, plan), arr


def run_rules(
    rules: list[VehicleRules],
    fixes: list[FixArray],
    index: ZoneIndex,
    batch: int,
    per_round: bool = True,
) -> tuple[float, int, int]:
    """CPU seconds, fixes and findings for every batch of every vehicle, round robin;
    zone membership per round (as the worker does) or, to compare, per vehicle batch."""
    n = len(fixes[0])
    done = found = 0
    start = time.process_time()
    for lo in range(0, n, batch):
        round_ = [f[lo : lo + batch] for f in fixes]
        if per_round:
            members = round_members(index, round_)
        else:
            members = [index.members(b["lat"], b["lon"]) for b in round_]
        for r, b, m in zip(rules, round_, members, strict=True):
            rcv = b["fix_time_us"][-1] / 1e6 + 1.0
            found += len(r.process(b, rcv, m, index))
            done += len(b)
    return time.process_time() - start, done, found


def run_baseline(
    plans: list[TripPlan], fixes: list[FixArray], zones: list[shapely.Geometry], batch: int
) -> tuple[float, int]:
    """Bare shapely, rounds like the rules': one STRtree query and ``contains_xy`` for every
    vehicle's batch of the round, then ``dwithin`` per vehicle for the corridor. (It once
    rebuilt ``np.asarray(zones)`` per vehicle batch, more than half its time.)"""
    tree = shapely.STRtree(zones)
    for z in zones:
        shapely.prepare(z)
    polygons = np.asarray(zones)
    lines = [shapely.LineString(p.route_xy) for p in plans]
    for ln in lines:
        shapely.prepare(ln)
    n = len(fixes[0])
    done = 0
    start = time.process_time()
    for lo in range(0, n, batch):
        round_ = [f[lo : lo + batch] for f in fixes]
        lat = np.concatenate([b["lat"] for b in round_])
        lon = np.concatenate([b["lon"] for b in round_])
        pi, zi = tree.query(shapely.points(lon, lat), predicate="intersects")
        shapely.contains_xy(polygons[zi], lon[pi], lat[pi])
        for p, line, b in zip(plans, lines, round_, strict=True):
            x, y = p.projection.to_xy_arrays(b["lat"], b["lon"])
            shapely.dwithin(line, shapely.points(x, y), 300.0)
            done += len(b)
    return time.process_time() - start, done


def floor(fixes: list[FixArray]) -> tuple[float, int]:
    """CPU seconds to build one Sample per fix (the per-fix entry cost of any rule)."""
    start = time.process_time()
    done = 0
    for f in fixes:
        t, lat, lon = f["fix_time_us"] / 1e6, f["lat"], f["lon"]
        sp, ign = f["speed_kmh"], f["ignition"]
        for i in range(len(f)):
            Sample(float(t[i]), float(lat[i]), float(lon[i]), 0.0, 0.0, float(sp[i]), int(ign[i]))
        done += len(f)
    return time.process_time() - start, done


def memory(
    infos: list[VehicleInfo], fixes: list[FixArray], index: ZoneIndex, batch: int, cfg: Settings
) -> tuple[float, float]:
    """(bytes of Python allocations per vehicle for its rule states after three rounds,
    bytes of one vehicle's saved state as JSON, averaged)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    # fresh plan objects, so their geometry caches are made (and counted) again
    infos = [dataclasses.replace(i, trip=i.trip and dataclasses.replace(i.trip)) for i in infos]
    rules = [VehicleRules.new(info, cfg) for info in infos]
    run_rules(rules, [f[: 3 * batch] for f in fixes], index, batch)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    saved = sum(len(json.dumps(r.to_json(), separators=(",", ":"))) for r in rules)
    return held / len(rules), saved / len(rules)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--fixes", type=int, default=300, help="fixes per vehicle (5 s apart)")
    ap.add_argument("--batch", type=int, default=10, help="fixes per vehicle batch")
    ap.add_argument("--zones", type=int, default=1000)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    print(f"building {args.vehicles} trips and {args.fixes} fixes each ...", flush=True)
    built = [trip(i, rng, args.fixes) for i in range(args.vehicles)]
    zones = city_zones(args.zones, rng)
    index = ZoneIndex(zones)
    cfg = Settings()
    infos = [b[0] for b in built]
    fixes = [b[1] for b in built]
    warm = [VehicleRules.new(info, cfg) for info in infos[:5]]
    run_rules(warm, fixes[:5], index, args.batch)  # compile the numba kernels
    rules = [VehicleRules.new(info, cfg) for info in infos]
    cpu, n, found = run_rules(rules, fixes, index, args.batch)
    rules = [VehicleRules.new(info, cfg) for info in infos]
    pb_cpu, pb_n, _ = run_rules(rules, fixes, index, args.batch, per_round=False)
    base_cpu, base_n = run_baseline(
        [i.trip for i in infos if i.trip], fixes, [z.geometry for z in zones], args.batch
    )
    floor_cpu, floor_n = floor(fixes)
    per_vehicle, saved = memory(infos, fixes, index, args.batch, cfg)
    ours, base, flo = n / cpu, base_n / base_cpu, floor_n / floor_cpu
    print(f"date {datetime.now(UTC):%Y-%m-%d}, {args.vehicles} vehicles, batch {args.batch}")
    print(f"  all rules (VehicleRules.process + zone index): {ours:>10,.0f} fixes/s per core")
    print(f"    findings: {found} events over {n} fixes")
    print(f"  same, zone index called per vehicle batch: {pb_n / pb_cpu:>10,.0f} fixes/s")
    print(f"  baseline bare shapely (per round STRtree, dwithin): {base:>10,.0f} fixes/s")
    print(f"  floor (one Sample per fix, no rule): {flo:>10,.0f} fixes/s")
    print(f"  ratio all rules / shapely geometry only: {ours / base:.2f}x")
    print(f"  memory per vehicle: {per_vehicle / 1024:,.1f} KiB of rule state and plan caches,")
    print(f"    {saved:,.0f} bytes saved (rule_state JSON)")


if __name__ == "__main__":
    main()
