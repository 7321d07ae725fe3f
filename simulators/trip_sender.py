"""Send a fix timeline (``trip_driver.drive``) through the fleet's own links: MQTT
(Menara JSON, which carries ignition) or a TCP device protocol (T55 by default, which
does not), as fast as possible or paced at a speed-up of fix time.

    fixes = drive(trip, faults=(Detour(after_m=1000, length_m=800, offset_m=400),))
    stats = asyncio.run(send_timeline(fixes, transport="mqtt", speedup=None))
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Callable, Sequence
from typing import Literal

from simulators.dialects import DIALECTS
from simulators.errors import SimulatorError
from simulators.model import NEEDS_IMEI, FleetConfig, FleetStats
from simulators.mqtt_link import MqttLink
from simulators.tcp_link import TcpLink
from simulators.vehicle import SimFix

__all__ = ["send_timeline"]


async def _due(at: float, stop: asyncio.Event) -> bool:
    """Wait until loop time ``at`` unless stopped first; False when stopped."""
    delay = at - asyncio.get_running_loop().time()
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
    else:
        await asyncio.sleep(0)
    return not stop.is_set()


async def send_timeline(
    fixes: Sequence[SimFix],
    *,
    transport: Literal["mqtt", "tcp"] = "mqtt",
    host: str = "127.0.0.1",
    port: int | None = None,
    speedup: float | None = None,
    protocol: str = "t55",
    qos: int = 1,
    topic_prefix: str = "menara/v1",
    connect_timeout_s: float = 10.0,
    ack_timeout_s: float = 30.0,
    stop: asyncio.Event | None = None,
) -> FleetStats:
    """Send ``fixes`` in order: as fast as possible (``speedup`` None) or paced so that
    fix time runs ``speedup`` times faster than the wall clock.

    MQTT publishes Menara JSON to ``<topic_prefix>/<device>/json`` (port default 1883);
    TCP opens one connection per device speaking ``protocol`` (port default 5005).
    Returns the fleet counters: ``stats.sent`` is every fix the broker acknowledged or
    the socket took. Raises ``SimulatorError`` when the broker cannot be reached.
    """
    if speedup is not None and not (math.isfinite(speedup) and speedup > 0):
        raise SimulatorError(f"speedup must be > 0 or None (as fast as possible), not {speedup}")
    if transport == "tcp" and protocol not in DIALECTS:
        raise SimulatorError(f"protocol must be one of {', '.join(DIALECTS)}, not {protocol!r}")
    stop = stop or asyncio.Event()
    devices = sorted({f.device_id for f in fixes})
    cfg = FleetConfig(
        vehicles=max(1, len(devices)),
        transport=transport,
        payload="json",
        qos=qos,
        topic_prefix=topic_prefix,
        mqtt_host=host,
        mqtt_port=port or 1883,
        tcp_host=host,
        tcp_port=port or 5005,
        protocols=(protocol,) if transport == "tcp" else ("t55",),
        ports={protocol: port or 5005},
        imei=transport == "tcp" and protocol in NEEDS_IMEI,
        ack_timeout_s=ack_timeout_s,
    )
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    stats = FleetStats()
    first = fixes[0].fix_time if fixes else None
    span = (fixes[-1].fix_time - fixes[0].fix_time).total_seconds() if fixes else 0.0
    give_up_at = t0 + connect_timeout_s + (span / speedup if speedup else 0.0)

    def due(fix: SimFix) -> float:
        if speedup is None or first is None:
            return 0.0
        return t0 + (fix.fix_time - first).total_seconds() / speedup

    try:
        if transport == "mqtt":
            mqtt = MqttLink(cfg, stats.mqtt, stats.sent, stop=stop)
            try:
                if not await mqtt.start(t0 + connect_timeout_s):
                    raise SimulatorError(
                        f"no MQTT broker answered at {host}:{cfg.mqtt_port} within"
                        f" {connect_timeout_s} s; start one or pass host and port"
                    )
                stats.mqtt.vehicles = len(devices)
                for fix in fixes:
                    if not await _due(due(fix), stop):
                        break
                    await mqtt.device(fix.device_id).send_fix(fix.json(), fix.key)
            finally:
                await mqtt.close(ack_timeout_s)
        else:
            await _send_tcp(fixes, cfg, stats, protocol, give_up_at, stop, due)
    finally:
        stats.elapsed_s = loop.time() - t0
    return stats


async def _send_tcp(
    fixes: Sequence[SimFix],
    cfg: FleetConfig,
    stats: FleetStats,
    protocol: str,
    give_up_at: float,
    stop: asyncio.Event,
    due: Callable[[SimFix], float],
) -> None:
    """One ``TcpLink`` per device; a device whose server stays away is given up."""
    dialect = DIALECTS[protocol]
    links: dict[str, TcpLink] = {}
    serials: dict[str, int] = {}
    dead: set[str] = set()
    try:
        for fix in fixes:
            if fix.device_id in dead:
                continue
            if not await _due(due(fix), stop):
                break
            link = links.get(fix.device_id)
            if link is None:
                link = links[fix.device_id] = TcpLink(
                    fix.device_id,
                    dialect,
                    cfg,
                    stats.tcp,
                    stats.sent,
                    give_up_at=give_up_at,
                    stop=stop,
                    rng=random.Random(fix.device_id),
                )
                stats.tcp.vehicles += 1
            serial = serials[fix.device_id] = serials.get(fix.device_id, 0) + 1
            if not await link.send_fix(dialect.encode(fix, serial), fix.key):
                dead.add(fix.device_id)
    finally:
        for link in links.values():
            await link.close()
