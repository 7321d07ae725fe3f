"""End to end: the simulated fleet drives its dispatched trips through real Mosquitto
into ``menara serve`` (ingest → writer → tower → alerts), and every alert reaches the
control room three ways: the live SSE stream, a signed webhook and supervisor email over
real SMTP (aiosmtpd). Misbehaving vehicles raise exactly their alerts with their orders;
the clean one raises none.

The timeline runs as fast as the broker takes it, so the tower runs on the fleet clock
(``tower_clock = fleet``) and, since its oldest fixes arrive over an hour after their
time, ``stale_fix_s`` is widened to two hours (stale fixes are true, only late).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web

from ingest.counters import Counters
from oms_core.alerts.signing import verify_signature
from oms_core.api.auth import create_token
from simulators.trip_sender import send_timeline
from tests.ingest.test_service import running, settings_for
from tests.oms_core.test_delivery import smtp_server
from tests.polling import until
from tests.ports import free_port
from tests.tower import scenario
from tests.tower.world import build

pytestmark = [pytest.mark.db, pytest.mark.mqtt]

SECRET = "e2e-webhook-secret-0123456789"
EXPECTED_OPENS = sum(len(v) for v in scenario.EXPECTED.values())


class Hooks:
    """A webhook receiver that checks every signature."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        ok = verify_signature(
            SECRET,
            request.headers["X-Menara-Timestamp"],
            body,
            request.headers["X-Menara-Signature"],
        )
        if not ok:
            self.bad_signatures += 1
            return web.Response(status=401)
        self.events.append(json.loads(body))
        return web.Response(status=204)


async def read_stream(resp: aiohttp.ClientResponse, into: list[dict[str, Any]]) -> None:
    """Collect every ``event: alert`` of an open SSE response."""
    while True:
        block = (await resp.content.readuntil(b"\n\n")).decode()
        if block.startswith("event: alert\n"):
            into.append(json.loads(block.split("data: ", 1)[1]))


def _stored(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM positions").fetchone()
    return 0 if row is None else int(row[0])


def test_the_fleet_scenarios_reach_stream_webhook_and_email(clean_db: str) -> None:
    departure = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=100)
    fleet = build(clean_db, scenario.specs(departure))
    with psycopg.connect(clean_db, autocommit=True) as conn:
        token = create_token(conn, "control room", "supervisor")
        conn.execute(
            "INSERT INTO depot_contacts (depot_id, name, email) VALUES (%s, 'Sam', %s)",
            (fleet.depot_id, "sam@depot.example"),
        )
    fixes = scenario.timeline(fleet)
    prefix = f"menara-e2e-{uuid.uuid4().hex[:8]}"
    hooks = Hooks()

    async def go(smtp_port: int, box: Any) -> tuple[list[dict[str, Any]], int]:
        app = web.Application()
        app.router.add_post("/hook", hooks.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        hook_port = free_port()
        await web.TCPSite(runner, "127.0.0.1", hook_port).start()
        with psycopg.connect(clean_db, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO webhooks (url, secret) VALUES (%s, %s)",
                (f"http://127.0.0.1:{hook_port}/hook", SECRET),
            )
        api_port = free_port()
        cfg = settings_for(
            clean_db,
            t55_port=0,
            mqtt_port=1883,
            mqtt_topic_prefix=prefix,
            mqtt_client_id=prefix,
            api_port=api_port,
            smtp_port=smtp_port,
            tower_clock="fleet",
            stale_fix_s=7200.0,
            unknown_devices="reject",
            webhook_allow_private=True,  # the webhook receiver listens on loopback
        )
        streamed: list[dict[str, Any]] = []

        async def all_stored() -> bool:
            return await asyncio.to_thread(_stored, clean_db) == len(fixes)

        try:
            async with running(cfg, Counters()), aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{api_port}/api/v1/alerts/stream"
                headers = {"Authorization": f"Bearer {token}"}
                async with http.get(url, headers=headers) as resp:
                    assert resp.status == 200
                    reader = asyncio.create_task(read_stream(resp, streamed))
                    stats = await send_timeline(fixes, transport="mqtt", topic_prefix=prefix)
                    assert len(stats.sent) == len(fixes)
                    await until(
                        lambda: sum(e["event"] == "open" for e in streamed) >= EXPECTED_OPENS,
                        60,
                        f"{EXPECTED_OPENS} alerts opened on the stream (got {streamed})",
                    )
                    await until(
                        lambda: sum(e["event"] == "open" for e in hooks.events) >= EXPECTED_OPENS,
                        60,
                        "the opened alerts at the webhook",
                    )
                    await until(lambda: len(box.got) >= EXPECTED_OPENS, 60, "the emails")
                    await until(all_stored, 60, "every fix stored")
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
                    return streamed, len(stats.sent)
        finally:
            await runner.cleanup()

    with smtp_server() as (box, port):
        streamed, sent = asyncio.run(go(port, box))
        mails = list(box.got)

    keys = scenario.stop_keys(fleet)
    plates = {b.vehicle_id: plate for plate, b in fleet.trips.items()}
    with psycopg.connect(clean_db) as conn:
        rows = conn.execute(
            "SELECT id, type, dedupe_key, vehicle_id, order_ids FROM alerts ORDER BY id"
        ).fetchall()
        stored = conn.execute("SELECT count(*) FROM positions").fetchone()
    assert stored == (sent,)
    got: dict[str, set[tuple[str, str]]] = {plate: set() for plate in scenario.FAULTS}
    for _, kind, key, vehicle, orders in rows:
        got[plates[vehicle]].add((kind, keys.get(key.split(":", 3)[3], key.split(":", 3)[3])))
        assert orders and set(orders) <= set(fleet.trips[plates[vehicle]].order_ids)
    assert got == scenario.EXPECTED
    ids = {r[0] for r in rows}
    opened = [e for e in streamed if e["event"] == "open"]
    assert sorted(e["id"] for e in opened) == sorted(ids)  # each alert streamed once
    assert {e["alert"]["id"] for e in hooks.events if e["event"] == "open"} == ids
    assert hooks.bad_signatures == 0
    assert len(mails) == len(ids)  # one email per opened alert to the one supervisor
    assert all(m.rcpt_tos == ["sam@depot.example"] for m in mails)
