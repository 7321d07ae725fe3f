"""Delivery planning: PyVRP through our adapter against the nearest-neighbour baseline,
and against the published optima of Solomon's R1/RC1 100-customer instances.

Run: ``.venv/bin/python bench/bench_plan.py [--limits 5,10,30] [--solomon-s 10]``.
Part 1 plans a generated day (500 orders, 20 vans, 2–4 h windows, kg and m³ capacities,
around Jakarta) at each time limit, checks every plan with the independent checker and
compares total distance with the baseline from the same run. Part 2 needs the Solomon
files that ship in the ``VRPSolverEasy`` wheel (``pip install VRPSolverEasy`` into the
venv; it is a bench-only tool, not a dependency) or ``--solomon-dir``; it uses the DIMACS
convention (Euclidean distance truncated to one decimal, travel time = distance) that the
optima below were computed with. Prints tables for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oms_core.planning import (  # noqa: E402
    Job,
    Problem,
    Site,
    Vehicle,
    check,
    nearest_neighbour,
    plan,
    random_problem,
)
from oms_core.planning.matrix import HaversineMatrix  # noqa: E402

# Optimal total distances (distance objective, DIMACS one-decimal truncation) from the
# published tables of proven optima for Solomon's 100-customer instances.
OPTIMA = {
    "R101": 1637.7, "R102": 1466.6, "R103": 1208.7, "R104": 971.5, "R105": 1355.3,
    "R106": 1234.6, "R107": 1064.6, "R108": 932.1, "R109": 1146.9, "R110": 1068.0,
    "R111": 1048.7, "R112": 948.6, "RC101": 1619.8, "RC102": 1457.4, "RC103": 1258.0,
    "RC104": 1132.3, "RC105": 1513.7, "RC106": 1372.7, "RC107": 1207.8, "RC108": 1114.2,
}  # fmt: skip
SCALE = 10  # one decimal of Solomon units = 1 "metre" / "second" in our integer model


class SolomonMatrix:
    """Euclidean distance over (lon, lat) = (x, y), ×10 and truncated; time = distance."""

    def matrices(
        self, sites: Sequence[Site]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        xy = np.array([(s.lon, s.lat) for s in sites], dtype=np.float64)
        d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2))
        dist = np.floor(d * SCALE).astype(np.int64)
        return dist, dist.copy()


def read_solomon(path: Path) -> Problem:
    """A Solomon text instance as our Problem (demand → kg, no volume, times ×10)."""
    lines = [ln.split() for ln in path.read_text().splitlines()]
    head = next(i for i, ln in enumerate(lines) if ln[:1] == ["NUMBER"])
    n_vehicles, cap = int(lines[head + 1][0]), float(lines[head + 1][1])
    rows = [ln for ln in lines[head + 2 :] if len(ln) == 7 and ln[0].isdigit()]
    sites = [Site(r[0], float(r[2]), float(r[1])) for r in rows]
    depot, (open_s, close_s) = sites[0], (int(rows[0][4]) * SCALE, int(rows[0][5]) * SCALE)
    jobs = tuple(
        Job(r[0], s, float(r[3]), 0.0, int(r[6]) * SCALE, int(r[4]) * SCALE, int(r[5]) * SCALE)
        for r, s in zip(rows[1:], sites[1:], strict=True)
    )
    vehicles = tuple(Vehicle(f"V{i}", depot, cap, 1.0, open_s, close_s) for i in range(n_vehicles))
    return Problem(jobs=jobs, vehicles=vehicles, depot_open_s=open_s, depot_close_s=close_s)


def solomon_dir(given: str | None) -> Path | None:
    if given:
        return Path(given)
    spec = importlib.util.find_spec("VRPSolverEasy")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "demos" / "data" / "CVRPTW"


def bench_day(limits: list[float], seed: int) -> None:
    problem = random_problem(500, 20, seed=seed)
    matrix = HaversineMatrix()
    t0 = time.perf_counter()
    base = nearest_neighbour(problem)
    t_base = time.perf_counter() - t0
    print(
        f"\n500 orders, 20 vans (seed {seed}); baseline: {base.served} served,"
        f" {len(base.unassigned)} unassigned, {base.distance_m / 1000:.1f} km,"
        f" {len(base.routes)} routes, {t_base * 1000:.0f} ms,"
        f" checker: {len(check(problem, base, matrix))} violations"
    )
    print("| limit s | wall s | served | unassigned | routes | km | vs baseline | violations |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for limit in limits:
        t0 = time.perf_counter()
        got = plan(problem, time_limit_s=limit, seed=1)
        wall = time.perf_counter() - t0
        bad = check(problem, got, matrix)
        saving = 1 - got.distance_m / base.distance_m
        print(
            f"| {limit:g} | {wall:.1f} | {got.served} | {len(got.unassigned)} |"
            f" {len(got.routes)} | {got.distance_m / 1000:.1f} | {saving:.1%} shorter |"
            f" {len(bad)} |"
        )


def bench_solomon(folder: Path, limit: float) -> None:
    print(f"\nSolomon R1/RC1, 100 customers, {limit:g} s each, seed 1 (DIMACS distances)")
    print("| instance | optimum | ours | gap | routes | unassigned | violations |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    gaps: list[float] = []
    for name, best in OPTIMA.items():
        path = folder / f"{name}.txt"
        if not path.exists():
            print(f"| {name} | {best} | missing file | | | | |")
            continue
        problem = read_solomon(path)
        got = plan(problem, matrix=SolomonMatrix(), time_limit_s=limit, seed=1)
        bad = check(problem, got, SolomonMatrix())
        ours = got.distance_m / SCALE
        gap = (ours - best) / best
        if not got.unassigned:
            gaps.append(gap)
        print(
            f"| {name} | {best} | {ours:.1f} | {gap:.2%} | {len(got.routes)} |"
            f" {len(got.unassigned)} | {len(bad)} |"
        )
    if gaps:
        print(
            f"\nmean gap over {len(gaps)} complete plans: {statistics.mean(gaps):.2%}"
            f" (max {max(gaps):.2%})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--limits", default="5,10,30", help="time limits for the 500-order day")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--solomon-s", type=float, default=10.0)
    ap.add_argument("--solomon-dir", default=None)
    args = ap.parse_args()
    bench_day([float(x) for x in args.limits.split(",")], args.seed)
    folder = solomon_dir(args.solomon_dir)
    if folder is None or not folder.is_dir():
        print("\nSolomon instances not found: pip install VRPSolverEasy or pass --solomon-dir")
        return
    bench_solomon(folder, args.solomon_s)


if __name__ == "__main__":
    main()
