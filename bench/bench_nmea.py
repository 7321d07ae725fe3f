"""NMEA decoding speed: the numba kernel against pynmea2, per-packet cost, warm start.

Run: ``.venv/bin/python bench/bench_nmea.py [--epochs N]``. Generates a realistic
stream (a vehicle driving, GNRMC + GNGGA per 1 s epoch, checksums on), decodes it with
the kernel, and with pynmea2 (parse and read every field we store) on a subset, in the
same run; then times one tracker packet (one RMC + one GGA line, as the TCP listener
sees it) through ``t55.decode_frames`` and ``nmea.decode_frames``. Prints a table for
BENCHMARKS.md. Every figure is single-threaded and the best of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from functools import reduce
from pathlib import Path

import numpy as np
import pynmea2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from decoders import _nmea_kernels, nmea, t55  # noqa: E402
from decoders.model import Session  # noqa: E402


def _cs(body: str) -> str:
    return f"${body}*{reduce(lambda a, b: a ^ b, body.encode(), 0):02X}\r\n"


def _dm(value: float, width: int) -> str:
    deg = int(abs(value))
    return f"{deg:0{width}d}{(abs(value) - deg) * 60:07.4f}"


def make_stream(epochs: int, seed: int = 7) -> bytes:
    """``epochs`` seconds of driving around Amsterdam, two sentences a second."""
    rng = np.random.default_rng(seed)
    lat, lon, course = 52.37, 4.89, 90.0
    out: list[str] = []
    for i in range(epochs):
        t = 36_000 + i
        hms = f"{t // 3600 % 24:02d}{t // 60 % 60:02d}{t % 60:02d}.00"
        date = f"{1 + t // 86_400 % 28:02d}0624"
        speed_kn = max(0.0, 20 + 10 * math.sin(i / 60) + rng.normal(0, 1))
        course = (course + rng.normal(0, 3)) % 360
        lat += speed_kn * 1.852 / 3600 / 111.0 * math.cos(math.radians(course))
        lon += speed_kn * 1.852 / 3600 / 68.0 * math.sin(math.radians(course))
        ns, ew = _dm(lat, 2), _dm(lon, 3)
        out.append(_cs(f"GNRMC,{hms},A,{ns},N,{ew},E,{speed_kn:.3f},{course:.2f},{date},,,A"))
        sats, hdop = int(rng.integers(6, 20)), rng.uniform(0.6, 2.5)
        out.append(
            _cs(
                f"GNGGA,{hms},{ns},N,{ew},E,1,{sats:02d},{hdop:.2f},{3 + rng.normal():.1f}"
                ",M,46.9,M,,"
            )
        )
    return "".join(out).encode()


def bench_kernel(buf: bytes, repeat: int) -> tuple[float, float]:
    """Best seconds for (kernel only, full decode_buffer incl. Decoded)."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    nmea.decode_buffer(buf[:200], session=Session())  # compile / load cache
    kern, full = math.inf, math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        _nmea_kernels.decode(arr, _nmea_kernels.NO_IGNITION, -1, -1)
        t1 = time.perf_counter()
        out = nmea.decode_buffer(buf, session=Session())
        t2 = time.perf_counter()
        kern, full = min(kern, t1 - t0), min(full, t2 - t1)
    assert not out.rejects, out.rejects[:3]
    return kern, full


def bench_packet(buf: bytes, repeat: int, calls: int = 20_000) -> tuple[float, float]:
    """Best seconds per call for one RMC+GGA packet: (t55.decode_frames, nmea.decode_frames).

    The session carries identity and date, as it does on a live connection.
    """
    frames = buf.split(b"\r\n")[:2]
    session = Session(device_id="359853000144328", last_date_days=19_875, last_tod_ms=0)
    best = []
    for codec in (t55, nmea):
        out = codec.decode_frames(frames, session=session)
        assert len(out.fixes) == 1 and not out.rejects, out.rejects
        per = math.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(calls):
                codec.decode_frames(frames, session=session)
            per = min(per, (time.perf_counter() - t0) / calls)
        best.append(per)
    return best[0], best[1]


def bench_pynmea2(lines: list[str]) -> float:
    """Seconds to parse ``lines`` with pynmea2 and read the fields the kernel produces."""
    t0 = time.perf_counter()
    for line in lines:
        msg = pynmea2.parse(line)
        _ = (msg.latitude, msg.longitude, msg.timestamp)
        if isinstance(msg, pynmea2.RMC):
            _ = (msg.datestamp, float(msg.spd_over_grnd) * 1.852, msg.true_course, msg.status)
        else:
            _ = (msg.gps_qual, int(msg.num_sats), float(msg.horizontal_dil), msg.altitude)
    return time.perf_counter() - t0


WARM = """
import time
t0 = time.perf_counter()
from decoders import nmea
from decoders.model import Session
t1 = time.perf_counter()
nmea.decode(b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",
            session=Session())
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def _fresh(env: dict[str, str]) -> tuple[float, float]:
    res = subprocess.run(
        [sys.executable, "-c", WARM], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    imp, first = (float(x) for x in res.stdout.split())
    return imp, first


def start_times(runs: int = 3) -> tuple[tuple[float, float], float]:
    """Best warm (import s, first decode s) in fresh interpreters, and one cold compile s.

    Cold uses an empty ``NUMBA_CACHE_DIR`` so the repository's cache is left alone.
    """
    env = dict(os.environ)
    _fresh(env)  # make sure the cache exists
    warm = min((_fresh(env) for _ in range(runs)), key=sum)
    with tempfile.TemporaryDirectory() as cache:
        cold = _fresh({**env, "NUMBA_CACHE_DIR": cache})[1]
    return warm, cold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=100_000, help="seconds of driving (x2 lines)")
    ap.add_argument("--baseline", type=int, default=20_000, help="lines given to pynmea2")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    buf = make_stream(args.epochs)
    n = buf.count(b"\n")
    kern, full = bench_kernel(buf, args.repeat)
    lines = buf.decode().splitlines()[: args.baseline]
    base = min(bench_pynmea2(lines) for _ in range(args.repeat))  # best of N, as the kernel
    t55_call, nmea_call = bench_packet(buf, args.repeat)
    (imp, first), cold = start_times()

    kern_rate, full_rate, base_rate = n / kern, n / full, len(lines) / base
    rows = [
        ("sentences (RMC+GGA)", f"{n:,}", ""),
        ("bytes", f"{len(buf):,}", ""),
        ("kernel only", f"{kern_rate:,.0f} sentences/s", f"{kern * 1e3:.1f} ms"),
        ("decode_buffer (Decoded)", f"{full_rate:,.0f} sentences/s", f"{full * 1e3:.1f} ms"),
        ("pynmea2 parse + fields", f"{base_rate:,.0f} sentences/s", f"{len(lines):,} lines"),
        ("speed-up kernel / pynmea2", f"{kern_rate / base_rate:,.0f}x", "target >= 150x"),
        ("speed-up decode_buffer / pynmea2", f"{full_rate / base_rate:,.0f}x", ""),
        (
            "1 packet: t55.decode_frames",
            f"{t55_call * 1e6:.1f} us/call",
            "RMC+GGA, target <= 15 us",
        ),
        ("1 packet: nmea.decode_frames", f"{nmea_call * 1e6:.1f} us/call", "RMC+GGA"),
        ("warm start: import", f"{imp:.3f} s", "fresh process"),
        ("warm start: first decode", f"{first:.3f} s", "cache=True, target <= 0.5 s"),
        ("cold start: first decode", f"{cold:.3f} s", "empty cache: numba compiles"),
    ]
    print(f"| {'measure':<34} | {'value':<26} | {'note':<28} |")
    print(f"|{'-' * 36}|{'-' * 28}|{'-' * 30}|")
    for a, b, c in rows:
        print(f"| {a:<34} | {b:<26} | {c:<28} |")


if __name__ == "__main__":
    main()
