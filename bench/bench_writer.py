"""Writer throughput against raw binary COPY of the same rows, measured in one run.

    .venv/bin/python bench/bench_writer.py [--fixes 500000] [--devices 1000] [--per-batch 50]

Creates a throwaway database (dropped at the end), then loads the same fixes three ways,
each into an empty copy of ``positions`` (same indexes and checks), committing every
``--batch-rows`` rows: the Writer end to end (put → commit → on_commit), psycopg's
``copy.write_row`` loop, and the fastest raw COPY we can build (one numpy buffer, no
staging, no conflict handling). The ratio Writer / fastest raw COPY is the figure of merit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from decoders.model import FIX_DTYPE, FixArray, empty_fixes
from ingest import _copy
from ingest.counters import Counters
from ingest.model import Batch
from ingest.writer import Writer
from menara import db

T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
COLUMNS = (
    "device_id, fix_time, received_time, lat, lon, speed_kmh, course_deg, altitude_m,"
    " satellites, hdop, valid, ignition, odometer_m, attributes, transport, protocol"
)


def make_fixes(n_fixes: int, n_devices: int) -> tuple[list[str], list[FixArray]]:
    """Per device, one fix a second along a short track, every field known."""
    per = n_fixes // n_devices
    rng = np.random.default_rng(7)
    ids = [f"86{i:013d}" for i in range(n_devices)]  # IMEI-like, 15 digits
    arrays = []
    for _ in ids:
        f = empty_fixes(per)
        f["fix_time_us"] = T0_US + np.arange(per, dtype=np.int64) * 1_000_000
        f["lat"] = -6.2 + rng.random(per) * 0.1
        f["lon"] = 106.8 + rng.random(per) * 0.1
        f["speed_kmh"] = rng.random(per) * 80
        f["course_deg"] = rng.random(per) * 360
        f["altitude_m"] = 10.0
        f["satellites"] = 9
        f["hdop"] = 0.9
        f["valid"] = True
        f["ignition"] = 1
        f["odometer_m"] = np.arange(per) * 10.0
        arrays.append(f)
    return ids, arrays


def chunks(ids: list[str], arrays: list[FixArray], per_batch: int) -> list[Batch]:
    """Batches interleaved over devices, the way messages arrive from a fleet."""
    out = []
    for start in range(0, len(arrays[0]), per_batch):
        for dev, f in zip(ids, arrays, strict=True):
            out.append(Batch(dev, "mqtt", "nmea", f[start : start + per_batch]))
    return out


async def run_writer(dsn: str, batches: list[Batch], batch_rows: int) -> float:
    acked = 0

    def ack() -> None:
        nonlocal acked
        acked += 1

    batches = [Batch(b.device_id, b.transport, b.protocol, b.fixes, on_commit=ack) for b in batches]
    async with Writer(dsn, counters=Counters(), batch_rows=batch_rows) as w:
        t = time.perf_counter()
        for b in batches:
            await w.put(b)
        await w.drain()
        elapsed = time.perf_counter() - t
    assert acked == len(batches)
    return elapsed


def groups(batches: list[Batch], batch_rows: int) -> list[list[Batch]]:
    """Whole batches per transaction, about ``batch_rows`` rows each, like the Writer's."""
    out: list[list[Batch]] = [[]]
    rows = 0
    for b in batches:
        if rows + len(b.fixes) > batch_rows and out[-1]:
            out.append([])
            rows = 0
        out[-1].append(b)
        rows += len(b.fixes)
    return out


def run_write_row(dsn: str, batches: list[Batch], batch_rows: int) -> float:
    types = [
        "text", "timestamptz", "timestamptz", "float8", "float8", "float4", "float4", "float4",
        "int2", "float4", "bool", "bool", "float8", "jsonb", "text", "text",
    ]  # fmt: skip
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    with psycopg.connect(dsn) as conn:
        t = time.perf_counter()
        for group in groups(batches, batch_rows):
            with conn.cursor().copy(
                f"COPY positions_raw ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
            ) as cp:
                cp.set_types(types)
                for b in group:
                    recv = epoch + timedelta(microseconds=b.received_us)
                    for r in b.fixes.tolist():
                        cp.write_row(
                            (b.device_id, epoch + timedelta(microseconds=r[0]), recv, r[1], r[2],
                             r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]), r[10], None,
                             b.transport, b.protocol)
                        )  # fmt: skip
            conn.commit()
        return time.perf_counter() - t


def raw_payload(batches: list[Batch]) -> bytes:
    """The rows of ``positions`` as one PGCOPY buffer (fixed width: all ids are 15 chars)."""
    fields = [
        ("device_id", "S15"), ("fix_time", ">i8"), ("received_time", ">i8"), ("lat", ">f8"),
        ("lon", ">f8"), ("speed_kmh", ">f4"), ("course_deg", ">f4"), ("altitude_m", ">f4"),
        ("satellites", ">i2"), ("hdop", ">f4"), ("valid", "u1"), ("ignition", "u1"),
        ("odometer_m", ">f8"), ("attributes", "V0"), ("transport", "S4"), ("protocol", "S4"),
    ]  # fmt: skip
    dt = np.dtype(
        [("nfields", ">i2")] + [x for n, t in fields for x in ((n + "_len", ">i4"), (n, t))]
    )
    fixes = np.frombuffer(b"".join(b.fixes.tobytes() for b in batches), FIX_DTYPE)
    rows = np.zeros(len(fixes), dt)
    rows["nfields"] = len(fields)
    for n, t in fields:
        rows[n + "_len"] = np.dtype(t).itemsize if t != "V0" else -1
    rows["device_id"] = np.repeat(
        [b.device_id.encode() for b in batches], [len(b.fixes) for b in batches]
    )
    rows["fix_time"] = fixes["fix_time_us"] - _copy.PG_EPOCH_US
    rows["received_time"] = np.repeat(
        [b.received_us - _copy.PG_EPOCH_US for b in batches], [len(b.fixes) for b in batches]
    )
    for n in ("lat", "lon", "speed_kmh", "course_deg", "altitude_m", "satellites", "hdop",
              "valid", "ignition", "odometer_m"):  # fmt: skip
        rows[n] = fixes[n]
    rows["transport"], rows["protocol"] = b"mqtt", b"nmea"
    return rows.tobytes()


def run_raw(dsn: str, batches: list[Batch], batch_rows: int) -> float:
    """One vectorised buffer for all rows (its build is timed), sliced per transaction."""
    with psycopg.connect(dsn) as conn:
        t = time.perf_counter()
        body = memoryview(raw_payload(batches))
        width = len(body) // sum(len(b.fixes) for b in batches)
        start = 0
        for group in groups(batches, batch_rows):
            end = start + width * sum(len(b.fixes) for b in group)
            with conn.cursor().copy(
                f"COPY positions_raw ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
            ) as cp:
                cp.write(_copy.PGCOPY_HEADER)
                cp.write(body[start:end])
                cp.write(_copy.PGCOPY_TRAILER)
            conn.commit()
            start = end
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixes", type=int, default=500_000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--per-batch", type=int, default=50, help="fixes in one put() Batch")
    ap.add_argument("--batch-rows", type=int, default=5000, help="rows a transaction")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the best of each is shown")
    ap.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()

    name = f"menara_bench_{uuid.uuid4().hex[:8]}"
    dsn = args.admin_dsn.rpartition("/")[0] + "/" + name
    db.ensure_database(dsn)
    try:
        db.upgrade(dsn)
        ids, arrays = make_fixes(args.fixes, args.devices)
        batches = chunks(ids, arrays, args.per_batch)
        n = sum(len(b.fixes) for b in batches)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE positions_raw (LIKE positions INCLUDING ALL)")
        methods: dict[str, Callable[[], float]] = {
            "writer (put→commit)": lambda: asyncio.run(run_writer(dsn, batches, args.batch_rows)),
            "raw COPY, numpy buffer": lambda: run_raw(dsn, batches, args.batch_rows),
            "raw COPY, write_row loop": lambda: run_write_row(dsn, batches, args.batch_rows),
        }
        results: dict[str, float] = dict.fromkeys(methods, 0.0)
        for _ in range(args.repeat):  # interleaved rounds, best of each: the host is shared
            for label, fn in methods.items():
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("TRUNCATE positions, positions_raw")
                    conn.execute("CHECKPOINT")
                results[label] = max(results[label], n / fn())
        print(f"{n} fixes, {args.devices} devices, {args.per_batch} fixes/Batch, "
              f"{args.batch_rows} rows/transaction, best of {args.repeat}")  # fmt: skip
        for label, rate in results.items():
            print(f"  {label:28s} {rate:12,.0f} rows/s")
        w = results["writer (put→commit)"]
        print(f"  writer / raw numpy COPY   {w / results['raw COPY, numpy buffer']:.2f}x")
        print(f"  writer / write_row COPY   {w / results['raw COPY, write_row loop']:.2f}x")
    finally:
        with psycopg.connect(args.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
