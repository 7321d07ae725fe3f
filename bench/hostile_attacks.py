"""The attacks of ``bench_hostile.py``, each run in a process of its own.

Every attacker connects from 127.0.1.x and up, never from the devices' 127.0.0.1, so
per-peer limits that stop it never concern the devices. Whatever the service does to an
attacker (refuses, closes, stalls) is counted, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import resource
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

from bench_tcp import raise_nofile

TCP_PORTS = ("t55", "teltonika", "gt06", "h02", "gps103", "osmand")  # <name>_port settings
LINE_STARTS = {"gps103": b"imei:", "h02": b"*HQ,", "t55": b"$GPRMC,", "osmand": b"GET /?id="}
BINARY_PORTS = ("teltonika", "gt06")
ATTACKER_NICE = 10  # the attack process's priority: below the service and the devices


def _src(i: int) -> str:
    """The attacker's i-th source address, never the devices' 127.0.0.1."""
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


@dataclasses.dataclass
class Tally:
    conns: int = 0  # connections made (the kernel may accept what the service never does)
    refused: int = 0  # connects refused, reset or timed out; UDP sends that failed
    closed: int = 0  # connections the service closed while the attacker held them
    sent: int = 0  # bytes (TCP) or datagrams (UDP)
    held_at: float = 0.0  # idle: time.monotonic() (system-wide) once every connection is open
    closing_at: float = 0.0  # idle: time.monotonic() as it starts closing them


async def _open(port: int, src: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
    async with asyncio.timeout(5.0):
        return await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))


async def _closed_by_peer(reader: asyncio.StreamReader) -> None:
    """Return once the service closes (EOF or reset); read and drop anything it says."""
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass


Sender = Callable[[asyncio.StreamWriter, "asyncio.Future[None]"], Awaitable[None]]


async def _hammer(port: int, src: str, send: Sender, t: Tally, until: float) -> None:
    """Connect, ``send`` until the service closes the connection, connect again (≤ 10/s)."""
    while time.monotonic() < until:
        began = time.monotonic()
        try:
            r, w = await _open(port, src)
        except (OSError, TimeoutError):
            t.refused += 1
            await asyncio.sleep(0.1)
            continue
        t.conns += 1
        closed = asyncio.ensure_future(_closed_by_peer(r))
        try:
            await send(w, closed)
        except OSError:
            pass  # reset while writing: closed all the same
        finally:
            closed.cancel()
            w.close()
        t.closed += 1
        await asyncio.sleep(max(0.0, began + 0.1 - time.monotonic()))


def _line(line: bytes, t: Tally) -> Sender:
    async def send(w: asyncio.StreamWriter, closed: asyncio.Future[None]) -> None:
        w.write(line)
        await w.drain()
        t.sent += len(line)
        await closed

    return send


def _junk(pool: bytes, bytes_per_s: float, t: Tally) -> Sender:
    rng = random.Random()

    async def send(w: asyncio.StreamWriter, closed: asyncio.Future[None]) -> None:
        while not closed.done():
            size = rng.randint(256, 4096)
            at = rng.randrange(len(pool) - size)
            w.write(pool[at : at + size])
            await w.drain()
            t.sent += size
            await asyncio.sleep(size / bytes_per_s)

    return send


async def _idle(ports: list[int], n: int, peers: int, hold_s: float, t: Tally) -> None:
    gate = asyncio.Semaphore(256)
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def one(i: int) -> None:
        async with gate:
            try:
                held.append(await _open(ports[i % len(ports)], _src(i % peers)))
            except (OSError, TimeoutError):
                t.refused += 1

    await asyncio.gather(*(one(i) for i in range(n)))
    t.conns, t.held_at = len(held), time.monotonic()
    watches = [asyncio.ensure_future(_closed_by_peer(r)) for r, _ in held]
    try:
        await asyncio.sleep(hold_s)
        t.closed = sum(w.done() for w in watches)
    finally:
        t.closing_at = time.monotonic()
        for watch in watches:
            watch.cancel()
        for _, w in held:
            w.close()


async def _udp(port: int, rate: float, t: Tally, until: float) -> None:
    rng = random.Random()
    grams = [rng.randbytes(rng.randint(16, 600)) for _ in range(256)]
    grams = [len(g).to_bytes(2, "big") + g if i % 2 else g for i, g in enumerate(grams)]
    socks = []
    for i in range(8):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((_src(i), 0))
        s.setblocking(False)
        socks.append(s)
    t0 = time.monotonic()
    try:
        while time.monotonic() < until:
            for _ in range(int((time.monotonic() - t0) * rate) - t.sent - t.refused):
                try:
                    rng.choice(socks).sendto(rng.choice(grams), ("127.0.0.1", port))
                    t.sent += 1
                except OSError:
                    t.refused += 1
            await asyncio.sleep(0.005)
    finally:
        for s in socks:
            s.close()


def attack(kind: str, cfg: dict[str, Any], out: Connection) -> None:
    """Run one attack for ``phase_s`` seconds; send "start", then the tally and CPU seconds.

    At a lower priority (``ATTACKER_NICE``): here the attacker shares the service's two
    cores, which a real one across the network does not, and its own CPU would count as
    the service's slowness. It still takes every cycle the others leave; the tally shows
    what it managed to send.
    """
    os.nice(ATTACKER_NICE)
    raise_nofile()
    t = Tally()
    ports: dict[str, int] = cfg["ports"]
    phase_s: float = cfg["phase_s"]
    until = time.monotonic() + phase_s
    jobs: list[Coroutine[Any, Any, None]]
    if kind == "lines":
        body = b"A" * (cfg["line_kib"] * 1024)
        starts = enumerate(LINE_STARTS.items())
        jobs = [_hammer(ports[p], _src(i), _line(s + body, t), t, until) for i, (p, s) in starts]
    elif kind == "idle":
        jobs = [_idle([ports[p] for p in TCP_PORTS], cfg["idle"], cfg["idle_peers"], phase_s, t)]
    elif kind == "junk":
        pool, n = os.urandom(1 << 20), cfg["junk_conns"]
        rate = cfg["junk_mib_s"] * (1 << 20) / n
        jobs = [
            _hammer(ports[BINARY_PORTS[i % 2]], _src(i), _junk(pool, rate, t), t, until)
            for i in range(n)
        ]
    else:
        jobs = [_udp(ports["teltonika_udp"], cfg["udp_rate"], t, until)]

    async def main() -> None:
        tasks = [asyncio.ensure_future(j) for j in jobs]
        done, _ = await asyncio.wait(tasks, timeout=None if kind == "idle" else phase_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # an attacker bug must show, not pass as a quiet phase

    out.send("start")
    asyncio.run(main())
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out.send({**dataclasses.asdict(t), "cpu_s": ru.ru_utime + ru.ru_stime})
