"""Rule speed: corridor distances against bare shapely, and the chained per-fix rules.

Run: ``.venv/bin/python bench/bench_rules.py [--vehicles N] [--segments S] [--repeat R]``.

(a) Corridor: every vehicle has its own planned route (a random walk of ``--segments``
    500 m segments, metric) and sends a batch of fixes near it. Per batch and vehicle we
    time ``deviation.route.distances`` (distance to the nearest segment and the
    along-route position) over the whole route and within the window a worker uses
    (``corridor.window`` from the vehicle's progress at the batch's first fix and the
    batch's duration), and in the same run the bare shapely baseline on the same
    points: ``shapely.points`` + ``shapely.dwithin(line, points, 300)`` on a prepared
    line (a yes/no answer only), and ``shapely.points`` + ``shapely.distance``.
(b) Rules: ``quality.check`` → ``corridor.step`` → ``overspeed.step`` per fix for every
    vehicle, after one ``distances_for`` call per vehicle batch, building each ``Sample``
    from the batch arrays as the worker does: fixes/s on one core; then the same with the
    quality gate run once per batch (``quality.check_batch``).

Single-threaded, CPU time (other processes share the machine), best of ``--repeat``
rounds; prints a table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deviation import corridor, overspeed, quality, route  # noqa: E402
from deviation.model import Sample  # noqa: E402

_F64 = np.ndarray[tuple[int, ...], np.dtype[np.float64]]


def make_routes(vehicles: int, segments: int, seed: int = 11) -> list[_F64]:
    """Random-walk polylines of 500 m segments, one per vehicle."""
    rng = np.random.default_rng(seed)
    heading = np.cumsum(rng.normal(0, 0.4, (vehicles, segments)), axis=1)
    steps = np.stack([np.cos(heading), np.sin(heading)], axis=2) * 500.0
    start = np.zeros((vehicles, 1, 2))
    return list(np.concatenate([start, np.cumsum(steps, axis=1)], axis=1))


def make_fixes(route: _F64, n: int, rng: np.random.Generator) -> tuple[_F64, _F64]:
    """``n`` fixes 5 s apart driving the route at about 60 km/h with 10 m of GPS noise;
    one vehicle in five takes a 500 m detour (ramped, so no fix is an impossible jump)."""
    seg = np.hypot(*np.diff(route, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = rng.uniform(0, cum[-1] / 2) + np.cumsum(rng.uniform(70, 100, n))
    s = np.minimum(s, cum[-1])
    xs = np.interp(s, cum, route[:, 0]) + rng.normal(0, 10.0, n)
    ys = np.interp(s, cum, route[:, 1]) + rng.normal(0, 10.0, n)
    if rng.random() < 0.2:
        i = np.arange(n)
        a, b = n // 4, 3 * n // 4
        ys += np.clip(np.minimum(i - a, b - i) * 100.0, 0.0, 500.0)
    return xs, ys


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def bench_corridor(routes: list[_F64], per_batch: int, repeat: int) -> tuple[float, ...]:
    rng = np.random.default_rng(per_batch)
    corridors = [route.Corridor.from_xy(r) for r in routes]
    lines = shapely.linestrings(routes)
    shapely.prepare(lines)
    fixes = [make_fixes(r, per_batch, rng) for r in routes]
    total = len(routes) * per_batch
    params = corridor.CorridorParams()
    windows = [
        corridor.window(float(route.distances(c, xs[:1], ys[:1])[1][0]), 5.0 * xs.size, params)
        for c, (xs, ys) in zip(corridors, fixes, strict=True)
    ]

    def ours() -> None:
        for c, (xs, ys) in zip(corridors, fixes, strict=True):
            route.distances(c, xs, ys)

    def windowed() -> None:
        for c, (xs, ys), (lo, hi) in zip(corridors, fixes, windows, strict=True):
            route.distances(c, xs, ys, lo, hi)

    def dwithin() -> None:
        for line, (xs, ys) in zip(lines, fixes, strict=True):
            shapely.dwithin(line, shapely.points(xs, ys), 300.0)

    def distance() -> None:
        for line, (xs, ys) in zip(lines, fixes, strict=True):
            shapely.distance(line, shapely.points(xs, ys))

    ours()  # compile / load the cached kernel outside the timing
    d_ours, _ = route.distances(corridors[0], *fixes[0])
    d_ref = shapely.distance(lines[0], shapely.points(*fixes[0]))
    assert np.allclose(d_ours, d_ref, atol=1e-6), "corridor distances disagree with shapely"
    return tuple(total / best(f, repeat) for f in (ours, windowed, dwithin, distance))


def bench_chain(routes: list[_F64], per_batch: int, rounds: int, repeat: int, mode: str) -> float:
    rng = np.random.default_rng(5)
    corridors = [route.Corridor.from_xy(r) for r in routes]
    batches = []
    for v, r in enumerate(routes):
        xs, ys = make_fixes(r, per_batch * rounds, rng)
        t = 1_700_000_000.0 + v + 5.0 * np.arange(xs.size)
        speed = rng.normal(45, 5, xs.size)  # limit 50: one vehicle in ten speeds a while
        if v % 10 == 0:
            speed[xs.size // 3 : xs.size // 2] += 30.0
        batches.append((t, xs, ys, speed))
    cp, op, qp = corridor.CorridorParams(), overspeed.OverspeedParams(), quality.QualityParams()
    limit, source = overspeed.limit_for([50.0], None, 90.0)

    def run() -> int:
        states = [(quality.QualityState(), corridor.CorridorState(), overspeed.OverspeedState())]
        states *= len(routes)
        events = 0
        for k in range(rounds):
            sl = slice(k * per_batch, (k + 1) * per_batch)
            for v, (t, xs, ys, speed) in enumerate(batches):
                q, c, o = states[v]
                tb, xb, yb, vb = t[sl], xs[sl], ys[sl], speed[sl]
                rcv = tb + 1.0
                if mode == "batch":
                    q, ev, ok = quality.check_batch(q, tb, xb, yb, rcv, None, qp)
                    events += len(ev)
                    if not ok.all():
                        tb, xb, yb, vb, rcv = tb[ok], xb[ok], yb[ok], vb[ok], rcv[ok]
                dist, along = corridor.distances_for(c, corridors[v], tb, xb, yb, cp)
                rows = zip(
                    tb.tolist(),
                    xb.tolist(),
                    yb.tolist(),
                    vb.tolist(),
                    rcv.tolist(),
                    dist.tolist(),
                    along.tolist(),
                    strict=True,
                )
                for ti, x, y, kmh, r, d, a in rows:
                    s = Sample(ti, 52.0, 4.0, x, y, kmh, 1, True, r)
                    if mode == "floor":
                        continue
                    if mode == "fix":
                        q, ev, accepted = quality.check(q, s, qp)
                        events += len(ev)
                        if not accepted:
                            continue
                    c, ev = corridor.step(c, s, d, a, None, cp)
                    events += len(ev)
                    o, ev = overspeed.step(o, s, limit, source, op)
                    events += len(ev)
                states[v] = (q, c, o)
        return events

    events = run()
    assert events > 0 or mode == "floor", (
        "the synthetic fleet raised no alert: the benchmark measures nothing"
    )
    return len(routes) * per_batch * rounds / best(run, repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--segments", type=int, default=50)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 10, 100])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    routes = make_routes(args.vehicles, args.segments)
    print(f"{args.vehicles} vehicles, routes of {args.segments} segments, single-threaded")
    print("| fixes per vehicle batch | distances fixes/s | windowed | shapely dwithin"
          " | shapely distance | ratio vs dwithin (windowed) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.batches:
        ours, win, dwithin, distance = bench_corridor(routes, n, args.repeat)
        print(f"| {n} | {ours:,.0f} | {win:,.0f} | {dwithin:,.0f} | {distance:,.0f}"
              f" | {ours / dwithin:.1f}x ({win / dwithin:.1f}x) |")  # fmt: skip
    print("\nquality + corridor + overspeed, batches of 10 fixes per vehicle, fixes/s/core:")
    for mode, label in (
        ("fix", "gate by quality.check per fix"),
        ("batch", "gate by quality.check_batch"),
        ("floor", "floor: the same loop building Samples, no rule"),
    ):
        print(f"- {label}: {bench_chain(routes, 10, 5, args.repeat, mode):,.0f}")


if __name__ == "__main__":
    main()
