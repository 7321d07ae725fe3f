"""The customer's tracking page over real sockets: no API token, only the customer's own
order, no internal ids, and one 404 for every link that opens nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from oms_core import orders
from oms_core.api import Role
from oms_core.api.tracking import LABELS
from oms_core.states import OrderState
from tests.oms_core import DEPOT_LAT, DEPOT_LON, NOW, one
from tests.oms_core.test_api import Api, api_for, order_body

pytestmark = pytest.mark.db
PAGE_KEYS = {
    "tracking_number", "state", "state_label", "window_start", "window_end",
    "address_text", "total_amount", "payment_state", "stop",
}  # fmt: skip
ARRIVAL = NOW + timedelta(days=1, hours=2)


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


def _keys(value: Any) -> set[str]:
    """Every key at any depth of a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _schedule(api: Api, order: dict[str, Any]) -> None:
    """Verify and reserve through the API, then plan one stop for it by hand."""
    oid = order["id"]
    assert api.call("POST", f"/orders/{oid}/verify")[2]["verified"] is True
    assert api.call("POST", f"/orders/{oid}/reserve")[0] == 200
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        vehicle = one(
            conn,
            "INSERT INTO vehicles (plate, capacity_kg, capacity_m3) VALUES ('V-1', 500, 5)",
        )
        trip = one(
            conn,
            "INSERT INTO trips (vehicle_id, depot_id, day, planned_departure, planned_return)"
            " VALUES (%s, %s, %s, %s, %s)",
            (vehicle, api.world.depot_id, ARRIVAL.date(), ARRIVAL - timedelta(hours=1),
             ARRIVAL + timedelta(hours=1)),
        )  # fmt: skip
        stop = one(
            conn,
            "INSERT INTO stops (trip_id, seq, lat, lon, planned_arrival, planned_departure)"
            " VALUES (%s, 1, %s, %s, %s, %s)",
            (trip, DEPOT_LAT + 0.018, DEPOT_LON, ARRIVAL, ARRIVAL + timedelta(minutes=10)),
        )
        conn.execute("INSERT INTO stop_orders (stop_id, order_id) VALUES (%s, %s)", (stop, oid))
        orders.transition(conn, oid, OrderState.SCHEDULED, actor="planner")


def test_a_draft_order_shows_its_window_and_no_stop(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    status, headers, page = api.call("GET", f"/track/{order['public_token']}", role=None)
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert page == {
        "tracking_number": order["tracking_number"],
        "state": "draft",
        "state_label": "Order received",
        "window_start": order["window_start"],
        "window_end": order["window_end"],
        "address_text": "Damrak 1, Amsterdam",
        "total_amount": "35.00",
        "payment_state": "cod_pending",
        "stop": None,
    }


def test_a_scheduled_order_shows_its_planned_then_actual_arrival(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    _schedule(api, order)
    status, _, page = api.call("GET", f"/track/{order['public_token']}", role=None)
    assert (status, page["state"], page["state_label"]) == (200, "scheduled", "Delivery scheduled")
    assert datetime.fromisoformat(page["stop"]["planned_arrival"]) == ARRIVAL
    assert page["stop"]["actual_arrival"] is None

    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        conn.execute("UPDATE stops SET actual_arrival = %s", (ARRIVAL + timedelta(minutes=3),))
    _, _, page = api.call("GET", f"/track/{order['public_token']}", role=None)
    arrived = datetime.fromisoformat(page["stop"]["actual_arrival"])
    assert arrived == ARRIVAL + timedelta(minutes=3)


def test_the_page_holds_no_internal_ids_nor_the_token(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    _schedule(api, order)
    _, _, page = api.call("GET", f"/track/{order['public_token']}", role=None)
    assert set(page) == PAGE_KEYS
    assert not {k for k in _keys(page) if k == "id" or k.endswith("_id")}
    assert order["public_token"] not in str(page)


def test_unknown_and_malformed_links_get_one_and_the_same_404(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    token = order["public_token"]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    answers = [
        api.call("GET", f"/track/{t}", role=None)
        for t in (flipped, "x" * 30, "short", "a" * 65, "bad%20token%20with%20spaces")
    ]
    assert {status for status, _, _ in answers} == {404}
    assert len({str(body) for _, _, body in answers}) == 1
    assert answers[0][2]["error"]["code"] == "not_found"


def test_tracking_numbers_open_nothing(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    number = order["tracking_number"]
    for path in (f"/track?number={number}", f"/track/{number}"):
        status, _, body = api.call("GET", path, role=None)
        assert (status, body["error"]["code"]) == (404, "not_found")


def test_customer_tokens_open_tracking_and_nothing_else(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    status, _, page = api.call("GET", f"/track/{order['public_token']}", role=Role.CUSTOMER)
    assert (status, page["tracking_number"]) == (200, order["tracking_number"])
    for method, path in (("GET", f"/orders/{order['id']}"), ("GET", "/orders")):
        status, _, body = api.call(method, path, role=Role.CUSTOMER)
        assert (status, body["error"]["code"]) == (403, "forbidden")


def test_every_state_has_a_label_for_customers() -> None:
    assert set(LABELS) == set(OrderState)
    assert all(label and label[0].isupper() for label in LABELS.values())
