"""Cold start: the first fixes a new install takes, with numba's cache empty and filled.

Run: ``.venv/bin/python bench/bench_cold_start.py [--trackers 20] [--seconds 10]``.

The real service (``bench_tcp.serve_menara``: T55 listener, the rules in their worker
process) starts as a child process with ``NUMBA_CACHE_DIR`` set to an empty directory,
as a new install or a container whose cache lives in ``/tmp`` has it; then it starts
again on the cache the first start left. For each start: seconds from launch until the
T55 port accepts, then ``--trackers`` T55 trackers each send one fix a second for
``--seconds`` and every fix's time from sent to its row in ``positions`` is measured
(polled every 10 ms). Baseline in the same run: the start with the cache filled.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_tcp import free_port, stop_server, wait_port

from menara import db
from simulators.nmea_out import pgid
from simulators.vehicle import SimFix

Seen = dict[tuple[str, datetime], float]  # (device, fix time) -> monotonic seconds

ADMIN_DSN = os.environ.get(
    "MENARA_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BENCH_TCP = str(Path(__file__).with_name("bench_tcp.py"))


async def send(
    port: int, trackers: int, seconds: int, sent: dict[tuple[str, datetime], float]
) -> None:
    """Each tracker logs in, then sends one RMC+GGA a second; send times into ``sent``."""
    t0 = datetime.now(UTC).replace(microsecond=0)

    async def one(i: int) -> None:
        dev = f"8600000{i:08d}"
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(pgid(dev))
        for k in range(seconds):
            fix = SimFix(dev, t0 + timedelta(seconds=k), 52.37, 4.9 + k * 1e-4, 30.0, 90.0,
                         1.0, 9, 0.9)  # fmt: skip
            sent[(dev, fix.fix_time)] = time.monotonic()
            w.write(fix.nmea())
            await w.drain()
            await asyncio.sleep(1.0)
        w.close()

    await asyncio.gather(*(one(i) for i in range(trackers)))


def poll(
    dsn: str, want: int, seen: dict[tuple[str, datetime], float], stop: threading.Event
) -> None:
    """First time each (device, fix time) row is visible, every 10 ms."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set() and len(seen) < want:
            now = time.monotonic()
            for dev, t in conn.execute("SELECT device_id, fix_time FROM positions").fetchall():
                seen.setdefault((dev, t), now)
            time.sleep(0.01)


def start(dsn: str, cache: str, trackers: int, seconds: int) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    launched = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, BENCH_TCP, "server-menara", dsn, str(port), "0"], env=env, text=True
    )
    try:
        wait_port(port, timeout_s=300.0)
        ready_s = time.monotonic() - launched
        sent: dict[tuple[str, datetime], float] = {}
        seen: dict[tuple[str, datetime], float] = {}
        stop = threading.Event()
        poller = threading.Thread(target=poll, args=(dsn, trackers * seconds, seen, stop))
        poller.start()
        asyncio.run(send(port, trackers, seconds, sent))
        poller.join(timeout=120.0)
        stop.set()
    finally:
        stop_server(server)
    lat = np.array([seen[k] - v for k, v in sent.items() if k in seen]) * 1e3
    first = min(sent.values())
    first_key = next(k for k, v in sent.items() if v == first)
    return {
        "ready_s": ready_s,
        "first_ms": (seen.get(first_key, float("nan")) - first) * 1e3,
        "p50_ms": float(np.percentile(lat, 50)),
        "max_ms": float(lat.max()),
        "stored": len(lat),
        "sent": len(sent),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trackers", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    name = f"menara_bench_cold_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_DSN.rpartition("/")[0] + "/" + name
    db.ensure_database(dsn)
    db.upgrade(dsn, timescale="auto")
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="menara-numba-") as cache:
            for label in ("empty numba cache", "cache filled (baseline)"):
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("TRUNCATE positions")
                print(f"starting the service, {label} ...", flush=True)
                rows.append((label, start(dsn, cache, args.trackers, args.seconds)))
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    when = f"{datetime.now(UTC):%Y-%m-%d}"
    print(f"date {when}, {args.trackers} T55 trackers x 1 fix/s x {args.seconds} s")
    print("| start | launch → port accepts | first fix → row | fix → row p50 | max | stored |")
    print("|---|---|---|---|---|---|")
    for label, r in rows:
        print(
            f"| {label} | {r['ready_s']:.1f} s | {r['first_ms']:,.0f} ms | {r['p50_ms']:,.0f} ms"
            f" | {r['max_ms']:,.0f} ms | {r['stored']} of {r['sent']:.0f} |"
        )
    cold, warm = rows[0][1], rows[1][1]
    print(f"ratio worst fix latency cold / warm: {cold['max_ms'] / warm['max_ms']:.1f}x")


if __name__ == "__main__":
    main()
