"""``python -m simulators``: run a fleet from the command line; Ctrl-C stops it cleanly."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from simulators.fleet import FleetConfig, FleetStats, run_fleet
from simulators.routes import load_geojson


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    p.add_argument("--vehicles", type=int, default=50)
    p.add_argument("--rate-hz", type=float, default=1.0)
    p.add_argument("--duration-s", type=float, default=60.0)
    p.add_argument("--fixes-per-vehicle", type=int, default=None)
    p.add_argument("--transport", choices=("mixed", "mqtt", "tcp"), default="mixed")
    p.add_argument("--payload", choices=("nmea", "json"), default="nmea")
    p.add_argument("--id-prefix", default="SIM")
    p.add_argument("--imei", action="store_true", help="15-digit IMEI device ids")
    p.add_argument("--qos", type=int, choices=(0, 1, 2), default=1)
    p.add_argument("--mqtt-host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--topic-prefix", default="menara/v1")
    p.add_argument("--tcp-host", default="127.0.0.1")
    p.add_argument("--tcp-port", type=int, default=5005)
    p.add_argument("--fast", action="store_true", help="not realtime: send as fast as possible")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--routes", help="GeoJSON file of routes (default: built-in Jakarta)")
    for fault in ("duplicate", "garbage", "split", "disconnect"):
        p.add_argument(f"--{fault}", type=float, default=0.0, help="probability per fix")
    return p


def _line(s: FleetStats) -> str:
    parts = [f"{s.elapsed_s:6.1f}s"]
    for name in ("mqtt", "tcp"):
        t = getattr(s, name)
        parts.append(
            f"{name}: {t.fixes_sent} fixes, {t.duplicates_sent} dup, {t.garbage_sent} junk, "
            f"{t.reconnects} reconn, {t.connect_failures} conn-fail, {t.publish_failures} pub-fail"
        )
    return " | ".join(parts)


async def _main(cfg: FleetConfig) -> FleetStats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await run_fleet(cfg, stop=stop, progress=lambda s: print(_line(s), flush=True))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the fleet, print counters about once a second."""
    a = _parser().parse_args(argv)
    cfg = FleetConfig(
        vehicles=a.vehicles,
        rate_hz=a.rate_hz,
        duration_s=a.duration_s,
        fixes_per_vehicle=a.fixes_per_vehicle,
        transport=a.transport,
        payload=a.payload,
        id_prefix=a.id_prefix,
        imei=a.imei,
        qos=a.qos,
        mqtt_host=a.mqtt_host,
        mqtt_port=a.mqtt_port,
        topic_prefix=a.topic_prefix,
        tcp_host=a.tcp_host,
        tcp_port=a.tcp_port,
        realtime=not a.fast,
        seed=a.seed,
        routes=tuple(load_geojson(a.routes)) if a.routes else None,
        duplicate=a.duplicate,
        garbage=a.garbage,
        split=a.split,
        disconnect=a.disconnect,
    )
    stats = asyncio.run(_main(cfg))
    print(f"unique fixes delivered: {stats.unique_fixes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
