"""POST /orders/{id}/payment over real sockets: audited moves, 409 naming the legal
ones, and only dispatchers may move money."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oms_core.api import Role
from tests.oms_core.test_api import Api, api_for, order_body

pytestmark = pytest.mark.db


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


def _prepaid_order(api: Api) -> int:
    status, _, order = api.call(
        "POST", "/orders", json=order_body(api.world, payment_method="prepaid")
    )
    assert (status, order["payment_state"]) == (201, "unpaid")
    return int(order["id"])


def test_authorise_then_pay_is_audited(api: Api) -> None:
    oid = _prepaid_order(api)
    status, _, order = api.call(
        "POST", f"/orders/{oid}/payment", json={"state": "authorised", "reason": "PSP auth 42"}
    )
    assert (status, order["payment_state"]) == (200, "authorised")
    status, _, order = api.call("POST", f"/orders/{oid}/payment", json={"state": "paid"})
    assert (status, order["payment_state"], order["state"]) == (200, "paid", "draft")

    status, _, trail = api.call("GET", f"/orders/{oid}/events")
    payments = [
        (e["actor"], e["from_state"], e["to_state"], e["reason"])
        for e in trail["events"]
        if e["kind"] == "payment"
    ]
    assert payments == [
        ("dispatcher-desk", "unpaid", "authorised", "PSP auth 42"),
        ("dispatcher-desk", "authorised", "paid", ""),
    ]


def test_illegal_move_is_409_naming_the_legal_ones_and_changes_nothing(api: Api) -> None:
    oid = _prepaid_order(api)
    status, _, body = api.call("POST", f"/orders/{oid}/payment", json={"state": "refunded"})
    assert status == 409
    assert body["error"]["code"] == "illegal_transition"
    assert "legal next: authorised, paid" in body["error"]["message"]
    assert body["error"]["details"] == [
        {"from": "unpaid", "to": "refunded", "legal_next": ["authorised", "paid"]}
    ]
    _, _, order = api.call("GET", f"/orders/{oid}")
    assert order["payment_state"] == "unpaid"
    _, _, trail = api.call("GET", f"/orders/{oid}/events")
    assert [e for e in trail["events"] if e["kind"] == "payment"] == []


def test_cash_on_delivery_is_collected(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    assert order["payment_state"] == "cod_pending"
    status, _, paid = api.call(
        "POST", f"/orders/{order['id']}/payment", json={"state": "cod_collected"}
    )
    assert (status, paid["payment_state"]) == (200, "cod_collected")


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.DRIVER, Role.CUSTOMER])
def test_only_dispatchers_move_payments(api: Api, role: Role) -> None:
    oid = _prepaid_order(api)
    status, _, body = api.call("POST", f"/orders/{oid}/payment", role=role, json={"state": "paid"})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    _, _, order = api.call("GET", f"/orders/{oid}")
    assert order["payment_state"] == "unpaid"


def test_unknown_order_and_unknown_state(api: Api) -> None:
    status, _, body = api.call("POST", "/orders/999/payment", json={"state": "paid"})
    assert (status, body["error"]["code"]) == (404, "not_found")
    oid = _prepaid_order(api)
    status, _, body = api.call("POST", f"/orders/{oid}/payment", json={"state": "gift"})
    assert (status, body["error"]["code"]) == (422, "invalid_value")
