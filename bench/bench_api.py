"""OMS API: orders created per second over HTTP on loopback, against a bare aiohttp server.

    .venv/bin/python bench/bench_api.py [--orders 5000] [--clients 32]

The server runs in its own process: either the real API (``oms_core.api.make_app`` on a
throwaway database: token check, JSON validation, order insert with lines, totals,
tracking number and audit row in one transaction) or, as the baseline in the same run,
a bare aiohttp handler that parses the same JSON body and answers 201 without touching
a database. The client (another process) keeps ``--clients`` requests in flight with one
aiohttp session and counts 201s; the ratio is what validation and storage cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_tcp import ADMIN_DSN, free_port, stop_server, wait_port


def seed(dsn: str) -> tuple[str, dict[str, Any]]:
    """Schema, one depot, customer, products and stock; a dispatcher token and a body."""
    import psycopg

    from menara import db
    from oms_core.api import create_token

    db.ensure_database(dsn)
    db.upgrade(dsn, timescale="off")
    with psycopg.connect(dsn, autocommit=True) as conn:
        cust = conn.execute(
            "INSERT INTO customers (name, email) VALUES ('Bench', 'b@example.org') RETURNING id"
        ).fetchone()
        depot = conn.execute(
            "INSERT INTO depots (name, lat, lon, time_zone) VALUES"
            " ('JKT', -6.2, 106.8, 'Asia/Jakarta') RETURNING id"
        ).fetchone()
        assert cust is not None and depot is not None
        conn.execute(
            "INSERT INTO products (sku, unit_weight_kg, unit_volume_m3) VALUES"
            " ('A', 2, 0.01), ('B', 0.5, 0.002)"
        )
        token = create_token(conn, "bench", "dispatcher")
    start = datetime.now(UTC) + timedelta(days=1)
    body = {
        "customer_id": cust[0],
        "depot_id": depot[0],
        "address_text": "Jl. Thamrin 1, Jakarta",
        "lat": -6.19,
        "lon": 106.82,
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=3)).isoformat(),
        "lines": [
            {"sku": "A", "qty": 3, "unit_price": "10.00"},
            {"sku": "B", "qty": 2, "unit_price": "2.50"},
        ],
        "payment_method": "cod",
    }
    return token, body


def serve_api(dsn: str, port: int) -> None:
    from aiohttp import web

    from oms_core.api import make_app

    web.run_app(make_app(dsn), host="127.0.0.1", port=port, print=None, access_log=None)


def serve_bare(port: int) -> None:
    from aiohttp import web

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"id": 1, "lines": body["lines"]}, status=201)

    app = web.Application()
    app.router.add_post("/api/v1/orders", create)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def client(port: int, token: str, body_json: str, orders: int, clients: int) -> None:
    import aiohttp

    async def main() -> None:
        url = f"http://127.0.0.1:{port}/api/v1/orders"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        todo = iter(range(orders))
        ok = 0

        async def worker(http: aiohttp.ClientSession) -> None:
            nonlocal ok
            for _ in todo:
                async with http.post(url, data=body_json, headers=headers) as r:
                    await r.read()
                    ok += r.status == 201

        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as http:
            t0 = time.perf_counter()
            await asyncio.gather(*(worker(http) for _ in range(clients)))
            secs = time.perf_counter() - t0
        print(json.dumps({"created": ok, "s": secs}), flush=True)

    asyncio.run(main())


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)


def run(kind: str, dsn: str, token: str, body: dict[str, Any], n: int, clients: int) -> Any:
    port = free_port()
    server = (
        _child("server-api", dsn, str(port)) if kind == "api" else _child("server-bare", str(port))
    )
    try:
        wait_port(port)
        out, _ = _child(
            "client", str(port), token, json.dumps(body), str(n), str(clients)
        ).communicate(timeout=600)
    finally:
        stop_server(server)
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--orders", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=32)
    args = ap.parse_args()
    name = f"menara_bench_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_DSN.rpartition("/")[0] + "/" + name
    try:
        token, body = seed(dsn)
        print(f"{args.orders} POST /api/v1/orders, {args.clients} in flight, loopback")
        print("| server | created | seconds | orders/s |")
        print("|---|---|---|---|")
        rates = {}
        for kind in ("api", "bare"):
            r = run(kind, dsn, token, body, args.orders, args.clients)
            rates[kind] = r["created"] / r["s"]
            print(f"| {kind} | {r['created']} | {r['s']:.2f} | {rates[kind]:,.0f} |")
        print(f"api / bare = {rates['api'] / rates['bare']:.2f}")
    finally:
        import psycopg

        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "server-api":
        serve_api(sys.argv[2], int(sys.argv[3]))
    elif cmd == "server-bare":
        serve_bare(int(sys.argv[2]))
    elif cmd == "client":
        client(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    else:
        main()
