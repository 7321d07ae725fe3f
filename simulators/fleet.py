"""Run a fleet of virtual trackers against the ingest service, with faults on purpose.

Every vehicle follows the same loop whatever its transport: wait for its next fix time,
maybe send a junk line, send the fix, maybe resend a recent fix, maybe (TCP) hang up.
TCP vehicles each hold one connection and speak their device protocol (T55, Teltonika,
GT06, H02, GPS103: ``simulators.dialects``), HTTP vehicles are phones posting OsmAnd
requests; MQTT vehicles share one paho client and publish to ``<prefix>/<id>/nmea`` or
``/json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp

from simulators import http_link
from simulators.dialects import DIALECTS
from simulators.model import (
    DeviceLink,
    FleetConfig,
    FleetStats,
    Transport,
    TransportStats,
    device_ids,
    protocols,
    transports,
)
from simulators.mqtt_link import MqttLink
from simulators.routes import JAKARTA_ROUTES
from simulators.tcp_link import TcpLink
from simulators.vehicle import SimFix, Vehicle, garbage_line

__all__ = [
    "FleetConfig",
    "FleetStats",
    "Transport",
    "TransportStats",
    "device_ids",
    "run_fleet",
    "transports",
]

# Longest wait for the broker's last acknowledgements once every vehicle is done.
ACK_TIMEOUT_S = 30.0
# How many recent fixes a vehicle may pick a duplicate from.
DUPLICATE_WINDOW = 16


class _Pacer:
    """When each vehicle's k-th fix is due: spread over the period in realtime, else now."""

    def __init__(self, cfg: FleetConfig, t0: float, stop: asyncio.Event) -> None:
        self._realtime = cfg.realtime
        self._period = 1.0 / cfg.rate_hz
        self._t0 = t0
        self._stop = stop

    async def wait(self, k: int, phase: float) -> bool:
        """Sleep until fix ``k`` of a vehicle with ``phase`` (0..1) is due; False if stopped."""
        if self._realtime:
            loop = asyncio.get_running_loop()
            delay = self._t0 + (k + phase) * self._period - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        else:
            await asyncio.sleep(0)
        return not self._stop.is_set()


async def _drive(
    cfg: FleetConfig,
    vehicle: Vehicle,
    link: DeviceLink,
    encode: Callable[[SimFix, int], bytes],
    junk: Callable[[random.Random, SimFix], bytes],
    pacer: _Pacer,
    rng: random.Random,
) -> None:
    recent: deque[bytes] = deque(maxlen=DUPLICATE_WINDOW)
    phase = rng.random()
    fixes = vehicle.fixes()
    for k in range(cfg.fix_count):
        if not await pacer.wait(k, phase):
            return
        fix = next(fixes)
        payload = encode(fix, k)
        if rng.random() < cfg.garbage and not await link.send_garbage(junk(rng, fix)):
            return
        if not await link.send_fix(payload, fix.key):
            return
        recent.append(payload)
        if rng.random() < cfg.duplicate and not await link.send_duplicate(rng.choice(recent)):
            return
        if rng.random() < cfg.disconnect and not await link.drop():
            return


def _mqtt_nmea(fix: SimFix, _: int) -> bytes:
    return fix.nmea()


def _mqtt_json(fix: SimFix, _: int) -> bytes:
    return fix.json()


def _phone_query(fix: SimFix, _: int) -> bytes:
    return http_link.encode(fix, json_body=False)


def _phone_json(fix: SimFix, _: int) -> bytes:
    return http_link.encode(fix, json_body=True)


async def _report(stats: FleetStats, t0: float, progress: Callable[[FleetStats], None]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(1.0)
        stats.elapsed_s = loop.time() - t0
        progress(stats)


async def run_fleet(
    cfg: FleetConfig,
    *,
    progress: Callable[[FleetStats], None] | None = None,
    stop: asyncio.Event | None = None,
) -> FleetStats:
    """Drive every vehicle until its fixes are sent, time is up, or ``stop`` is set.

    ``progress`` gets the live stats about once a second (read them, don't keep them).
    Returns after all connections are closed and, for MQTT QoS >= 1, after the broker
    acknowledged everything (or ``ACK_TIMEOUT_S`` passed), so ``stats.sent`` is exactly
    what reached the broker or a TCP socket.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    stats = FleetStats()
    pacer = _Pacer(cfg, t0, stop)
    span = cfg.fix_count / cfg.rate_hz if cfg.realtime else 0.0
    give_up_at = t0 + max(cfg.duration_s, span)
    start = cfg.start_time or datetime.now(UTC)
    routes = cfg.routes or JAKARTA_ROUTES
    plan = transports(cfg)
    spoken = protocols(cfg)
    reporter = asyncio.create_task(_report(stats, t0, progress)) if progress else None
    mqtt: MqttLink | None = None
    tcp: list[TcpLink] = []
    phones: aiohttp.ClientSession | None = None
    try:
        if "mqtt" in plan.values():
            mqtt = MqttLink(cfg, stats.mqtt, stats.sent, stop=stop)
            if not await mqtt.start(give_up_at):
                plan = {d: t for d, t in plan.items() if t != "mqtt"}
        if "http" in plan.values():
            phones = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        async with asyncio.TaskGroup() as tg:
            for i, device_id in enumerate(device_ids(cfg)):
                transport = plan.get(device_id)
                if transport is None:
                    continue
                # Separate streams for the trip and the faults: changing fault rates
                # must not change where the vehicles drive.
                rng = random.Random(f"faults/{cfg.seed}/{i}")
                vehicle = Vehicle(
                    device_id,
                    routes[i % len(routes)],
                    start=start,
                    rate_hz=cfg.rate_hz,
                    seed=cfg.seed * 1_000_003 + i,
                )
                link: DeviceLink
                encode: Callable[[SimFix, int], bytes] = _mqtt_nmea
                junk: Callable[[random.Random, SimFix], bytes] = garbage_line
                if transport == "tcp":
                    dialect = DIALECTS[spoken[device_id]]
                    tcp_link = TcpLink(
                        device_id,
                        dialect,
                        cfg,
                        stats.tcp,
                        stats.sent,
                        give_up_at=give_up_at,
                        stop=stop,
                        rng=rng,
                    )
                    tcp.append(tcp_link)
                    link, encode, junk = tcp_link, dialect.encode, dialect.junk
                elif transport == "http":
                    assert phones is not None
                    link = http_link.HttpLink(
                        cfg, stats.http, stats.sent, phones, give_up_at=give_up_at, stop=stop
                    )
                    encode = _phone_json if i % 2 else _phone_query
                    junk = http_link.junk
                else:
                    assert mqtt is not None
                    link = mqtt.device(device_id)
                    if cfg.payload == "json":
                        encode = _mqtt_json
                getattr(stats, transport).vehicles += 1
                tg.create_task(_drive(cfg, vehicle, link, encode, junk, pacer, rng))
    finally:
        for t in tcp:
            await t.close()
        if phones is not None:
            await phones.close()
        if mqtt is not None:
            await mqtt.close(ACK_TIMEOUT_S)
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        stats.elapsed_s = loop.time() - t0
    if progress is not None:
        progress(stats)
    return stats
