"""Teltonika decoding speed: the numba kernel against a plain-Python ``struct`` decoder.

Run: ``.venv/bin/python bench/bench_teltonika.py [--records N] [--per-packet K]``.
Builds ``N`` codec 8 records (an FMB120's usual 14 IO values) in packets of ``K`` with
the simulator's encoder, then times, in the same run and best of ``--repeat`` rounds:
the kernel alone (CRC check, fix rows, flat IO rows), the full ``decode_frames``
(``Decoded`` with one attribute dict per record), and a ``struct`` decoder written
below that does the same work in plain Python, with its CRC check and without it (no
CRC-16/IBM in the standard library, so the per-byte loop dominates). Then one live
packet (one record) through ``decode_frames``. Prints a table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from decoders import _teltonika_kernel as k  # noqa: E402
from decoders import teltonika  # noqa: E402
from decoders.model import Session  # noqa: E402
from simulators import teltonika_out as enc  # noqa: E402

SESSION = Session(device_id="356307042441013")
_HEAD = struct.Struct(">QBiihHBHBB")  # time .. speed, event id, total IO count
_WIDTH = {1: struct.Struct(">BB"), 2: struct.Struct(">BH"), 4: struct.Struct(">BI")}
_W8 = struct.Struct(">BQ")
_CRC = [int(c) for c in k.CRC_TABLE]


def make_packets(n: int, per_packet: int, seed: int = 7) -> list[bytes]:
    """``n`` records of a vehicle driving, ``per_packet`` to an AVL packet."""
    rng = np.random.default_rng(seed)
    t0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
    lat, lon, odo = 52.37, 4.89, 1_234_567
    recs: list[enc.AvlRecord] = []
    for i in range(n):
        speed = int(max(0, 50 + 20 * math.sin(i / 60) + rng.normal(0, 3)))
        lat += speed / 3.6 / 111_000 * 0.7
        lon += speed / 3.6 / 68_000 * 0.7
        odo += speed * 10 // 36
        io = {239: 1, 240: 1, 21: 4, 200: 0, 69: 1, 181: 9, 182: 7, 66: 14_200,
              24: speed, 67: 4_100, 68: 0, 16: odo, 241: 24_602, 199: i}  # fmt: skip
        recs.append(
            enc.AvlRecord(
                t0 + timedelta(seconds=i),
                round(lat, 7),
                round(lon, 7),
                5,
                int(rng.integers(0, 360)),
                12,
                speed,
                io=io,
            )
        )
    return [enc.avl_packet(recs[i : i + per_packet]) for i in range(0, n, per_packet)]


def crc16(data: bytes) -> int:
    c = 0
    for b in data:
        c = (c >> 8) ^ _CRC[(c ^ b) & 0xFF]
    return c


def struct_decode(packet: bytes, check_crc: bool) -> list[tuple[Any, ...]]:
    """Plain-Python codec 8: the same checks and outputs as the kernel, one record a tuple."""
    (length,) = struct.unpack_from(">I", packet, 4)
    data = packet[8 : 8 + length]
    if check_crc and crc16(data) != struct.unpack_from(">I", packet, 8 + length)[0]:
        raise ValueError("bad CRC")
    n = data[1]
    p = 2
    out = []
    for _ in range(n):
        ms, prio, lon, lat, alt, angle, sats, speed, event, _total = _HEAD.unpack_from(data, p)
        p += _HEAD.size
        io: dict[int, int] = {}
        for width in (1, 2, 4):
            cnt = data[p]
            p += 1
            unpack = _WIDTH[width].unpack_from
            for _ in range(cnt):
                ident, v = unpack(data, p)
                io[ident] = v
                p += 1 + width
        cnt = data[p]
        p += 1
        for _ in range(cnt):
            ident, v = _W8.unpack_from(data, p)
            io[ident] = v
            p += 9
        out.append((ms * 1000, lat / 1e7, lon / 1e7, speed, angle, alt, sats, prio, event, io))
    if p != len(data) - 1 or data[p] != n:
        raise ValueError("bad length")
    return out


def _best(fn: Any, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--per-packet", type=int, default=50, help="records per AVL packet")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    packets = make_packets(args.records, args.per_packet)
    buf = b"".join(packets)
    lens = np.array([len(p) for p in packets], np.int64)
    base = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    starts, ends, crcs = base + 8, base + lens - 5, base + lens - 4
    arr = np.frombuffer(buf, np.uint8)

    out = teltonika.decode_frames(packets, session=SESSION)  # compile / load the cache
    assert not out.rejects and len(out.fixes) == args.records, out.rejects[:3]
    assert struct_decode(packets[0], True)[0][0] == int(out.fixes[0]["fix_time_us"])

    kern = _best(lambda: k.decode(arr, starts, ends, crcs), args.repeat)
    full = _best(lambda: teltonika.decode_frames(packets, session=SESSION), args.repeat)
    base_crc = _best(lambda: [struct_decode(p, True) for p in packets], args.repeat)
    base_nocrc = _best(lambda: [struct_decode(p, False) for p in packets], args.repeat)
    one = [enc.avl_packet([enc.AvlRecord(datetime(2024, 6, 1, tzinfo=UTC), 52.37, 4.89,
                                         io={239: 1, 66: 14_200, 16: 1_000})])]  # fmt: skip
    calls = 20_000
    per_call = _best(
        lambda: [teltonika.decode_frames(one, session=SESSION) for _ in range(calls)],
        args.repeat,
    )

    n = args.records
    rk, rf, rc, rn = n / kern, n / full, n / base_crc, n / base_nocrc
    rows = [
        ("records (codec 8, 14 IO each)", f"{n:,}", f"{len(packets):,} packets"),
        ("bytes", f"{len(buf):,}", f"{len(buf) / n:.0f} B/record"),
        ("kernel only", f"{rk:,.0f} records/s", "target >= 1,000,000"),
        ("decode_frames (Decoded, dicts)", f"{rf:,.0f} records/s", f"{full * 1e3:.1f} ms"),
        ("struct decoder with CRC", f"{rc:,.0f} records/s", "pure-Python CRC loop"),
        ("struct decoder without CRC", f"{rn:,.0f} records/s", "parse only"),
        ("kernel / struct with CRC", f"{rk / rc:,.0f}x", "same work; target >= 20x"),
        ("kernel / struct without CRC", f"{rk / rn:,.0f}x", "kernel still checks CRC"),
        ("decode_frames / struct with CRC", f"{rf / rc:,.1f}x", ""),
        ("1 packet, 1 record: decode_frames", f"{per_call / calls * 1e6:.1f} us/call", "live"),
    ]
    print(f"| {'measure':<36} | {'value':<24} | {'note':<28} |")
    print(f"|{'-' * 38}|{'-' * 26}|{'-' * 30}|")
    for a, b, c in rows:
        print(f"| {a:<36} | {b:<24} | {c:<28} |")


if __name__ == "__main__":
    main()
