"""The alert outbox worker against real receivers: an aiohttp webhook server that checks
the HMAC, an aiosmtpd SMTP server, an unreachable port, and two workers sharing rows."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import given
from hypothesis import strategies as st

from oms_core import orders
from oms_core.alerts import mail, outbox
from oms_core.alerts.delivery import EMAIL_OFF, Deliverer, backoff_s, verify_signature
from oms_core.alerts.signing import sign
from oms_core.model import Order
from tests.oms_core import NOW, World, one, order_in
from tests.polling import until
from tests.ports import free_port

pytestmark = pytest.mark.db
Conn = psycopg.Connection[Any]
SECRET = "s3cret-s3cret-s3cret"
FAST: dict[str, Any] = {
    "backoff_base_s": 0.02,
    "backoff_cap_s": 0.1,
    "poll_s": 30.0,
    "timeout_s": 5.0,
    "allow_private": True,  # the test receivers listen on loopback
}


@dataclass
class Scene:
    """A vehicle on a trip with two orders at stop 1 of the seeded depot."""

    vehicle_id: int
    trip_id: int
    stop_id: int
    orders: list[Order]


def scene(conn: Conn, world: World) -> Scene:
    v = one(conn, "INSERT INTO vehicles (plate, type, capacity_kg, capacity_m3) VALUES"
               " ('B 1234 XY', 'van', 800, 8)")  # fmt: skip
    t = one(
        conn,
        "INSERT INTO trips (vehicle_id, depot_id, day, planned_departure, planned_return)"
        " VALUES (%s, %s, %s, %s, %s)",
        (v, world.depot_id, NOW.date(), NOW, NOW + timedelta(hours=8)),
    )
    s = one(
        conn,
        "INSERT INTO stops (trip_id, seq, lat, lon, planned_arrival, planned_departure)"
        " VALUES (%s, 1, 52.388, 4.9, %s, %s)",
        (t, NOW + timedelta(hours=1), NOW + timedelta(hours=1, minutes=10)),
    )
    made = [orders.create_order(conn, order_in(world)) for _ in range(2)]
    return Scene(v, t, s, made)


def raise_alert(conn: Conn, world: World, sc: Scene, event: str = "open", n: int = 0) -> int:
    """Insert an alert row as the rule worker would and queue its deliveries."""
    aid = one(
        conn,
        "INSERT INTO alerts (type, severity, dedupe_key, vehicle_id, trip_id, stop_id,"
        " depot_id, order_ids, message, opened_at, last_seen_at) VALUES ('route_deviation',"
        " 'critical', %s, %s, %s, %s, %s, %s, 'Left the planned route by 420 m', %s, %s)",
        (f"dev:{sc.vehicle_id}:{n}", sc.vehicle_id, sc.trip_id, sc.stop_id, world.depot_id,
         [o.id for o in sc.orders], NOW, NOW),
    )  # fmt: skip
    row = conn.execute(
        "SELECT to_jsonb(a) - 'evidence' - 'dedupe_key' FROM alerts a WHERE id = %s", (aid,)
    ).fetchone()
    assert row is not None
    assert outbox.enqueue(conn, row[0], event) >= 1
    return aid


def add_webhook(conn: Conn, url: str, secret: str = SECRET) -> int:
    return one(conn, "INSERT INTO webhooks (url, secret) VALUES (%s, %s)", (url, secret))


def delivery(conn: Conn, alert_id: int) -> dict[str, Any]:
    """The alert's one delivery row."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute("SELECT * FROM deliveries WHERE alert_id = %s", (alert_id,))
        (only,) = rows.fetchall()
        return only


@dataclass
class Receiver:
    """A webhook endpoint: answers with ``statuses`` in turn (then 200), keeps what came."""

    statuses: list[int]
    hold: asyncio.Event | None = None  # when set, answers only once it is set
    url: str = ""
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    signed: list[bool] = field(default_factory=list)


@contextlib.asynccontextmanager
async def receiver(*statuses: int, hold: asyncio.Event | None = None) -> AsyncIterator[Receiver]:
    rec = Receiver(list(statuses), hold)

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        h = request.headers
        rec.got.append((dict(h), body))
        rec.signed.append(
            verify_signature(SECRET, h["X-Menara-Timestamp"], body, h["X-Menara-Signature"])
        )
        if rec.hold is not None:
            await rec.hold.wait()
        status = rec.statuses.pop(0) if rec.statuses else 200
        return web.Response(status=status, text="ok" if status < 300 else "receiver is down")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


def test_a_webhook_is_signed_and_delivered_on_notify(conn: Conn, world: World) -> None:
    sc = scene(conn, world)

    async def go() -> None:
        async with receiver() as rec, Deliverer(dsn=world.dsn, **FAST) as d:
            add_webhook(conn, rec.url)
            aid = raise_alert(conn, world, sc)  # poll_s is 30 s: only NOTIFY wakes it now
            await until(lambda: d.counters["delivered"] == 1, what="the delivery")
            (headers, body), row = rec.got[0], delivery(conn, aid)
            assert rec.signed == [True] and len(rec.got) == 1
            assert headers["Content-Type"] == "application/json"
            assert (headers["X-Menara-Event"], headers["X-Menara-Delivery"]) == (
                "open",
                str(row["id"]),
            )
            sent = json.loads(body)
            assert (sent["event"], sent["alert"]["id"]) == ("open", aid)
            assert sent["alert"]["order_ids"] == [o.id for o in sc.orders]
            ts = headers["X-Menara-Timestamp"]
            header = headers["X-Menara-Signature"]
            assert not verify_signature("another-secret-value", ts, body, header)
            assert not verify_signature(SECRET, ts, body + b" ", header)
            assert not verify_signature(SECRET, int(ts) - 1, body, header)  # replayed time
            assert not verify_signature(SECRET, ts, body, header, now=int(ts) + 301)
            assert (row["attempts"], row["last_error"]) == (1, "")
            assert d.counters["delivered"] == 1

    asyncio.run(go())


def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(conn: Conn, world: World) -> None:
    sc = scene(conn, world)

    async def go() -> None:
        async with receiver(500, 503) as rec, Deliverer(dsn=world.dsn, **FAST) as d:
            add_webhook(conn, rec.url)
            aid = raise_alert(conn, world, sc)
            await until(lambda: d.counters["delivered"] == 1, what="the 3rd attempt")
            assert (delivery(conn, aid)["state"], delivery(conn, aid)["attempts"]) == (
                "delivered",
                3,
            )
            assert len(rec.got) == 3 and all(rec.signed)
            ids = {h["X-Menara-Delivery"] for h, _ in rec.got}
            assert len(ids) == 1  # the same delivery id every time: receivers de-duplicate
            assert (d.counters["retried"], d.counters["delivered"]) == (2, 1)

    asyncio.run(go())


def test_stopping_lets_the_send_in_flight_finish_and_records_it(conn: Conn, world: World) -> None:
    sc = scene(conn, world)

    async def go() -> None:
        release = asyncio.Event()
        async with receiver(hold=release) as rec:
            add_webhook(conn, rec.url)
            aid = raise_alert(conn, world, sc)
            d = Deliverer(dsn=world.dsn, **FAST)
            await d.__aenter__()
            await until(lambda: len(rec.got) == 1, what="the request in flight")
            stopping = asyncio.create_task(d.__aexit__(None, None, None))
            await until(lambda: d._stopping, what="the stop to begin")
            release.set()
            await stopping
            row = delivery(conn, aid)
            assert (row["state"], row["attempts"], d.counters["delivered"]) == ("delivered", 1, 1)

    asyncio.run(go())


def test_an_unreachable_url_fails_after_max_attempts_and_keeps_the_error(
    conn: Conn, world: World
) -> None:
    sc = scene(conn, world)
    add_webhook(conn, f"http://127.0.0.1:{free_port()}/hook")
    aid = raise_alert(conn, world, sc)

    async def go() -> None:
        async with Deliverer(dsn=world.dsn, max_attempts=3, **FAST) as d:
            # The counter moves after the row is written: wait on it, then read the row.
            await until(lambda: d.counters["failed"] == 1, what="giving up")
            assert d.counters["retried"] == 2

    asyncio.run(go())
    row = delivery(conn, aid)
    assert row["attempts"] == 3
    assert "Connect" in row["last_error"] and row["delivered_at"] is None


def test_410_gone_deactivates_the_webhook(conn: Conn, world: World) -> None:
    sc = scene(conn, world)

    async def go() -> None:
        async with receiver(410) as rec, Deliverer(dsn=world.dsn, **FAST):
            hook = add_webhook(conn, rec.url)
            aid = raise_alert(conn, world, sc)
            await until(lambda: delivery(conn, aid)["state"] == "failed", what="410")
            row = delivery(conn, aid)
            assert row["attempts"] == 1 and row["last_error"].startswith("HTTP 410")
            active = conn.execute("SELECT active FROM webhooks WHERE id = %s", (hook,)).fetchone()
            assert active == (False,)

    asyncio.run(go())


class Mailbox:
    """An aiosmtpd handler that keeps every envelope."""

    def __init__(self) -> None:
        self.got: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.got.append(envelope)
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Any:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


def test_the_depot_supervisors_get_an_email_they_can_act_on(conn: Conn, world: World) -> None:
    sc = scene(conn, world)
    for name, addr, role in (("Sam", "sam@example.org", "supervisor"),
                             ("Dan", "dan@example.org", "dispatcher")):  # fmt: skip
        conn.execute(
            "INSERT INTO depot_contacts (depot_id, name, email, role) VALUES (%s, %s, %s, %s)",
            (world.depot_id, name, addr, role),
        )
    aid = raise_alert(conn, world, sc)

    async def go(port: int, box: Mailbox) -> None:
        deliverer = Deliverer(
            dsn=world.dsn, smtp_port=port, public_url="https://tower.example/", **FAST
        )
        async with deliverer:
            await until(lambda: len(box.got) == 1, what="the email")
            await until(lambda: deliverer.counters["delivered"] == 1, what="the record")
            assert delivery(conn, aid)["state"] == "delivered"

    with smtp_server() as (box, port):
        asyncio.run(go(port, box))
    envelope = box.got[0]
    assert envelope.rcpt_tos == ["sam@example.org"]  # supervisors only
    assert envelope.content is not None
    msg = email.message_from_bytes(bytes(envelope.content), policy=email.policy.default)
    assert msg["To"] == "sam@example.org" and msg["From"] == "menara@localhost"
    assert msg["Subject"] == f"[Menara] CRITICAL route_deviation — van B 1234 XY, trip {sc.trip_id}"
    body = msg.get_body().get_content()  # type: ignore[union-attr]
    assert "Left the planned route by 420 m" in body
    assert f"stop 1 (stop id {sc.stop_id})" in body and "Depot: AMS" in body
    for o in sc.orders:
        assert f"order {o.id}, tracking {o.tracking_number}, Damrak 1, Amsterdam (Ada)" in body
    assert f"https://tower.example/api/v1/alerts/{aid}" in body


def test_email_off_fails_email_rows_once_with_the_reason(conn: Conn, world: World) -> None:
    sc = scene(conn, world)
    conn.execute(
        "INSERT INTO depot_contacts (depot_id, email) VALUES (%s, 'sam@example.org')",
        (world.depot_id,),
    )
    aid = raise_alert(conn, world, sc)

    async def go() -> None:
        async with Deliverer(dsn=world.dsn, smtp_port=0, **FAST):
            await until(lambda: delivery(conn, aid)["state"] == "failed", what="email off")

    asyncio.run(go())
    row = delivery(conn, aid)
    assert (row["attempts"], row["last_error"]) == (1, EMAIL_OFF)


def test_two_workers_never_send_one_row_twice(conn: Conn, world: World) -> None:
    sc = scene(conn, world)
    n = 40

    async def go() -> None:
        async with receiver() as rec:
            add_webhook(conn, rec.url)
            kw = {**FAST, "batch_size": 3}
            async with Deliverer(dsn=world.dsn, **kw) as a, Deliverer(dsn=world.dsn, **kw) as b:
                for i in range(n):
                    raise_alert(conn, world, sc, n=i)

                def all_delivered() -> bool:
                    row = conn.execute(
                        "SELECT count(*) FROM deliveries WHERE state = 'delivered'"
                    ).fetchone()
                    return row == (n,)

                await until(lambda: a.counters["delivered"] + b.counters["delivered"] == n)
                assert all_delivered()
                ids = [h["X-Menara-Delivery"] for h, _ in rec.got]
                assert len(ids) == n and len(set(ids)) == n
                assert a.counters["claimed"] + b.counters["claimed"] == n

    asyncio.run(go())


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    mid = [backoff_s(k, 5, 3600, rand=lambda: 0.5) for k in (1, 2, 3, 4, 20)]
    assert mid == [5, 10, 20, 40, 3600]
    assert backoff_s(3, 5, 3600, rand=lambda: 0.0) == pytest.approx(16)
    assert backoff_s(3, 5, 3600, rand=lambda: 1.0) == pytest.approx(24)


@given(st.binary(max_size=200), st.text(min_size=16, max_size=40), st.integers(0, 2**31))
def test_a_signature_verifies_only_its_own_body(body: bytes, secret: str, ts: int) -> None:
    header = sign(secret, ts, body)
    assert verify_signature(secret, ts, body, header, now=ts)
    assert not verify_signature(secret, ts, body + b"x", header, now=ts)
    assert not verify_signature(secret, str(ts), body, header, now=ts + 301)
    assert not verify_signature(secret, "soon", body, header, now=ts)


def test_an_escalation_says_so_in_the_subject() -> None:
    alert = {"severity": "warning", "type": "late", "vehicle_id": 3, "trip_id": None}
    assert mail.subject(alert, "escalate", mail.Where()) == (
        "[Menara] ESCALATED WARNING late — vehicle 3"
    )
