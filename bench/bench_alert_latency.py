"""Alert latency: from an over-limit fix leaving its tracker to its alert on the live stream.

    .venv/bin/python bench/bench_alert_latency.py [--vehicles 1000] [--hz 10] [--seconds 30]
        [--tower-processes 1]

``menara.service.serve`` runs in this process on a throwaway database (T55 TCP listener,
API with ``GET /api/v1/alerts/stream``; MQTT, metrics and other listeners off; the rules
in ``--tower-processes`` worker processes, or in this process with 0). A separate
sender process logs in ``--vehicles`` T55 trackers and sends ``--hz`` fixes a second each
(one RMC sentence a fix, pre-encoded, paced in 10 ms slots so the load is even), for a
warm-up, then a baseline phase with no speeding, then the measured phase in which 5% of
the vehicles send one fix at 130 km/h (limit 90 km/h × 1.1) and then 11.9 s under the
limit (overspeed closes after 10 s under), over and over, staggered.

``overspeed_min_s = 0`` so the very fix over the limit opens the alert: the trigger fix,
and so its send time, is then known exactly (with the default 20 s the alert would belong
to whichever fix completed the run).

Measured: for each streamed ``open`` of type overspeed, the time from its trigger fix
being sent (found by the event's ``opened_at``, which is the trigger's fix time) to the
event being read here; the alert row's ``created_at`` (PostgreSQL's clock, the same
machine) splits that into fix → alert row (ingest + tower) and alert → stream (NOTIFY,
hub, SSE). Baseline in the same run: fix sent → row visible in ``positions`` for a marker
vehicle, polled every 10 ms (so up to 10 ms high), in both phases.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_tcp import cpu_s, free_port, raise_nofile

ADMIN_DSN = os.environ.get(
    "MENARA_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
LAT0, LON0 = -6.2, 106.8
CRUISE_KMH, TRIGGER_KMH, LIMIT_KMH = 50.0, 130.0, 90.0
SLOTS = 10  # a tick is cut into this many slots; vehicle i sends in slot i % SLOTS
CYCLE_S = 12.0  # a speeder's trigger period: one fix over, then 11.9 s under
SPEEDER_EVERY = 20  # every 20th vehicle speeds: 5%
MARKER = 0  # the vehicle whose fixes are polled for the ingest baseline (never speeds)
HIGH_WATER = 64 * 1024


@dataclass(frozen=True)
class Plan:
    """Who sends what when; rebuilt identically by both processes from the arguments."""

    vehicles: int
    hz: int
    warm_s: float
    seconds: float

    @property
    def tick_s(self) -> float:
        return 1.0 / self.hz

    @property
    def base_tick(self) -> int:  # first tick of the baseline phase
        return round(self.warm_s * self.hz)

    @property
    def speed_tick(self) -> int:  # first tick of the speeding phase
        return self.base_tick + round(self.seconds * self.hz)

    @property
    def ticks(self) -> int:
        return self.speed_tick + round(self.seconds * self.hz)

    def speeders(self) -> list[int]:
        return [i for i in range(self.vehicles) if i % SPEEDER_EVERY == SPEEDER_EVERY // 2]

    def triggers(self) -> dict[int, list[int]]:
        """Vehicle → the ticks of its fixes at 130 km/h, phases staggered over a cycle."""
        cycle = round(CYCLE_S * self.hz)
        sp = self.speeders()
        return {
            v: list(range(self.speed_tick + r * cycle // len(sp), self.ticks, cycle))
            for r, v in enumerate(sp)
        }


def device(i: int) -> str:
    return f"LAT{i:05d}"


def _coord(value: float, deg_digits: int) -> str:
    scale = 60 * 10**5
    deg, frac = divmod(round(abs(value) * scale), scale)
    minutes, rest = divmod(frac, 10**5)
    return f"{deg:0{deg_digits}d}{minutes:02d}.{rest:05d}"


def encode(plan: Plan, t0_cs: int) -> list[list[bytes]]:
    """Every tick's RMC line per vehicle; vehicle i, tick k has fix time
    ``t0 + k/hz + (i % SLOTS)/100`` s and moves east at its speed. Bodies have one width,
    so the checksums are one numpy XOR-reduce; line 0 is checked against nmea_out."""
    from simulators.nmea_out import KMH_PER_KNOT, rmc

    trig = {v: set(ks) for v, ks in plan.triggers().items()}
    step_cs = 100 // plan.hz
    hms: dict[int, tuple[str, str]] = {}
    bodies: list[str] = []
    lon = [LON0 + 0.001 * (i % 100) for i in range(plan.vehicles)]
    lat = [_coord(LAT0 - 0.001 * (i // 100), 2) for i in range(plan.vehicles)]
    knots = {s: f"{s / KMH_PER_KNOT:.3f}" for s in (CRUISE_KMH, TRIGGER_KMH)}
    m_per_deg = 111_320 * math.cos(math.radians(LAT0))
    for k in range(plan.ticks):
        for i in range(plan.vehicles):
            cs = t0_cs + k * step_cs + i % SLOTS
            if cs not in hms:
                secs, frac = divmod(cs, 100)
                g = time.gmtime(secs)
                hms[cs] = (time.strftime("%H%M%S", g) + f".{frac:02d}", time.strftime("%d%m%y", g))
            speed = TRIGGER_KMH if k in trig.get(i, ()) else CRUISE_KMH
            lon[i] += speed / 3.6 / plan.hz / m_per_deg
            h, d = hms[cs]
            bodies.append(
                f"GPRMC,{h},A,{lat[i]},S,{_coord(lon[i], 3)},E,{knots[speed]},90.00,{d},,,A"
            )
    width = len(bodies[0])
    raw = np.frombuffer("".join(bodies).encode("ascii"), np.uint8).reshape(-1, width)
    sums = np.bitwise_xor.reduce(raw, axis=1)
    lines = [f"${b}*{c:02X}\r\n".encode() for b, c in zip(bodies, sums.tolist(), strict=True)]
    from datetime import UTC, datetime

    first = rmc(
        datetime.fromtimestamp(t0_cs / 100, UTC),
        LAT0,
        LON0 + CRUISE_KMH / 3.6 / plan.hz / m_per_deg,
        CRUISE_KMH,
        90.0,
    )
    assert lines[0] == first, (lines[0], first)
    n = plan.vehicles
    return [lines[k * n : (k + 1) * n] for k in range(plan.ticks)]


# -- the sender (child process) -----------------------------------------------------


def sender(port: int, plan: Plan) -> None:
    """Log every vehicle in, then send on schedule; print slot send times as JSON."""
    import socket

    from simulators.nmea_out import pgid

    raise_nofile()
    t0_cs = (math.ceil(time.time()) + 2) * 100
    ticks = encode(plan, t0_cs)

    async def main() -> None:
        writers: list[asyncio.StreamWriter] = []
        for lo in range(0, plan.vehicles, 250):
            got = await asyncio.gather(
                *(
                    asyncio.open_connection("127.0.0.1", port)
                    for _ in range(lo, min(plan.vehicles, lo + 250))
                )
            )
            writers += [w for _, w in got]
        for i, w in enumerate(writers):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            w.write(pgid(device(i)))
        await asyncio.gather(*(w.drain() for w in writers))
        await asyncio.sleep(1.0)  # logins registered before the clock starts
        by_slot = [list(range(j, plan.vehicles, SLOTS)) for j in range(SLOTS)]
        start = max(time.time(), t0_cs / 100)
        sent_at: list[float] = []
        late = 0.0
        for k, lines in enumerate(ticks):
            for j, idx in enumerate(by_slot):
                due = start + k * plan.tick_s + j * plan.tick_s / SLOTS
                now = time.time()
                if due > now:
                    await asyncio.sleep(due - now)
                    now = time.time()
                late = max(late, now - due)
                sent_at.append(now)
                for i in idx:
                    writers[i].write(lines[i])
                slow = [
                    writers[i]
                    for i in idx
                    if writers[i].transport.get_write_buffer_size() > HIGH_WATER
                ]
                if slow:
                    await asyncio.gather(*(w.drain() for w in slow))
        await asyncio.gather(*(w.drain() for w in writers))
        end = time.time()
        print(
            json.dumps(
                {"start": start, "end": end, "late_s": late, "sent_at": sent_at, "t0_cs": t0_cs}
            ),
            flush=True,
        )
        await asyncio.to_thread(sys.stdin.read)  # hold the connections until told
        for w in writers:
            w.close()

    asyncio.run(main())


# -- the measuring process ----------------------------------------------------------


def setup(dsn: str, plan: Plan) -> str:
    """Create and upgrade the database, register the vehicles; a supervisor token."""
    import psycopg

    from menara import db
    from oms_core.api.auth import create_token

    db.ensure_database(dsn)
    db.upgrade(dsn)
    ids = [device(i) for i in range(plan.vehicles)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, protocol) SELECT unnest(%s::text[]), 't55'", (ids,)
        )
        conn.execute(
            "INSERT INTO vehicles (plate, capacity_kg, capacity_m3, tracker_device_id)"
            " SELECT 'B ' || d, 1000, 10, d FROM unnest(%s::text[]) AS d",
            (ids,),
        )
        return create_token(conn, "latency bench", "supervisor")


class Poller(threading.Thread):
    """Every 10 ms: the marker's newest stored fix time (the ingest baseline)."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.seen = dsn, [(0.0, 0.0)]
        self.done = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            q = (
                "SELECT extract(epoch FROM max(fix_time))::float8 FROM positions"
                " WHERE device_id = %s"
            )
            while not self.done.wait(0.01):
                row = conn.execute(q, (device(MARKER),)).fetchone()
                if row and row[0] is not None and row[0] > self.seen[-1][1]:
                    self.seen.append((time.time(), float(row[0])))


def ingest_latencies(
    plan: Plan, poller: Poller, out: dict[str, Any], first: int, last: int
) -> np.ndarray:
    """Marker fix k (ticks ``first``..``last``): first poll that saw it − its send time."""
    seen_t = np.array([s[0] for s in poller.seen])
    seen_fix = np.array([s[1] for s in poller.seen])
    lat = []
    for k in range(first, last):
        fix_s = out["t0_cs"] / 100 + k * plan.tick_s + (MARKER % SLOTS) / 100
        pos = int(np.searchsorted(seen_fix, fix_s - 1e-4))
        if pos < len(seen_t):
            lat.append(seen_t[pos] - out["sent_at"][k * SLOTS + MARKER % SLOTS])
    return np.array(lat)


async def read_stream(resp: Any, into: list[tuple[float, dict[str, Any]]]) -> None:
    """Every ``event: alert`` with the time it was read, until the stream ends."""
    import aiohttp

    with contextlib.suppress(aiohttp.ClientConnectionError):
        await _read_events(resp, into)


async def _read_events(resp: Any, into: list[tuple[float, dict[str, Any]]]) -> None:
    while True:
        block = (await resp.content.readuntil(b"\n\n")).decode()
        if block.startswith("event: alert\n"):
            into.append((time.time(), json.loads(block.split("data: ", 1)[1])))
        elif block.startswith("event: dropped\n"):
            print(f"  stream dropped events: {block.strip()}", flush=True)


def backends_cpu(dsn: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving this database (others on the
    machine are not ours to count)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
    out = {}
    for (pid,) in rows:
        with contextlib.suppress(OSError):
            out[int(pid)] = cpu_s(int(pid))
    return out


def threads_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process, by native thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            f = Path(f"/proc/self/task/{tid}/stat").read_text().rpartition(")")[2].split()
            out[int(tid)] = (int(f[11]) + int(f[12])) / tick
    return out


def split_threads(
    before: dict[int, float], after: dict[int, float], poller: int | None
) -> dict[str, float]:
    """The event loop (main thread: ingest, writer, API, stream) against the worker
    threads (``asyncio.to_thread``: the tower's rules and its database work); the
    bench's own poller thread is left out."""
    main = threading.main_thread().native_id
    used = {tid: t - before.get(tid, 0.0) for tid, t in after.items() if tid != poller}
    loop = used.pop(main, 0.0) if main is not None else 0.0
    return {"loop": loop, "threads": sum(used.values()), "service": loop + sum(used.values())}


def rule_workers_cpu() -> dict[int, float]:
    """CPU seconds of each rule worker process (``tower_processes``) by pid."""
    import multiprocessing

    kids = multiprocessing.active_children()
    return {p.pid: cpu_s(p.pid) for p in kids if p.pid and p.name.startswith("menara-rules")}


def _committed(counters: Any) -> int:
    return sum(
        n
        for (name, _), n in counters.snapshot().items()
        if name in ("rows_written", "rows_duplicate", "rows_merged")
    )


async def run(plan: Plan, dsn: str, token: str, tower_processes: int) -> dict[str, Any]:
    """Serve, stream, send, wait until everything is stored and evaluated; the raw data."""
    import aiohttp

    from ingest.counters import Counters
    from menara import service
    from menara.settings import load

    towers: list[Any] = []
    make_tower = service.make_tower

    def capture(settings: Any) -> Any:  # to read the tower's counters; serve is unchanged
        towers.append(make_tower(settings))
        return towers[-1]

    service.make_tower = capture
    t55, api = free_port(), free_port()
    settings = load(
        environ={},
        overrides={
            **dict.fromkeys(service.PORT_SETTINGS, 0),
            "db_dsn": dsn,
            "tcp_host": "127.0.0.1",
            "t55_port": t55,
            "api_port": api,
            "mqtt_port": 0,
            "metrics_port": 0,
            "unknown_devices": "reject",
            "overspeed_min_s": 0.0,
            "default_speed_limit_kmh": LIMIT_KMH,
            "tcp_idle_timeout_s": 3600.0,
            "tower_processes": tower_processes,
        },
    )
    counters = Counters()
    stop, ready = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(service.serve(settings, counters=counters, stop=stop, ready=ready))
    up = asyncio.create_task(ready.wait())
    await asyncio.wait([up, server], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        server.result()
    tower = towers[0]
    streamed: list[tuple[float, dict[str, Any]]] = []
    samples: list[tuple[float, int, int]] = []

    async def sample() -> None:
        while True:
            samples.append((time.time(), _committed(counters), tower.counters["fixes_evaluated"]))
            await asyncio.sleep(0.1)

    poller = Poller(dsn)
    total = plan.vehicles * plan.ticks
    n_triggers = sum(len(v) for v in plan.triggers().values())
    try:
        url = f"http://127.0.0.1:{api}/api/v1/alerts/stream"
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            if resp.status != 200:
                raise SystemExit(f"alert stream answered {resp.status}: {await resp.text()}")
            reader = asyncio.create_task(read_stream(resp, streamed))
            sampler = asyncio.create_task(sample())
            poller.start()
            me, pg0, rules0 = threads_cpu(), backends_cpu(dsn), rule_workers_cpu()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "sender", str(t55), json.dumps(plan.__dict__),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26,
            )  # fmt: skip
            assert proc.stdout is not None and proc.stdin is not None
            line = await proc.stdout.readline()
            if not line:
                raise SystemExit("the sender died; see its error above")
            out: dict[str, Any] = json.loads(line)
            sender_cpu = cpu_s(proc.pid)
            async with asyncio.timeout(300):
                while _committed(counters) < total:
                    await asyncio.sleep(0.05)
                out["t_stored"] = time.time()
                await tower.drain()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    while _opens(streamed) < n_triggers:
                        await asyncio.sleep(0.1)
            out["cpu"] = {
                "sender": sender_cpu,
                **split_threads(me, threads_cpu(), poller.native_id),
                "postgres": sum(t - pg0.get(pid, t) for pid, t in backends_cpu(dsn).items()),
                "rules": sum(t - rules0.get(pid, 0.0) for pid, t in rule_workers_cpu().items()),
            }
            proc.stdin.close()
            await proc.wait()
            for task in (reader, sampler):
                task.cancel()
    finally:
        poller.done.set()
        stop.set()
        try:
            await asyncio.wait_for(server, 60)
        except Exception as exc:  # the measurements are complete; say so and report them
            print(f"serve() failed while stopping: {exc!r}", file=sys.stderr)
    out.update(streamed=streamed, samples=samples, tower=dict(tower.counters), poller=poller)
    return out


def _opens(streamed: list[tuple[float, dict[str, Any]]]) -> int:
    return sum(1 for _, e in streamed if e["event"] == "open" and e["type"] == "overspeed")


def alert_latencies(plan: Plan, dsn: str, out: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each streamed overspeed open matched to the trigger fix it names: its ``opened_at``
    is the trigger's fix time (``overspeed_min_s = 0``), so the match holds even when the
    latency exceeds a speeder's 12 s cycle."""
    from datetime import datetime

    import psycopg

    with psycopg.connect(dsn) as conn:
        vehicle = {
            int(r[0]): int(str(r[1])[3:])
            for r in conn.execute("SELECT id, tracker_device_id FROM vehicles").fetchall()
        }
        created = {
            int(r[0]): float(r[1])
            for r in conn.execute("SELECT id, extract(epoch FROM created_at)::float8 FROM alerts")
        }
    triggers = {v: set(ks) for v, ks in plan.triggers().items()}
    stream, tower, hub, matched = [], [], [], set()
    for got, e in out["streamed"]:
        if e["event"] != "open" or e["type"] != "overspeed":
            continue
        v = vehicle[e["vehicle_id"]]
        fix_s = datetime.fromisoformat(e["opened_at"]).timestamp()
        k = round((fix_s - out["t0_cs"] / 100 - (v % SLOTS) / 100) * plan.hz)
        if k not in triggers.get(v, ()) or (v, k) in matched:
            continue
        t = out["sent_at"][k * SLOTS + v % SLOTS]
        matched.add((v, k))
        stream.append(got - t)
        tower.append(created[e["id"]] - t)
        hub.append(got - created[e["id"]])
    out["matched"] = len(matched)
    return {"stream": np.array(stream), "created": np.array(tower), "hub": np.array(hub)}


def phase_rates(plan: Plan, out: dict[str, Any], first: int, last: int) -> dict[str, float]:
    """Sent, stored and evaluated fixes/s over a phase, and the tower's largest backlog."""
    t_a = out["sent_at"][first * SLOTS]
    t_b = out["sent_at"][last * SLOTS - 1]
    s = np.array(out["samples"], dtype=np.float64)
    inside = s[(s[:, 0] >= t_a) & (s[:, 0] <= t_b)]
    span = inside[-1, 0] - inside[0, 0] if len(inside) > 1 else math.nan
    return {
        "sent": plan.vehicles * (last - first) / (t_b - t_a + plan.tick_s / SLOTS),
        "stored": (inside[-1, 1] - inside[0, 1]) / span if len(inside) > 1 else math.nan,
        "evaluated": (inside[-1, 2] - inside[0, 2]) / span if len(inside) > 1 else math.nan,
        "backlog": float((inside[:, 1] - inside[:, 2]).max()) if len(inside) else math.nan,
    }


def row(name: str, a: np.ndarray) -> str:
    if not len(a):
        return f"| {name} | 0 | – | – | – | – |"
    p50, p90, p99 = np.percentile(a * 1000, [50, 90, 99])
    return f"| {name} | {len(a)} | {p50:.0f} | {p90:.0f} | {p99:.0f} | {a.max() * 1000:.0f} |"


def report(plan: Plan, dsn: str, out: dict[str, Any], command: str) -> None:
    import psycopg

    base = ingest_latencies(plan, out["poller"], out, plan.base_tick, plan.speed_tick)
    under = ingest_latencies(plan, out["poller"], out, plan.speed_tick, plan.ticks)
    lat = alert_latencies(plan, dsn, out)
    r_base = phase_rates(plan, out, plan.base_tick, plan.speed_tick)
    r_speed = phase_rates(plan, out, plan.speed_tick, plan.ticks)
    with psycopg.connect(dsn) as conn:
        stored = conn.execute("SELECT count(*) FROM positions").fetchone()
        kinds = conn.execute("SELECT type, count(*) FROM alerts GROUP BY type").fetchall()
    n_trig = sum(len(v) for v in plan.triggers().values())
    opens = sum(1 for _, e in out["streamed"] if e["event"] == "open")
    target = plan.vehicles * plan.hz
    print(f"\n{command}")
    print(
        f"{plan.vehicles} T55 vehicles × {plan.hz} fixes/s = {target:,} fixes/s target;"
        f" warm-up {plan.warm_s:.0f} s, baseline {plan.seconds:.0f} s, speeding"
        f" {plan.seconds:.0f} s ({len(plan.speeders())} speeders)"
    )
    print(
        "\n| phase | sent fixes/s | stored fixes/s | tower evaluated fixes/s | tower backlog max |"
    )
    print("|---|---|---|---|---|")
    for name, r in (("baseline (no speeding)", r_base), ("speeding 5%", r_speed)):
        print(
            f"| {name} | {r['sent']:,.0f} | {r['stored']:,.0f} | {r['evaluated']:,.0f}"
            f" | {r['backlog']:,.0f} fixes |"
        )
    print("\n| latency (ms) | n | p50 | p90 | p99 | max |")
    print("|---|---|---|---|---|---|")
    print(row("ingest: fix sent → row visible, baseline phase", base))
    print(row("ingest: fix sent → row visible, speeding phase", under))
    print(row("fix sent → alert row created (ingest + tower)", lat["created"]))
    print(row("alert created → SSE event read (NOTIFY + stream)", lat["hub"]))
    print(row("**fix sent → alert on the stream**", lat["stream"]))
    if len(base) and len(lat["stream"]):
        b50, b99 = np.percentile(base, [50, 99])
        s50, s99 = np.percentile(lat["stream"], [50, 99])
        print(f"\nalert / ingest baseline: p50 {s50 / b50:.1f}x, p99 {s99 / b99:.1f}x")
    print(
        f"triggers sent {n_trig}, overspeed opens matched {out['matched']},"
        f" stream events {len(out['streamed'])} ({opens} opens);"
        f" alerts by type {dict(kinds)}"
    )
    print(
        f"positions stored {stored[0] if stored else 0:,} of {plan.vehicles * plan.ticks:,} sent;"
        f" sender max lateness {out['late_s'] * 1000:.0f} ms;"
        f" tower {dict(sorted(out['tower'].items()))}"
    )
    wall = out["t_stored"] - out["start"]
    cpu = out["cpu"]
    per_fix = 1e6 / (plan.vehicles * plan.ticks)
    print(
        f"CPU over {wall:.0f} s ({wall * (os.cpu_count() or 1):.0f} core-seconds): sender"
        f" {cpu['sender']:.1f} s, service process (ingest, API, stream reader)"
        f" {cpu['service']:.1f} s = {cpu['service'] * per_fix:.0f} µs/fix (event loop"
        f" {cpu['loop'] * per_fix:.0f}, worker threads {cpu['threads'] * per_fix:.0f}),"
        f" rule worker processes {cpu['rules']:.1f} s = {cpu['rules'] * per_fix:.0f} µs/fix,"
        f" PostgreSQL (this database's backends) {cpu['postgres']:.1f} s"
    )
    timeline(out)
    print(f"limit: {limit(plan, r_speed, out, base)}")
    busy = cpu["service"] / wall
    if busy > 0.8:  # one process, one GIL: its CPU per fix caps the rate
        cap = 1e6 / (cpu["service"] * per_fix)
        print(
            f"  the service process was busy {busy:.0%} of one core: at"
            f" {cpu['service'] * per_fix:.0f} µs/fix it tops out near {cap:,.0f} fixes/s,"
            " and a backlog built up while it was slower never drains at a load that close"
        )


def limit(plan: Plan, r: dict[str, float], out: dict[str, Any], base: np.ndarray) -> str:
    """Which side held the rate back (or none). The tower's queue is bounded and pushes
    back on the writer, so a tower that falls behind also shows as slow ingest: it is
    judged first."""
    target = plan.vehicles * plan.hz
    if r["sent"] < 0.97 * target or out["late_s"] > 0.5:
        return f"the sender (reached {r['sent']:,.0f} of {target:,} fixes/s)"
    if r["backlog"] > r["sent"]:  # over a second of committed fixes not yet evaluated
        return (
            f"the tower (evaluated {r['evaluated']:,.0f} fixes/s, up to {r['backlog']:,.0f}"
            " committed fixes waiting; its bounded queue then holds back ingest)"
        )
    if r["stored"] < 0.97 * r["sent"] or (len(base) and np.percentile(base, 99) > 1.0):
        return f"ingest (stored {r['stored']:,.0f} of {r['sent']:,.0f} fixes/s sent)"
    return f"none: {target:,} fixes/s held by sender, ingest and tower"


def timeline(out: dict[str, Any], every_s: float = 5.0) -> None:
    """Committed and evaluated fixes/s and the tower backlog, every ``every_s`` seconds."""
    print(f"\ntimeline every {every_s:g} s (s from first send, committed/s, evaluated/s, backlog)")
    prev = None
    for t, c, e in out["samples"]:
        if t < out["start"] or (prev is not None and t - prev[0] < every_s):
            continue
        if prev is not None:
            dt = t - prev[0]
            print(
                f"  {t - out['start']:5.0f} {(c - prev[1]) / dt:8,.0f} {(e - prev[2]) / dt:8,.0f}"
                f" {c - e:8,}"
            )
        prev = (t, c, e)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--hz", type=int, default=10, choices=(1, 2, 5, 10), help="fixes/s each")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    ap.add_argument("--warm", type=float, default=5.0, help="warm-up seconds, not measured")
    ap.add_argument(
        "--tower-processes", type=int, default=1,
        help="rule worker processes (the setting; 0 = rules inside the service process)",
    )  # fmt: skip
    args = ap.parse_args()
    if args.vehicles < SPEEDER_EVERY:
        ap.error(f"--vehicles must be at least {SPEEDER_EVERY} (5% of them speed)")
    import logging

    import psycopg

    logging.basicConfig(level=logging.WARNING)
    raise_nofile()
    plan = Plan(args.vehicles, args.hz, args.warm, args.seconds)
    name = f"menara_bench_latency_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_DSN.rpartition("/")[0] + "/" + name
    try:
        token = setup(dsn, plan)
        out = asyncio.run(run(plan, dsn, token, args.tower_processes))
        report(plan, dsn, out, "    .venv/bin/python " + " ".join(sys.argv))
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "sender":
        sender(int(sys.argv[2]), Plan(**json.loads(sys.argv[3])))
    else:
        main()
