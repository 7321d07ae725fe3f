"""Customer notifications through the API: webhooks carry their purpose, customers
their language, and an order's notifications are listed with their state, attempts
and last error (real sockets, real database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from oms_core.api import Role
from tests.oms_core.test_api import Api, api_for
from tests.oms_core.test_notify_email import notes
from tests.oms_core.trip_world import TripWorld, serve_trip

pytestmark = pytest.mark.db


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


@pytest.fixture
def tw(clean_db: str, tmp_path: Path) -> Iterator[TripWorld]:
    yield from serve_trip(clean_db, tmp_path / "files")


def test_a_gateway_webhook_is_registered_with_its_purpose_and_events(api: Api) -> None:
    body = {"url": "https://sms.example.com/in", "purpose": "customer_messages",
            "types": ["failed", "delayed", "failed"]}  # fmt: skip
    status, _, made = api.call("POST", "/webhooks", json=body)
    assert status == 201
    assert (made["purpose"], made["types"]) == ("customer_messages", ["delayed", "failed"])
    read = api.call("GET", f"/webhooks/{made['id']}", role=Role.SUPERVISOR)[2]
    assert read == {k: v for k, v in made.items() if k != "secret"}
    listed = api.call("GET", "/webhooks")[2]["webhooks"]
    assert [w["purpose"] for w in listed] == ["customer_messages"]

    bad = {**body, "types": ["overspeed", "delivered"]}  # an alert type is no message event
    status, _, err = api.call("POST", "/webhooks", json=bad)
    assert (status, err["error"]["code"]) == (422, "invalid_value")
    assert err["error"]["details"][0]["field"] == "/types"
    assert "overspeed" in err["error"]["details"][0]["message"]
    status, _, err = api.call("POST", "/webhooks", json={**body, "purpose": "pigeons"})
    assert (status, err["error"]["details"][0]["field"]) == (422, "/purpose")
    alerts = {"url": "http://x.test", "types": ["overspeed"]}  # alert webhooks keep theirs
    assert api.call("POST", "/webhooks", json=alerts)[0] == 201
    assert len(api.call("GET", "/webhooks")[2]["webhooks"]) == 2  # nothing refused was stored


def test_customers_choose_their_language_and_whatsapp(api: Api) -> None:
    body = {"name": "Budi", "phone": "+62 812 1234 5678", "language": "en",
            "notify_prefs": {"whatsapp": True, "email": False}}  # fmt: skip
    status, _, budi = api.call("POST", "/customers", json=body)
    assert status == 201
    assert (budi["language"], budi["notify_prefs"]) == ("en", {"email": False, "whatsapp": True})
    assert api.call("GET", f"/customers/{budi['id']}")[2] == budi
    sari = api.call("POST", "/customers", json={"name": "Sari"})[2]
    assert sari["language"] == "id"  # Bahasa Indonesia unless asked otherwise
    status, _, err = api.call("POST", "/customers", json={"name": "X", "language": "fr"})
    assert (status, err["error"]["details"][0]["field"]) == (422, "/language")


def test_an_orders_notifications_are_listed_with_their_outcome(tw: TripWorld) -> None:
    o1 = tw.order_ids[0]
    (row,) = notes(tw, o1)
    status, _, page = tw.api.call("GET", f"/orders/{o1}/notifications", role=Role.SUPERVISOR)
    assert status == 200
    assert page == {
        "order_id": o1,
        "notifications": [
            {"id": row["id"], "event": "confirmed", "medium": "email", "to": "ada@example.org",
             "channel": "email", "webhook_id": None, "state": "pending", "attempts": 0,
             "next_attempt_at": row["next_attempt_at"].isoformat(), "last_error": "",
             "delivered_at": None, "created_at": row["created_at"].isoformat()},
        ],
    }  # fmt: skip
    everything = tw.api.call("GET", f"/deliveries?order_id={o1}")[2]["deliveries"]
    assert [(d["id"], d["order_id"], d["alert_id"]) for d in everything] == [(row["id"], o1, None)]
    assert (
        tw.api.call("GET", "/deliveries?channel=email")[2]["deliveries"][0]["order_id"]
        == (tw.order_ids[1])
    )  # newest first
    assert tw.api.call("GET", f"/orders/{o1}/notifications", role=Role.DRIVER)[0] == 403
    status, _, err = tw.api.call("GET", "/orders/999999/notifications")
    assert (status, err["error"]["code"]) == (404, "not_found")
