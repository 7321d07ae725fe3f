"""The customer's tracking answer and page under concurrent clients, against a bare
aiohttp handler doing one indexed SELECT, in the same run and the same way.

    .venv/bin/python bench/bench_tracking.py [--clients 50] [--seconds 10] [--rounds 3]

A throwaway database is seeded like a working day: ``--trips`` vans on the road with
``--stops`` customers each (the first third delivered with an ePOD, the next one at the
door, the rest on their way, live ETAs), their trackers' and phones' fixes every 10 s
for the last two hours, complaints, and ``--extra`` orders not planned yet. Two servers
run in child processes, each over a pool of 4 connections used from worker threads as
the app uses them: Menara (``make_app``, rate limiting off) and the baseline, a bare
aiohttp app whose handlers run one ``SELECT … FROM orders WHERE public_token = $1`` and
answer it as JSON or as a small escaped HTML page. A third process is the client:
``--clients`` aiohttp requests in flight for ``--seconds``, each for a random order's
token. Every round measures all four (Menara / bare × JSON / HTML) back to back after a
warm-up; the best of ``--rounds`` rounds counts on both sides. No assertion on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_tcp import ADMIN_DSN, free_port, stop_server, wait_port

CASES = (("menara", "json"), ("bare", "json"), ("menara", "html"), ("bare", "html"))
POOL = 4  # connections per server, as make_app's own pool


def _copy(cur: Any, table: str, cols: str, rows: list[tuple[Any, ...]]) -> None:
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)


def seed(dsn: str, trips: int, stops: int, extra: int) -> list[str]:
    """Schema and a working day's data (see the module docstring); the public tokens."""
    import psycopg

    from menara import db
    from oms_core.tracking import new_token, new_tracking_number

    db.ensure_database(dsn)
    db.upgrade(dsn, timescale="off")
    rng = random.Random(7)
    now = datetime.now(UTC)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customers (name, email, language) SELECT 'Customer ' || i,"
            " 'c' || i || '@example.org', CASE WHEN i % 3 = 0 THEN 'en' ELSE 'id' END"
            " FROM generate_series(1, 500) i"
        )
        cur.execute(
            "INSERT INTO depots (name, lat, lon, time_zone) VALUES"
            " ('JKT', -6.2, 106.8, 'Asia/Jakarta')"
        )
        cur.execute(
            "INSERT INTO products (sku, name, unit_weight_kg, unit_volume_m3) VALUES"
            " ('A', 'Air mineral 600 ml (24)', 2, 0.01), ('B', 'Minyak goreng 2 L', 0.5, 0.002)"
        )
        cur.execute(
            "INSERT INTO vehicles (plate, capacity_kg, capacity_m3, tracker_device_id)"
            " SELECT 'B ' || i || ' BX', 1000, 10, 'TRK' || i FROM generate_series(1, %s) i",
            (trips,),
        )
        cur.execute(
            "INSERT INTO drivers (name, phone_device_id) SELECT 'Driver ' || i,"
            " CASE WHEN i %% 2 = 0 THEN 'PHONE' || i END FROM generate_series(1, %s) i",
            (trips,),
        )
        cur.execute(
            "INSERT INTO trips (vehicle_id, driver_id, depot_id, day, planned_departure,"
            " planned_return, state, actual_departure) SELECT i, i, 1, %s, %s, %s,"
            " 'in_progress', %s FROM generate_series(1, %s) i",
            (now.date(), now - timedelta(hours=2), now + timedelta(hours=6),
             now - timedelta(hours=2), trips),
        )  # fmt: skip
        tokens: list[str] = []
        order_rows, line_rows, event_rows, stop_rows, epod_rows = [], [], [], [], []
        done = stops // 3
        for n in range(trips * stops + extra):
            trip, seq = divmod(n, stops)
            on_trip = trip < trips
            seq += 1
            state = "draft" if not on_trip else (
                "delivered" if seq <= done else "arrived" if seq == done + 1
                else "out_for_delivery")  # fmt: skip
            lat, lon = -6.2 + rng.uniform(-0.08, 0.08), 106.8 + rng.uniform(-0.08, 0.08)
            token = new_token()
            tokens.append(token)
            start = now - timedelta(hours=1) if on_trip else now + timedelta(days=1)
            order_rows.append((
                1 + n % 500, f"Jl. Bench {n + 1}, Jakarta", lat, lon, 1, start,
                start + timedelta(hours=4), "cod",
                "cod_collected" if state == "delivered" else "cod_pending", "35.00", "7.000",
                "0.0340", state, new_tracking_number(), token,
            ))  # fmt: skip
            line_rows += [(n + 1, 1, "A", 3, "10.00"), (n + 1, 2, "B", 2, "2.50")]
            path = ["draft"] if not on_trip else [
                "draft", "verified", "reserved", "scheduled", "dispatched", "out_for_delivery",
                *(["arrived"] if seq <= done + 1 else []), *(["delivered"] if seq <= done else []),
            ]  # fmt: skip
            for k, to_state in enumerate(path):
                at = now - timedelta(hours=20) + timedelta(hours=3 * k)
                frm = path[k - 1] if k else None
                event_rows.append((n + 1, min(at, now), "bench", frm, to_state))
            if on_trip:
                planned = now - timedelta(hours=1) + timedelta(minutes=12 * seq)
                arrived = planned if seq <= done + 1 else None
                stop_rows.append((
                    trip + 1, seq, lat, lon, planned, planned + timedelta(minutes=5), 300,
                    arrived, planned + timedelta(minutes=6) if seq <= done else None,
                    "geofence" if arrived else None,
                    planned + timedelta(minutes=rng.randint(-5, 25)) if seq > done else None,
                ))  # fmt: skip
                if seq <= done:
                    epod_rows.append((n + 1, trip + 1, seq, planned + timedelta(minutes=4)))
        _copy(cur, "orders", "customer_id, address_text, lat, lon, depot_id, window_start,"
              " window_end, payment_method, payment_state, total_amount, total_weight_kg,"
              " total_volume_m3, state, tracking_number, public_token", order_rows)  # fmt: skip
        _copy(cur, "order_lines", "order_id, line_no, sku, qty, unit_price", line_rows)
        _copy(cur, "order_events", "order_id, at, actor, from_state, to_state", event_rows)
        _copy(cur, "stops", "trip_id, seq, lat, lon, planned_arrival, planned_departure,"
              " service_time_s, actual_arrival, actual_departure, arrival_method, eta",
              stop_rows)  # fmt: skip
        cur.execute(
            "INSERT INTO stop_orders (stop_id, order_id) SELECT s.id, (s.trip_id - 1) * %s"
            " + s.seq FROM stops s",
            (stops,),
        )
        _seed_epods(cur, epod_rows)
        _seed_positions(cur, trips, now, rng)
        cur.execute(
            "INSERT INTO complaints (order_id, category, text) SELECT id, 'late',"
            " 'Kurirnya terlambat dua jam.' FROM orders WHERE id % 17 = 0"
        )
        conn.commit()
        cur.execute("ANALYZE")
    return tokens


def _seed_epods(cur: Any, rows: list[tuple[int, int, int, datetime]]) -> None:
    """A driver action, a signature and a photo file, an ePOD with its lines each."""
    actions = [(t, f"bench-{o:08d}", "delivered", t, o, at, at, "0" * 64) for o, t, _, at in rows]
    cols = "driver_id, idempotency_key, kind, trip_id, order_id, phone_time, at, request_sha256"
    _copy(cur, "driver_actions", cols, actions)
    sig = "encode(sha256(convert_to('sig:' || a.order_id, 'UTF8')), 'hex')"
    photo = sig.replace("'sig:'", "'photo:'")
    for digest in (sig, photo):
        cur.execute(
            "INSERT INTO files (sha256, media_type, size_bytes, width, height, uploaded_by)"
            f" SELECT {digest}, 'image/png', 2048, 240, 90, 'bench' FROM driver_actions a"
        )
    cur.execute(
        "INSERT INTO epods (order_id, action_id, trip_id, stop_id, driver_id, outcome,"
        " recipient_name, signature_sha256, cod_collected, at, checks, needs_review)"
        " SELECT a.order_id, a.id, a.trip_id, so.stop_id, a.driver_id, 'delivered',"
        f" 'Penerima ' || a.order_id, {sig}, 35, a.at, '{{}}', false"
        " FROM driver_actions a JOIN stop_orders so ON so.order_id = a.order_id"
    )
    cur.execute(
        "INSERT INTO epod_lines (epod_id, line_no, delivered_qty)"
        " SELECT e.id, ol.line_no, ol.qty FROM epods e JOIN order_lines ol"
        " ON ol.order_id = e.order_id"
    )
    cur.execute(
        f"INSERT INTO epod_photos (epod_id, seq, sha256) SELECT e.id, 1, {photo}"
        " FROM epods e JOIN driver_actions a ON a.id = e.action_id"
    )


def _seed_positions(cur: Any, trips: int, now: datetime, rng: random.Random) -> None:
    """Every tracker (and every other driver's phone) every 10 s for two hours."""
    rows = []
    for v in range(1, trips + 1):
        lat, lon = -6.2 + rng.uniform(-0.08, 0.08), 106.8 + rng.uniform(-0.08, 0.08)
        for k in range(720):
            at = now - timedelta(seconds=10 * (720 - k))
            lat += rng.uniform(-0.0004, 0.0004)
            lon += rng.uniform(-0.0004, 0.0004)
            rows.append((f"TRK{v}", at, at, lat, lon, True, "bench", "teltonika"))
            if v % 2 == 0 and k % 2 == 0:
                rows.append((f"PHONE{v}", at, at, lat, lon, True, "bench", "osmand"))
    _copy(cur, "positions", "device_id, fix_time, received_time, lat, lon, valid,"
          " transport, protocol", rows)  # fmt: skip


def serve_menara(dsn: str, port: int) -> None:
    from aiohttp import web

    from oms_core.api import make_app
    from oms_core.api.context import Execution
    from oms_core.files import FileStore

    ex = Execution(FileStore(f"/tmp/menara-bench-files-{port}"), public_rate_per_min=0)
    web.run_app(make_app(dsn, execution=ex), host="127.0.0.1", port=port, print=None,
                access_log=None)  # fmt: skip


def serve_bare(dsn: str, port: int) -> None:
    """One indexed SELECT per request, over the same kind of pool the app uses."""
    import html

    from aiohttp import web
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(dsn, min_size=POOL, max_size=POOL, open=False,
                          kwargs={"autocommit": True})  # fmt: skip
    sql = (
        "SELECT tracking_number, state, window_start, window_end, address_text,"
        " total_amount::text FROM orders WHERE public_token = %s"
    )

    def lookup(token: str) -> tuple[Any, ...] | None:
        with pool.connection() as conn:
            return conn.execute(sql, (token,)).fetchone()

    async def answer(request: web.Request) -> tuple[Any, ...]:
        row = await asyncio.to_thread(lookup, request.match_info["token"])
        if row is None:
            raise web.HTTPNotFound()
        return row

    async def as_json(request: web.Request) -> web.Response:
        num, state, start, end, address, amount = await answer(request)
        return web.json_response(
            {"tracking_number": num, "state": state, "window_start": start.isoformat(),
             "window_end": end.isoformat(), "address_text": address, "total_amount": amount},
            headers={"Cache-Control": "no-store"},
        )  # fmt: skip

    async def as_html(request: web.Request) -> web.Response:
        num, state, start, end, address, amount = await answer(request)
        body = (
            f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(num)}</title>"
            f"<h1>{html.escape(num)}</h1><p>{html.escape(state)}</p><p>{html.escape(address)}"
            f"</p><p>{start.isoformat()} – {end.isoformat()}</p><p>{html.escape(amount)}</p>"
        )
        return web.Response(text=body, content_type="text/html")

    async def lifetime(app: web.Application) -> Any:
        await asyncio.to_thread(pool.open, wait=True)
        yield
        await asyncio.to_thread(pool.close)

    app = web.Application()
    app.cleanup_ctx.append(lifetime)
    app.router.add_get("/api/v1/track/{token}", as_json)
    app.router.add_get("/t/{token}", as_html)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def client(port: int, kind: str, tokens_file: str, clients: int, seconds: float) -> None:
    """``clients`` requests in flight for ``seconds``; prints counts and latencies."""
    import aiohttp

    with open(tokens_file) as fh:
        tokens = json.load(fh)
    prefix = f"http://127.0.0.1:{port}" + ("/api/v1/track/" if kind == "json" else "/t/")

    async def main() -> None:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        deadline = time.perf_counter() + seconds

        async def worker(http: aiohttp.ClientSession, rng: random.Random) -> None:
            while (t0 := time.perf_counter()) < deadline:
                async with http.get(prefix + rng.choice(tokens)) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                latencies.append(time.perf_counter() - t0)

        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as http:
            start = time.perf_counter()
            await asyncio.gather(*(worker(http, random.Random(i)) for i in range(clients)))
            secs = time.perf_counter() - start
        latencies.sort()
        n = len(latencies)
        print(json.dumps({
            "requests": n, "ok": statuses.get(200, 0), "statuses": statuses, "s": secs,
            "p50_ms": 1000 * latencies[n // 2], "p99_ms": 1000 * latencies[int(n * 0.99)],
        }), flush=True)  # fmt: skip

    asyncio.run(main())


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)


def measure(port: int, kind: str, tokens_file: str, clients: int, seconds: float) -> Any:
    out, _ = _child("client", str(port), kind, tokens_file, str(clients), str(seconds)).communicate(
        timeout=seconds + 300
    )
    return json.loads(out)


def check(ports: dict[str, int], token: str) -> None:
    """Both servers answer the same order before anything is timed."""
    import urllib.request

    numbers = set()
    for port in ports.values():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/track/{token}") as r:
            numbers.add(json.load(r)["tracking_number"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/t/{token}") as r:
            assert r.status == 200 and next(iter(numbers)) in r.read().decode()
    assert len(numbers) == 1, numbers


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trips", type=int, default=100)
    ap.add_argument("--stops", type=int, default=30)
    ap.add_argument("--extra", type=int, default=1000)
    args = ap.parse_args()
    name = f"menara_bench_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_DSN.rpartition("/")[0] + "/" + name
    tokens_file = f"/tmp/{name}-tokens.json"
    servers: list[subprocess.Popen[str]] = []
    try:
        t0 = time.perf_counter()
        tokens = seed(dsn, args.trips, args.stops, args.extra)
        with open(tokens_file, "w") as fh:
            json.dump(tokens, fh)
        print(f"seeded {len(tokens):,} orders, {args.trips} trips on the road,"
              f" {args.trips * 1080:,} positions in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        ports = {"menara": free_port(), "bare": free_port()}
        servers = [_child("server-menara", dsn, str(ports["menara"])),
                   _child("server-bare", dsn, str(ports["bare"]))]  # fmt: skip
        for port in ports.values():
            wait_port(port)
        check(ports, tokens[0])
        print(f"{args.clients} clients in flight, {args.seconds:g} s a case, best of"
              f" {args.rounds} rounds, loopback; each request a random order's token")  # fmt: skip
        best: dict[tuple[str, str], Any] = {}
        for r in range(args.rounds):
            for server, kind in CASES:
                measure(ports[server], kind, tokens_file, args.clients, 1.0)  # warm-up
                got = measure(ports[server], kind, tokens_file, args.clients, args.seconds)
                got["rps"] = got["ok"] / got["s"]
                print(f"  round {r + 1} {server:6} {kind:4} {got['rps']:8,.0f} req/s"
                      f"  p50 {got['p50_ms']:6.1f} ms  p99 {got['p99_ms']:6.1f} ms"
                      f"  statuses {got['statuses']}", flush=True)  # fmt: skip
                if (server, kind) not in best or got["rps"] > best[(server, kind)]["rps"]:
                    best[(server, kind)] = got
        print("| page | server | req/s | p50 ms | p99 ms |")
        print("|---|---|---|---|---|")
        for server, kind in CASES:
            b = best[(server, kind)]
            print(
                f"| {kind} | {server} | {b['rps']:,.0f} | {b['p50_ms']:.1f} | {b['p99_ms']:.1f} |"
            )
        for kind in ("json", "html"):
            ratio = best[("menara", kind)]["rps"] / best[("bare", kind)]["rps"]
            print(f"{kind}: menara / bare = {ratio:.2f} (target >= 0.5)")
    finally:
        for child in servers:
            stop_server(child)
        if os.path.exists(tokens_file):
            os.unlink(tokens_file)
        import psycopg

        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "server-menara":
        serve_menara(sys.argv[2], int(sys.argv[3]))
    elif cmd == "server-bare":
        serve_bare(sys.argv[2], int(sys.argv[3]))
    elif cmd == "client":
        client(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
    else:
        main()
