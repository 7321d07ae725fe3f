"""GT06 decoding speed: split + decode of a realistic stream against bare struct parsing.

Run: ``.venv/bin/python bench/bench_gt06.py [--frames N]``. Builds a stream with the
simulator's encoder (one login, then a vehicle driving: 0x12 and 0x22 locations, a
heartbeat every 20th packet, an SOS alarm now and then), feeds it to ``split_frames``
in 1460-byte TCP segments and decodes each segment's frames, as ingest does. In the
same run two baselines read the same frames: the bare minimum (``struct.unpack`` of
the fixed GPS fields, no checks at all) and the CRC alone. Prints a table for
BENCHMARKS.md. Every figure is single-threaded and the best of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import math
import random
import struct
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from decoders import _gt06_frame, gt06  # noqa: E402
from decoders.model import Session  # noqa: E402
from simulators import gt06_out  # noqa: E402

IMEI = "359710049057012"
SEGMENT = 1460  # one TCP segment's payload
_GPS = struct.Struct(">6BBIIBH")


def make_frames(n: int, seed: int = 7) -> list[bytes]:
    """A login and ``n`` packets of a vehicle driving around Amsterdam, 10 s apart."""
    rng = random.Random(seed)
    frames = [gt06_out.login(IMEI, 1)]
    lat, lon, course = 52.37, 4.89, 90.0
    t = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
    for i in range(n):
        serial = (i + 2) & 0xFFFF
        if i % 20 == 19:
            frames.append(gt06_out.heartbeat(serial, acc=True))
            continue
        t += timedelta(seconds=10)
        speed = max(0, round(40 + 20 * math.sin(i / 60) + rng.gauss(0, 3)))
        course = (course + rng.gauss(0, 5)) % 360
        lat += speed / 360 / 111.0 * math.cos(math.radians(course))
        lon += speed / 360 / 68.0 * math.sin(math.radians(course))
        fix: dict[str, Any] = {
            "time": t,
            "lat": lat,
            "lon": lon,
            "speed_kmh": speed,
            "course_deg": round(course) % 360,
            "satellites": rng.randint(6, 12),
            "valid": True,
            "serial": serial,
        }
        if i % 500 == 250:
            frames.append(gt06_out.alarm(**fix, alarm="sos", acc=True))
        else:
            frames.append(gt06_out.location(**fix, proto=0x22 if i % 2 else 0x12, acc=True))
    return frames


def bench_decoder(stream: bytes, repeat: int) -> tuple[float, int]:
    """Best seconds to split (per segment) and decode the stream; fixes decoded."""
    best, fixes = math.inf, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        session, rest, fixes = Session(), b"", 0
        for i in range(0, len(stream), SEGMENT):
            frames, rest = gt06.split_frames(rest + stream[i : i + SEGMENT])
            out = gt06.decode_frames(frames, session=session)
            session, fixes = out.session, fixes + len(out.fixes)
        best = min(best, time.perf_counter() - t0)
        assert rest == b"" and not out.rejects
    return best, fixes


def bench_struct(frames: list[bytes], repeat: int) -> float:
    """Best seconds to read the GPS fields of every location frame with no checks."""
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = []
        for f in frames:
            if f[3] in (0x12, 0x22, 0x16):
                v = _GPS.unpack_from(f, 4)
                rows.append((v[:6], v[6] & 15, v[7] / 1_800_000, v[8] / 1_800_000, v[9], v[10]))
        best = min(best, time.perf_counter() - t0)
    return best


def bench_crc(frames: list[bytes], repeat: int) -> float:
    """Best seconds to check the CRC of every frame, nothing else."""
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        ok = all(_gt06_frame.crc_itu(f[2:-4]) == int.from_bytes(f[-4:-2]) for f in frames)
        best = min(best, time.perf_counter() - t0)
        assert ok
    return best


def bench_one(frame: bytes, repeat: int, calls: int = 20_000) -> float:
    """Best seconds per ``decode_frames`` call for one location packet."""
    session = Session(device_id=IMEI)
    per = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(calls):
            gt06.decode_frames([frame], session=session)
        per = min(per, (time.perf_counter() - t0) / calls)
    return per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000, help="packets after the login")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    frames = make_frames(args.frames)
    stream = b"".join(frames)
    n = len(frames)
    dec, fixes = bench_decoder(stream, args.repeat)
    plain = bench_struct(frames, args.repeat)
    crc = bench_crc(frames, args.repeat)
    one = bench_one(frames[2], args.repeat)

    rate, plain_rate, crc_rate = n / dec, n / plain, n / crc
    rows = [
        ("frames (login, 0x12/0x22, 0x13, 0x16)", f"{n:,}", f"{fixes:,} fixes"),
        ("bytes", f"{len(stream):,}", f"{SEGMENT}-byte segments"),
        ("split + decode", f"{rate:,.0f} frames/s", f"{dec * 1e3:.1f} ms"),
        ("baseline: struct.unpack GPS only", f"{plain_rate:,.0f} frames/s", "no checks"),
        ("baseline: CRC-16/X.25 only", f"{crc_rate:,.0f} frames/s", "binascii.crc_hqx"),
        ("decoder / struct baseline", f"{rate / plain_rate:.2f}x", "cost of checks + Decoded"),
        ("decoder / CRC baseline", f"{rate / crc_rate:.2f}x", ""),
        ("1 packet: decode_frames", f"{one * 1e6:.1f} us/call", "0x22 location"),
    ]
    print(f"| {'measure':<38} | {'value':<22} | {'note':<26} |")
    print(f"|{'-' * 40}|{'-' * 24}|{'-' * 28}|")
    for a, b, c in rows:
        print(f"| {a:<38} | {b:<22} | {c:<26} |")


if __name__ == "__main__":
    main()
