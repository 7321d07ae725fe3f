"""``menara demo`` and ``menara simulate``: the whole spine on embedded defaults.

The demo creates/updates the schema, registers the simulated fleet, starts the
ingest service in-process, drives the fleet (half MQTT, the other half spread over
every device protocol that has a port: T55, Teltonika, GT06, H02, GPS103 over TCP and
OsmAnd phones over HTTP) for a bounded time with a live progress line, then prints a
summary per protocol read back from the database.

Before driving, the order side (``menara.demo_oms``) enters today's orders (Asia/Jakarta),
plans them into trips and dispatches them; each van with a trip drives its planned route,
the others (and all of them, when planning fails) the stock Jakarta routes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from ingest.counters import Counters
from menara import db, demo_oms, service
from menara.settings import Settings
from oms_core.errors import OmsError
from oms_core.planning.matrix import HaversineMatrix
from simulators.fleet import FleetConfig, FleetStats, device_ids, run_fleet
from simulators.model import DEVICE_PROTOCOLS, NEEDS_IMEI, protocols
from simulators.routes import JAKARTA_ROUTES, Route, load_geojson

# The demo plans its day in at most this long (or plan_time_limit_s when shorter).
DEMO_PLAN_LIMIT_S = 5.0


def fleet_config(args: argparse.Namespace, cfg: Settings, **extra: Any) -> FleetConfig:
    """The simulator settings for this run, pointed at the configured listeners."""
    routes = tuple(load_geojson(args.geojson)) if getattr(args, "geojson", None) else None
    return FleetConfig(
        vehicles=args.vehicles,
        rate_hz=args.rate,
        duration_s=args.duration,
        mqtt_host=cfg.mqtt_host,
        mqtt_port=cfg.mqtt_port,
        topic_prefix=cfg.mqtt_topic_prefix,
        tcp_host="127.0.0.1" if cfg.tcp_host in ("0.0.0.0", "::") else cfg.tcp_host,
        tcp_port=cfg.t55_port,
        ports={
            name: int(getattr(cfg, setting)) for name, setting in service.LISTENER_PORTS.items()
        },
        routes=routes,
        **extra,
    )


def _listening(cfg: Settings, protocol: str) -> bool:
    return int(getattr(cfg, service.LISTENER_PORTS[protocol])) > 0


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def _progress_printer(counters: Counters, started: float) -> Callable[[FleetStats], None]:
    last = {"t": started, "in": 0, "stored": 0}
    tty = sys.stdout.isatty()  # a log file gets one line per update, a terminal one live line

    def show(stats: FleetStats) -> None:
        now = time.monotonic()
        got, stored = counters.get("fixes_in"), counters.get("rows_written")
        dt = max(now - last["t"], 1e-6)
        rate_in, rate_st = (got - last["in"]) / dt, (stored - last["stored"]) / dt
        last.update(t=now, **{"in": got, "stored": stored})
        print(
            f"{chr(13) if tty else ''}[{now - started:5.0f}s] sent {stats.fixes_sent:>7}  "
            f"received {got:>7} "
            f"({rate_in:6.0f}/s)  stored {stored:>7} ({rate_st:6.0f}/s)  "
            f"rejects {counters.get('rejects'):>4}  "
            f"mqtt {counters.get('fixes_in', transport='mqtt'):>6}  "
            f"tcp {counters.get('fixes_in', transport='tcp'):>6}  "
            f"http {counters.get('fixes_in', transport='http'):>6}",
            end="" if tty else "\n",
            flush=True,
        )

    return show


async def _demo(args: argparse.Namespace, cfg: Settings) -> int:
    fleet = fleet_config(
        args,
        cfg,
        transport="mixed",
        garbage=args.garbage,
        imei=True,
        protocols=tuple(p for p in DEVICE_PROTOCOLS if _listening(cfg, p)) or ("t55",),
    )
    ids = device_ids(fleet)
    spoken = protocols(fleet)
    print(f"menara demo: database {cfg.db_dsn}")
    db.ensure_database(cfg.db_dsn)
    res = db.upgrade(
        cfg.db_dsn,
        timescale=cfg.timescale,
        compress_after=cfg.compress_after,
        retention=cfg.retention,
    )
    engine = "TimescaleDB" if res.timescaledb else "PostgreSQL (time_bucket shim)"
    print(f"schema version {res.version}, engine {engine}")
    with psycopg.connect(cfg.db_dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO devices (device_id, protocol, label) VALUES (%s, %s, %s)"
            " ON CONFLICT (device_id) DO NOTHING",
            [(d, spoken[d], f"demo van {i + 1}") for i, d in enumerate(ids)],
        )
    routes = _planned_routes(cfg, fleet, ids)
    if routes is not None:
        fleet = dataclasses.replace(fleet, routes=routes)
    counters = Counters()
    stop, ready = asyncio.Event(), asyncio.Event()
    _install_stop(stop)
    started_at = datetime.now(UTC)
    svc = asyncio.create_task(service.serve(cfg, counters=counters, stop=stop, ready=ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({svc, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if svc.done():
        waiter.cancel()
        svc.result()  # raises the service's start-up error with its message
        return 1
    print(
        f"ingest up: {', '.join(f'{p} :{fleet.port_for(p)}' for p in fleet.protocols)}, "
        f"MQTT {cfg.mqtt_host}:{cfg.mqtt_port} topics {cfg.mqtt_topic_prefix}/<device>/nmea|json;"
        f" driving {fleet.vehicles} vehicles for {fleet.duration_s:.0f}s (Ctrl-C stops early)"
    )
    t0 = time.monotonic()
    stats = await run_fleet(fleet, progress=_progress_printer(counters, t0), stop=stop)
    print("\nfleet stopped; draining the writer ...")
    stop.set()
    await svc
    _summary(cfg.db_dsn, ids, started_at, stats, counters)
    return 0


def _planned_routes(cfg: Settings, fleet: FleetConfig, ids: list[str]) -> tuple[Route, ...] | None:
    """Today's orders planned and dispatched, as one route per vehicle; None (drive the
    stock routes) when planning fails or plans nothing, with the reason printed."""
    today = datetime.now(demo_oms.JAKARTA).date()
    print(f"order side: {today} (Asia/Jakarta): entering orders, planning, dispatching")
    try:
        with psycopg.connect(cfg.db_dsn, autocommit=True) as conn:
            planned = demo_oms.seed_and_plan(
                conn,
                day=today,
                device_ids=ids,
                time_limit_s=min(cfg.plan_time_limit_s, DEMO_PLAN_LIMIT_S),
                matrix=HaversineMatrix(cfg.plan_road_factor, cfg.plan_avg_speed_kmh),
                progress=lambda line: print(f"  {line}", flush=True),
            )
    except (OmsError, psycopg.Error) as exc:
        print(f"order side: planning failed ({exc}); driving the stock routes")
        return None
    driving = len({t.device_id for t in planned} & set(ids))
    if not driving:
        print("order side: no trips to drive; driving the stock routes")
        return None
    print(
        f"order side: {driving} vehicles drive their planned trips,"
        f" {fleet.vehicles - driving} the stock routes"
    )
    return demo_oms.fleet_routes(ids, planned, fleet.routes or JAKARTA_ROUTES)


def _summary(
    dsn: str, ids: list[str], since: datetime, stats: FleetStats, counters: Counters
) -> None:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT protocol, count(*), count(DISTINCT device_id), min(fix_time), max(fix_time)"
            " FROM positions WHERE device_id = ANY(%s) AND received_time >= %s"
            " GROUP BY 1 ORDER BY 1",
            (ids, since),
        ).fetchall()
        dead = conn.execute(
            "SELECT protocol, reason, count(*) FROM dead_letters WHERE received_time >= %s"
            " GROUP BY 1, 2 ORDER BY 3 DESC",
            (since,),
        ).fetchall()
    print("\nSummary (read back from the database)")
    total = 0
    for protocol, n, devices, first, last in rows:
        total += n
        print(
            f"  {protocol:11} {n:>8} fixes from {devices:>3} devices,"
            f" fix times {first:%H:%M:%S}–{last:%H:%M:%S}"
        )
    print(f"  total {total:>8} fixes stored; simulator sent {stats.fixes_sent} unique fixes")
    for protocol, reason, n in dead:
        print(f"  dead letters: {protocol}/{reason}: {n}")
    print(f"  rejects counted: {counters.get('rejects')}; see /metrics for all counters")


def run(args: argparse.Namespace, cfg: Settings) -> int:
    """Entry for ``menara demo``."""
    try:
        return asyncio.run(_demo(args, cfg))
    except db.DatabaseError as exc:
        print(f"\nmenara demo: {exc}", file=sys.stderr)
        return 1


async def simulate(args: argparse.Namespace, cfg: Settings) -> int:
    """Entry for ``menara simulate``: drive a fleet against an already running service."""
    fleet = fleet_config(
        args,
        cfg,
        transport=args.transport,
        payload=args.payload,
        qos=args.qos,
        realtime=not args.fast,
        fixes_per_vehicle=args.fixes,
        id_prefix=args.id_prefix,
        imei=args.imei or bool(NEEDS_IMEI & set(args.protocols or ())),
        seed=args.seed,
        duplicate=args.duplicate,
        garbage=args.garbage,
        split=args.split,
        disconnect=args.disconnect,
        lose_ack=args.lose_ack,
        protocols=tuple(args.protocols or ("t55",)),
    )
    stop = asyncio.Event()
    _install_stop(stop)

    stats = await run_fleet(fleet, progress=lambda s: print(s.line(), flush=True), stop=stop)
    print(f"unique fixes delivered: {stats.unique_fixes}")
    return 0
