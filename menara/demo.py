"""``menara demo`` and ``menara simulate``: the whole spine on embedded defaults.

The demo creates/updates the schema, registers the simulated fleet and lets the order
side (``menara.demo_oms``) enter, plan and dispatch today's Jakarta orders. Then it
replays the planned day (``menara.demo_tower``): the trips are moved in time so that,
sped up (``menara.demo_pace``: by default the whole day in about two minutes), the day
ends about when the replay does; the ingest service runs in-process with the control
tower on the fleet clock; every trip is driven (five vans misbehave on purpose) and
sent over the van's own link (each TCP device protocol with a listener, MQTT JSON for
the rest). A status line a second, a line per alert as it opens, a summary read back
from the database, and where to look next.

When planning fails or plans nothing, the stock Jakarta routes are driven as endless
loops at wall-clock times instead (half MQTT, half spread over the device protocols).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from ingest import priority
from ingest.counters import Counters
from menara import (
    db,
    demo_drivers,
    demo_oms,
    demo_outcomes,
    demo_tower,
    local_broker,
    position_summary,
    redact,
    service,
)
from menara.settings import Settings
from oms_core.errors import OmsError
from oms_core.planning.matrix import HaversineMatrix
from simulators.errors import SimulatorError
from simulators.fleet import FleetConfig, FleetStats, device_ids, run_fleet
from simulators.model import DEVICE_PROTOCOLS, NEEDS_IMEI, protocols
from simulators.routes import load_geojson
from simulators.trip_sender import send_timeline
from simulators.vehicle import SimFix

# The demo plans its day in at most this long (or plan_time_limit_s when shorter).
DEMO_PLAN_LIMIT_S = 5.0
FALLBACK_DURATION_S = 60.0  # how long the stock routes are driven without --duration
STALE_MARGIN_S = 600.0  # stale_fix_s covers the replayed span and this
DRIVER_GRACE_MIN = 10  # fleet minutes the drivers get after the last fix (back at the depot)
SETTLE_S = 15.0  # at most this long waiting for the writer after the fleet stops
TOWER_GRACE_S = 2.0  # then this long for the tower's last evaluation and tick
LATENCY_S = 2.5  # wall seconds a fix may take from a simulated link to the tower


def fleet_config(args: argparse.Namespace, cfg: Settings, **extra: Any) -> FleetConfig:
    """The simulator settings for this run, pointed at the configured listeners."""
    routes = tuple(load_geojson(args.geojson)) if getattr(args, "geojson", None) else None
    return FleetConfig(
        vehicles=args.vehicles,
        rate_hz=args.rate,
        duration_s=FALLBACK_DURATION_S if args.duration is None else args.duration,
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
    print(f"menara demo: database {redact.dsn(cfg.db_dsn)}")
    _, res = db.ready(cfg)
    engine = "TimescaleDB" if res.timescaledb else "PostgreSQL (time_bucket shim)"
    print(f"schema version {res.version}, engine {engine}")
    _register(cfg, ids, spoken)
    planned = _planned_trips(cfg, fleet, _interleaved(ids, spoken), orders=args.orders)
    if planned:
        replay = demo_tower.prepare(cfg, planned, speedup=args.speedup, duration_s=args.duration)
        if replay is not None:
            _register(cfg, ids, {d: demo_tower.replayed_as(p, cfg) for d, p in spoken.items()})
            cut = None if args.speedup is None else args.duration
            return await _replay(cfg, fleet, spoken, replay, duration_s=cut)
    return await _loop(cfg, fleet, ids)


def _register(cfg: Settings, ids: list[str], protocol: dict[str, str]) -> None:
    """The demo vans in ``devices``, each bound to the protocol it is about to speak (ingest
    refuses a device's data in any other: an earlier run may have used another link)."""
    with psycopg.connect(cfg.db_dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO devices (device_id, protocol, label) VALUES (%s, %s, %s)"
            " ON CONFLICT (device_id) DO UPDATE SET protocol = excluded.protocol",
            [(d, protocol[d], f"demo van {i + 1}") for i, d in enumerate(ids)],
        )


async def _loop(cfg: Settings, fleet: FleetConfig, ids: list[str]) -> int:
    """The stock Jakarta routes driven as endless loops at wall-clock fix times."""
    counters = Counters()
    stop = asyncio.Event()
    _install_stop(stop)
    started_at = datetime.now(UTC)
    svc = await start_service(cfg, counters, stop)
    if svc is None:
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
    summary(cfg.db_dsn, ids, started_at, stats.fixes_sent, counters)
    return 0


async def start_service(
    cfg: Settings, counters: Counters, stop: asyncio.Event
) -> asyncio.Task[None] | None:
    """``service.serve`` started in this process, once it is ready; raises its start-up
    error when it fails (None only if it ended without one)."""
    ready = asyncio.Event()
    svc = asyncio.create_task(service.serve(cfg, counters=counters, stop=stop, ready=ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({svc, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if svc.done():
        waiter.cancel()
        svc.result()  # raises the service's start-up error with its message
        return None
    return svc


async def _send(
    fixes: list[SimFix], *, delay_s: float, halt: asyncio.Event, **kw: Any
) -> FleetStats:
    """``send_timeline`` started ``delay_s`` late, so groups stay on one fleet clock."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(halt.wait(), delay_s)
    if halt.is_set():
        return FleetStats()
    return await send_timeline(fixes, stop=halt, **kw)


async def _replay(
    cfg: Settings,
    fleet: FleetConfig,
    spoken: dict[str, str],
    replay: demo_tower.Replay,
    *,
    duration_s: float | None,
) -> int:
    """Serve with the tower on the fleet clock and send the day, paced at the speed-up,
    printing a status line a second and every alert as it opens."""
    s, span = replay.speedup, replay.span_s
    stale = max(cfg.stale_fix_s, span + STALE_MARGIN_S)
    print(
        f"tower: clock = the fleet's newest fix time, stale_fix_s = {stale:.0f} s: replayed"
        f" fixes are true but up to {span * (s - 1) / s / 60:.0f} min late"
    )
    if s * LATENCY_S > cfg.silent_after_s:
        print(
            f"  note: at {s:g}× a delivery delay of {LATENCY_S:g} s is {s * LATENCY_S / 60:.0f} min"
            f" of fleet time, more than silent_after_s ({cfg.silent_after_s:.0f} s): expect"
            " vans on slower links to be reported silent now and then"
        )
    for plan in replay.faults.values():
        print(f"  {plan.says}")
    print(f"  the other {len(replay.trips) - len(replay.faults)} vans drive clean")
    counters, stop, halt = Counters(), asyncio.Event(), asyncio.Event()
    _install_stop(halt)
    started_at = datetime.now(UTC)
    with demo_outcomes.mail_sink() as mail_port:
        served = cfg.replace(
            tower_clock="fleet",
            stale_fix_s=stale,
            api_port=cfg.api_port or demo_outcomes.free_port(),  # the drivers need the API
            smtp_host="127.0.0.1",
            smtp_port=mail_port,
        )
        svc = await start_service(served, counters, stop)
        if svc is None:
            return 1
        return await _drive_day(served, fleet, spoken, replay, svc, (counters, stop, halt),
                                duration_s=duration_s, started_at=started_at)  # fmt: skip


async def _drive_day(
    cfg: Settings,
    fleet: FleetConfig,
    spoken: dict[str, str],
    replay: demo_tower.Replay,
    svc: asyncio.Task[None],
    events: tuple[Counters, asyncio.Event, asyncio.Event],
    *,
    duration_s: float | None,
    started_at: datetime,
) -> int:
    """Send the day's fixes while the drivers work it through the driver app; then the
    summaries."""
    counters, stop, halt = events
    s, span = replay.speedup, replay.span_s
    groups = demo_tower.links(replay.fixes, spoken, cfg, fleet)
    bound = span / s if duration_s is None else min(span / s, duration_s)
    links = ", ".join(f"{k} ({len({f.device_id for f in g})} vans)" for k, g, _ in groups)
    print(
        f"ingest up: {links}; replaying {len(replay.trips)} trips for {bound:.0f}s"
        " (Ctrl-C stops early)"
    )
    first = replay.fixes[0].fix_time
    loop = asyncio.get_running_loop()
    if duration_s is not None:
        loop.call_later(duration_s, halt.set)
    ids = [t.device_id for t in replay.trips]
    trip_ids = [t.trip_id for t in replay.trips]
    with psycopg.connect(cfg.db_dsn, autocommit=True) as conn:
        feed = demo_tower.AlertFeed(conn, trip_ids, tz=demo_oms.JAKARTA)
        api = f"http://127.0.0.1:{cfg.api_port}/api/v1"
        scripts = demo_drivers.scripts(replay.trips, replay.fixes)
        drivers = demo_drivers.Drivers(api, replay.trips, scripts, say=_say)
        drivers.prepare(conn)
        _driver_app_hint(conn, cfg, trip_ids)
        t0 = loop.time()

        def fleet_now() -> datetime:
            return first + timedelta(seconds=min((loop.time() - t0) * s, span))

        senders = [
            asyncio.create_task(
                _send(g, delay_s=(g[0].fix_time - first).total_seconds() / s, halt=halt,
                      speedup=s, **kw)
            )
            for _, g, kw in groups
        ]  # fmt: skip
        status = _status(counters, drivers)
        async with drivers:
            tapping = asyncio.create_task(drivers.follow(fleet_now, halt))
            while not all(t.done() for t in senders):
                await asyncio.wait(senders, timeout=1.0)
                print(status(fleet_now().astimezone(demo_oms.JAKARTA)), flush=True)
                for line in await asyncio.to_thread(feed.poll):
                    print(line, flush=True)
            halt.set()
            await tapping
            # the last van's driver taps "back at the depot" a minute after it is back
            end = fleet_now() + (timedelta(minutes=DRIVER_GRACE_MIN) if duration_s is None
                                 else timedelta(0))  # fmt: skip
            await drivers.until(min(end, replay.fixes[-1].fix_time + timedelta(minutes=10)))
        sent = 0
        for task in senders:
            try:
                sent += task.result().fixes_sent
            except SimulatorError as exc:
                print(f"a link failed: {exc}")
        print("fleet stopped; waiting for the writer and the tower ...")
        await _settle(counters)
        stop.set()
        await svc
        position_summary.refresh(conn)  # the dashboards' 5-minute summary holds the day
        for line in feed.poll():
            print(line)
        summary(cfg.db_dsn, ids, started_at, sent, counters)
        demo_tower.alert_summary(feed, replay)
        for line in demo_outcomes.delivery_summary(conn, trip_ids, cfg.base_url()):
            print(line)
        for line in demo_outcomes.where_to_look(conn, trip_ids, cfg):
            print(line)
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


def _driver_app_hint(conn: psycopg.Connection[Any], cfg: Settings, trip_ids: list[int]) -> None:
    row = conn.execute(
        "SELECT driver_id FROM trips WHERE id = ANY(%s) AND driver_id IS NOT NULL ORDER BY id"
        " LIMIT 1",
        (trip_ids,),
    ).fetchone()
    if row is not None:
        print(
            f"drivers work their trips through the driver app ({cfg.base_url()}/driver/);"
            f" sign a phone in as one: menara token create --role driver --driver-id {row[0]}"
            " --link"
        )


def _status(counters: Counters, drivers: demo_drivers.Drivers) -> Callable[[datetime], str]:
    last = {"t": time.monotonic(), "in": 0, "stored": 0}
    started = last["t"]

    def line(fleet_at: datetime) -> str:
        now = time.monotonic()
        got, stored = counters.get("fixes_in"), counters.get("rows_written")
        dt = max(now - last["t"], 1e-6)
        rate_in, rate_st = (got - last["in"]) / dt, (stored - last["stored"]) / dt
        last.update(t=now, **{"in": got, "stored": stored})
        return (
            f"[{now - started:5.0f}s] fleet {fleet_at:%H:%M}  received {got:>7} ({rate_in:5.0f}/s)"
            f"  stored {stored:>7} ({rate_st:5.0f}/s)  rejects {counters.get('rejects')}"
            f"  delivered {drivers.counts['delivered'] + drivers.counts['partially_delivered']}"
        )

    return line


async def _settle(counters: Counters) -> None:
    """Until the writer has stored what came in and nothing more arrives (bounded), then
    a moment for the tower to evaluate the last batches and tick."""
    seen, deadline = -1, time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        got = counters.get("fixes_in")
        if got == seen and counters.get("rows_written") >= got:
            break
        seen = got
        await asyncio.sleep(0.5)
    await asyncio.sleep(TOWER_GRACE_S)


def _interleaved(ids: list[str], spoken: dict[str, str]) -> list[str]:
    """The trackers taking turns by protocol: the vans are registered in this order, and
    the planner, which rarely needs every van, then fills them across the protocols."""
    by: dict[str, list[str]] = {}
    for d in ids:
        by.setdefault(spoken[d], []).append(d)
    turns = itertools.zip_longest(*by.values())
    return [d for turn in turns for d in turn if d is not None]


def _planned_trips(
    cfg: Settings, fleet: FleetConfig, ids: list[str], *, orders: int = 200
) -> list[demo_oms.PlannedTrip] | None:
    """Today's orders planned and dispatched; None (drive the stock routes) when planning
    fails or plans nothing, with the reason printed."""
    today = demo_oms.today()
    try:
        with psycopg.connect(cfg.db_dsn, autocommit=True) as conn:
            day = demo_oms.demo_day(conn, today)
            again = "" if day == today else f" (today's deliveries are done: the next day, {day})"
            print(f"order side: {today} (Asia/Jakarta){again}: entering orders, planning,"
                  " dispatching")  # fmt: skip
            planned = demo_oms.seed_and_plan(
                conn,
                day=day,
                device_ids=ids,
                orders=orders,
                time_limit_s=min(cfg.plan_time_limit_s, DEMO_PLAN_LIMIT_S),
                matrix=HaversineMatrix(cfg.plan_road_factor, cfg.plan_avg_speed_kmh),
                progress=lambda line: print(f"  {line}", flush=True),
            )
    except (OmsError, psycopg.Error) as exc:
        print(f"order side: planning failed ({exc}); driving the stock routes")
        return None
    mine = [t for t in planned if t.device_id in set(ids)]
    if not mine:
        print("order side: no trips to drive; driving the stock routes")
        return None
    print(
        f"order side: {len(mine)} vehicles drive their planned trips,"
        f" {fleet.vehicles - len(mine)} stay at the depot"
    )
    return mine


def summary(dsn: str, ids: list[str], since: datetime, sent: int, counters: Counters) -> None:
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
    print(f"  total {total:>8} fixes stored; simulator sent {sent} unique fixes")
    for protocol, reason, n in dead:
        print(f"  dead letters: {protocol}/{reason}: {n}")
    print(f"  rejects counted: {counters.get('rejects')}; see /metrics for all counters")


def run(args: argparse.Namespace, cfg: Settings) -> int:
    """Entry for ``menara demo``."""
    if args.speedup is not None and not (math.isfinite(args.speedup) and args.speedup > 0):
        print(f"menara demo: --speedup must be a number > 0, not {args.speedup}", file=sys.stderr)
        return 2
    try:
        with local_broker.for_demo(cfg) as served:  # one that keeps queued fixes
            return priority.run(_demo(args, served))
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
