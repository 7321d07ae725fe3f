"""Customer SMS / WhatsApp through a gateway webhook: a real aiohttp receiver checks the
HMAC signature of each POST and the JSON body, alert webhooks get none of it, and a
gateway's depot and event filters hold."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from oms_core.alerts.delivery import Deliverer
from oms_core.api import Role
from tests.oms_core import one
from tests.oms_core.test_delivery import FAST, SECRET, receiver
from tests.oms_core.test_driver_api import action
from tests.oms_core.test_notify_email import BASE, notes, set_customer, tracking, window
from tests.oms_core.trip_world import TripWorld, serve_trip
from tests.polling import until

pytestmark = pytest.mark.db
PHONE = "+31 6 1234 5678"  # trip_world's Ada


@pytest.fixture
def tw(clean_db: str, tmp_path: Path) -> Iterator[TripWorld]:
    # The test gateways listen on loopback, which webhooks may reach only when allowed.
    yield from serve_trip(clean_db, tmp_path / "files", webhook_allow_private=True)


def test_the_gateway_gets_one_signed_message_per_medium(tw: TripWorld) -> None:
    set_customer(tw, notify_prefs='{"sms": true, "whatsapp": true}', language="en")

    async def go() -> None:
        async with receiver() as gateway, receiver() as control_room:
            made = await tw.api.acall(
                "POST", "/webhooks",
                json={"url": gateway.url, "secret": SECRET, "purpose": "customer_messages"},
            )  # fmt: skip
            assert (made[0], made[2]["purpose"]) == (201, "customer_messages")
            hook = made[2]["id"]
            alerts = await tw.api.acall("POST", "/webhooks", json={"url": control_room.url})
            assert (alerts[0], alerts[2]["purpose"]) == (201, "alerts")
            departed = f"/driver/trips/{tw.trip_id}/departed"
            assert (await tw.api.acall("POST", departed, Role.DRIVER, json=action()))[0] == 200
            async with Deliverer(dsn=tw.dsn, base_url=BASE, **FAST) as d:
                await until(lambda: d.counters["delivered"] == 4, what="2 orders × sms, whatsapp")
            assert control_room.got == []  # alert webhooks never see customer messages
            assert len(gateway.got) == 4 and all(gateway.signed)
            bodies = [json.loads(body) for _, body in gateway.got]
            for headers, _ in gateway.got:
                assert headers["X-Menara-Event"] == "out_for_delivery"
                assert headers["Content-Type"] == "application/json"
            for seq, order_id in enumerate(tw.order_ids, 1):
                number, link = tracking(tw, order_id)
                text = (
                    f"Order {number} is on its way, arriving {window(tw, seq, 'en')}. Track: {link}"
                )
                expected = [
                    {"event": "out_for_delivery", "medium": medium, "to": PHONE, "language": "en",
                     "text": text, "tracking_number": number, "tracking_url": link}
                    for medium in ("sms", "whatsapp")
                ]  # fmt: skip
                assert sorted((b for b in bodies if b["tracking_number"] == number),
                              key=lambda b: b["medium"]) == expected  # fmt: skip
                rows = notes(tw, order_id, "out_for_delivery")
                assert [(r["state"], r["webhook_id"], r["email"]) for r in rows] == [
                    ("delivered", hook, None), ("delivered", hook, None)
                ]  # fmt: skip
                ids = {h["X-Menara-Delivery"] for (h, _), b in zip(gateway.got, bodies, strict=True)
                       if b["tracking_number"] == number}  # fmt: skip
                assert ids == {str(r["id"]) for r in rows}
                keys = {r["dedupe_key"] for r in rows}
                assert keys == {f"order:{order_id}:out_for_delivery:{m}:{PHONE}:webhook:{hook}"
                                for m in ("sms", "whatsapp")}  # fmt: skip

    asyncio.run(go())


def test_a_gateway_gets_only_its_depot_and_its_events(tw: TripWorld) -> None:
    set_customer(tw, notify_prefs='{"sms": true}')
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        other = one(conn, "INSERT INTO depots (name, lat, lon) VALUES ('RTM', 51.9, 4.5)")
        wanted = one(
            conn,
            "INSERT INTO webhooks (url, secret, purpose, types) VALUES"
            " ('http://gw.test/a', %s, 'customer_messages', '{out_for_delivery}')",
            (SECRET,),
        )
        for depot, types in ((other, None), (None, ["delivered", "failed"])):
            conn.execute(
                "INSERT INTO webhooks (url, secret, purpose, depot_id, types) VALUES"
                " ('http://gw.test/b', %s, 'customer_messages', %s, %s)",
                (SECRET, depot, types),
            )
        conn.execute(
            "INSERT INTO webhooks (url, secret, purpose, active) VALUES"
            " ('http://gw.test/c', %s, 'customer_messages', false)",
            (SECRET,),
        )
    status, _, _ = tw.api.call(
        "POST", f"/driver/trips/{tw.trip_id}/departed", Role.DRIVER, json=action()
    )
    assert status == 200
    for order_id in tw.order_ids:
        rows = notes(tw, order_id, "out_for_delivery")
        assert [r["webhook_id"] for r in rows] == [wanted]
        assert rows[0]["payload"]["medium"] == "sms" and rows[0]["payload"]["to"] == PHONE
