"""Zone membership: ``ZoneIndex.members`` against a bare shapely STRtree query plus
``contains_xy`` (the baseline), on the same zones and points in the same run.

Run: ``.venv/bin/python bench/bench_zones.py [--zones 1000] [--points 1000000] [--repeat 3]``.
A city of 30 km × 30 km around Amsterdam holds concave star-shaped zones: 60 % small
(50–300 m), 30 % medium (0.3–1.5 km), 10 % large (1.5–5 km), overlapping freely; the
points are uniform over the city. Both sides get prepared geometries and are timed from
lat/lon arrays to their answer: the index to one frozenset of zone ids per point, the
baseline only to (point, zone) pairs, which is less work than the index's answer. The
answers are checked equal before any time is printed. Prints a table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geofence import Zone, ZoneIndex  # noqa: E402

LAT0, LON0, HALF_KM = 52.37, 4.90, 15.0
F64 = npt.NDArray[np.float64]


def city_zones(n: int, rng: np.random.Generator) -> list[Zone]:
    """``n`` concave star polygons of mixed sizes over the city."""
    km_lat, km_lon = 1 / 111.2, 1 / (111.2 * math.cos(math.radians(LAT0)))
    zones = []
    for i in range(n):
        size_km = rng.choice(
            [rng.uniform(0.05, 0.3), rng.uniform(0.3, 1.5), rng.uniform(1.5, 5.0)],
            p=[0.6, 0.3, 0.1],
        )
        lat = LAT0 + rng.uniform(-HALF_KM, HALF_KM) * km_lat
        lon = LON0 + rng.uniform(-HALF_KM, HALF_KM) * km_lon
        k = int(rng.integers(5, 30))
        angles = np.sort(rng.uniform(0, 2 * math.pi, k))
        radii = size_km * rng.uniform(0.4, 1.0, k)
        ring = np.stack(
            [lon + radii * np.cos(angles) * km_lon, lat + radii * np.sin(angles) * km_lat], 1
        )
        poly = shapely.Polygon(ring)
        if not poly.is_valid:  # two angles too close: skip it
            continue
        zones.append(Zone(str(i), f"zone {i}", "area", poly))
    return zones


def baseline(
    tree: shapely.STRtree, geoms: npt.NDArray[np.object_]
) -> Callable[[F64, F64], npt.NDArray[np.int64]]:
    def run(lat: F64, lon: F64) -> npt.NDArray[np.int64]:
        pts, zone = tree.query(shapely.points(lon, lat))
        hit = shapely.contains_xy(geoms[zone], lon[pts], lat[pts])
        pairs: npt.NDArray[np.int64] = np.stack([pts[hit], zone[hit]])
        return pairs

    return run


def best_of(repeat: int, *fns: Callable[[], object]) -> list[float]:
    """Best time of each function, run in turn ``repeat`` times: interleaving keeps the
    ratio honest when other work on the machine comes and goes."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, spent in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - t)
    return [min(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zones", type=int, default=1000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=9)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    zones = city_zones(args.zones, rng)
    t = time.perf_counter()
    index = ZoneIndex(zones, args.resolution)
    build_s = time.perf_counter() - t
    geoms = np.array([z.geometry for z in zones], dtype=object)
    shapely.prepare(geoms)
    t = time.perf_counter()
    tree = shapely.STRtree(geoms)
    tree_s = time.perf_counter() - t
    km_lat = HALF_KM / 111.2
    km_lon = HALF_KM / (111.2 * math.cos(math.radians(LAT0)))
    lat = LAT0 + rng.uniform(-km_lat, km_lat, args.points)
    lon = LON0 + rng.uniform(-km_lon, km_lon, args.points)
    base = baseline(tree, geoms)

    got = index.members(lat, lon)
    pairs = base(lat, lon)
    want: list[set[str]] = [set() for _ in range(args.points)]
    for p, z in pairs.T.tolist():
        want[p].add(zones[z].id)
    assert got == [frozenset(s) for s in want], "the index and the baseline disagree"
    inside = sum(1 for s in got if s)

    ours, theirs = best_of(args.repeat, lambda: index.members(lat, lon), lambda: base(lat, lon))
    n = args.points
    print(
        f"{len(zones)} zones ({index.cells} h3 cells at resolution {args.resolution}),"
        f" {n:,} points ({inside / n:.0%} in ≥ 1 zone, {len(pairs.T) / n:.2f} zones/point);"
        f" build: index {build_s:.2f} s, STRtree {tree_s:.3f} s; best of {args.repeat}"
    )
    print("| method | s | points/s |")
    print("|---|---:|---:|")
    print(f"| ZoneIndex.members (h3 + shapely) | {ours:.3f} | {n / ours:,.0f} |")
    print(f"| STRtree.query + contains_xy (baseline) | {theirs:.3f} | {n / theirs:,.0f} |")
    print(f"ratio (index / baseline points/s): {theirs / ours:.2f}")
    print(f"median of one members_of call: {single(index):.1f} µs")


def single(index: ZoneIndex) -> float:
    times = []
    for _ in range(2000):
        t = time.perf_counter()
        index.members_of(LAT0, LON0)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


if __name__ == "__main__":
    main()
