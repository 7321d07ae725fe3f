"""Complexity checks for tests: time per byte must stay flat as the input grows.

A check, not a benchmark: CPU time of this thread (other processes on a busy machine do
not count), garbage collection paused, best of a few runs, sizes climbing by 4x so
quadratic work fails at a small size (seconds) instead of running for hours at 1 MiB.
``HOSTILE`` holds the byte streams a peer may send to make a framer work hard.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIZES = tuple(1 << k for k in range(10, 21, 2))  # 1 KiB, 4 KiB ... 1 MiB
BOUND = 8.0  # time per byte may grow this much from the smallest size to the largest
_LONG_S = 1.0  # a run this long over the bound is not noise: fail without retrying


@contextmanager
def _no_gc() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _cpu_s(fn: Callable[[bytes], object], buf: bytes, calls: int) -> float:
    with _no_gc():
        t = time.thread_time()
        for _ in range(calls):
            fn(buf)
        return (time.thread_time() - t) / calls


def per_byte_s(fn: Callable[[bytes], object], buf: bytes, *, runs: int, calls: int) -> float:
    """Best CPU seconds per byte of ``fn(buf)`` over ``runs`` runs of ``calls`` calls."""
    return min(_cpu_s(fn, buf, calls) for _ in range(runs)) / len(buf)


def assert_linear(
    fn: Callable[[bytes], object],
    make: Callable[[int], bytes],
    what: str,
    *,
    sizes: tuple[int, ...] = SIZES,
    bound: float = BOUND,
) -> None:
    """Fail unless ``fn(make(n))`` costs under ``bound`` times the smallest size's time
    per byte at every size in ``sizes``."""
    base = per_byte_s(fn, make(sizes[0]), runs=5, calls=32)
    for n in sizes[1:]:
        buf = make(n)
        best = float("inf")
        for _ in range(5):  # retried only while over the bound: a busy machine, not work
            took = _cpu_s(fn, buf, 1)
            best = min(best, took / n)
            if best < bound * base or took > _LONG_S:
                break
        assert best < bound * base, (
            f"{what}: {best * 1e9:.1f} ns/byte at {n} bytes, {base * 1e9:.1f} ns/byte at"
            f" {sizes[0]} bytes: more than {bound:g}x, the work grows faster than the input"
        )


_TERMINATORS = b";\n*#"
_NOISE = random.Random(14).randbytes(3 << 19).translate(None, _TERMINATORS)[: 1 << 20]
assert len(_NOISE) == 1 << 20

_RUNS = (
    b"A",
    b"*",
    b"$",
    b"#",
    b";",
    b"\n",
    b"\r\n",
    b",",
    b"1",
    b"X",
    b"\xff",
    b"\x00",
    b"\x78\x78",
    b"\x79\x79",
    b"\x78\x78\x05",
    b"\x79\x79\x00\x05",
    b"*HQ,",
    b"imei:",
    b"$GPRMC,",
)
_STARTS = (
    b"*HQ,",
    b"$",
    b"X",
    b"\x78\x78",
    b"\x79\x79\x00\x05",
    b"##,imei:",
    b"imei:1,",
    b"$GPRMC,",
    b"\x00\x00\x00\x00\x00\x00\x00\x10",  # a Teltonika AVL header
    b"{",
)


def _run(unit: bytes) -> Callable[[int], bytes]:
    return lambda n: (unit * (n // len(unit) + 1))[:n]


def _after(start: bytes) -> Callable[[int], bytes]:
    return lambda n: start + _NOISE[: n - len(start)]


# Unterminated input, runs of every terminator and start marker, noise with no
# terminator, a start marker and then noise.
HOSTILE: dict[str, Callable[[int], bytes]] = {
    **{f"run of {unit!r}": _run(unit) for unit in _RUNS},
    "noise without terminators": lambda n: _NOISE[:n],
    **{f"{start!r} then noise": _after(start) for start in _STARTS},
}
