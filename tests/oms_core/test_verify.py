"""Verification: each rule on its own (pure), then ``verify`` against the database."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from oms_core import orders
from oms_core.errors import IllegalTransition
from oms_core.model import Line, Order
from oms_core.states import OrderState, PaymentMethod, PaymentState
from oms_core.verify import Polygon, Radius, haversine_km, inside_polygon, problems, verify
from tests.oms_core import DEPOT_LAT, DEPOT_LON, NOW, World, order_in

S = OrderState
P = PaymentState
Conn = psycopg.Connection[Any]
SQUARE = ((4.8, 52.3), (5.0, 52.3), (5.0, 52.5), (4.8, 52.5))

GOOD = Order(
    id=1,
    customer_id=1,
    address_id=None,
    address_text="Damrak 1",
    lat=DEPOT_LAT + 0.018,  # 2.0 km north of the depot
    lon=DEPOT_LON,
    depot_id=1,
    window_start=NOW + timedelta(hours=2),
    window_end=NOW + timedelta(hours=5),
    instructions="",
    payment_method=PaymentMethod.PREPAID,
    payment_state=P.AUTHORISED,
    invoice_number=None,
    total_amount=Decimal("30.00"),
    total_weight_kg=Decimal(6),
    total_volume_m3=Decimal("0.03"),
    state=S.DRAFT,
    tracking_number="MN-22222222X",
    public_token="t" * 32,
    created_at=NOW,
    updated_at=NOW,
    lines=(Line(1, "A", 3, Decimal("10.00"), None),),
)


def _codes(order: Order, **kw: Any) -> list[str]:
    args: dict[str, Any] = {"depot": (DEPOT_LAT, DEPOT_LON), "active_skus": {"A"}, "now": NOW}
    args.update(kw)
    return [p.code for p in problems(order, **args)]


def test_a_good_order_has_no_problems() -> None:
    assert _codes(GOOD) == []
    assert _codes(GOOD, service_area=Polygon(SQUARE)) == []


@pytest.mark.parametrize(
    ("change", "kw", "code"),
    [
        ({"lat": None, "lon": None}, {}, "no_coordinates"),
        ({"lat": DEPOT_LAT + 0.5}, {}, "outside_service_area"),  # ≈ 56 km
        ({"lat": DEPOT_LAT + 0.05}, {"service_area": Radius(5)}, "outside_service_area"),
        ({"lon": 5.1}, {"service_area": Polygon(SQUARE)}, "outside_service_area"),
        ({"lines": (Line(1, "Z", 1, Decimal(1), None),)}, {}, "unknown_sku"),
        ({"lines": (Line(1, "A", 0, Decimal(1), None),)}, {}, "bad_quantity"),
        ({"lines": ()}, {}, "no_lines"),
        ({"window_start": NOW - timedelta(minutes=1)}, {}, "window_in_past"),
        ({"window_start": NOW + timedelta(minutes=30)}, {}, "lead_time_too_short"),
        (
            {"window_start": NOW + timedelta(hours=2)},
            {"min_lead_s": 3 * 3600},
            "lead_time_too_short",
        ),
        ({"payment_state": P.UNPAID}, {}, "payment_not_acceptable"),
        ({"payment_state": P.REFUNDED}, {}, "payment_not_acceptable"),
        (
            {"payment_method": PaymentMethod.COD, "payment_state": P.PAID},
            {},
            "payment_not_acceptable",
        ),
    ],
)
def test_each_rule(change: dict[str, Any], kw: dict[str, Any], code: str) -> None:
    assert _codes(dataclasses.replace(GOOD, **change), **kw) == [code]


def test_messages_say_what_to_do() -> None:
    far = dataclasses.replace(GOOD, lat=DEPOT_LAT + 0.5, payment_state=P.UNPAID)
    msgs = [
        p.message for p in problems(far, depot=(DEPOT_LAT, DEPOT_LON), active_skus={"A"}, now=NOW)
    ]
    assert msgs == [
        "address is 55.6 km from the depot; the limit is 50 km",
        "a prepaid order needs payment authorised or paid, not unpaid",
    ]


def test_cod_pending_is_acceptable() -> None:
    cod = dataclasses.replace(GOOD, payment_method=PaymentMethod.COD, payment_state=P.COD_PENDING)
    assert _codes(cod) == []


def test_geometry_on_round_numbers() -> None:
    assert haversine_km(0, 0, 0, 1) == pytest.approx(111.195, abs=0.001)
    assert haversine_km(52, 4, 52, 4) == 0
    assert inside_polygon(4.9, 52.4, SQUARE)
    assert not inside_polygon(5.1, 52.4, SQUARE)
    assert not inside_polygon(4.9, 52.6, SQUARE)
    concave = ((0, 0), (4, 0), (4, 4), (2, 1), (0, 4))  # a notch from the top
    assert inside_polygon(1, 1, concave)
    assert not inside_polygon(2, 3, concave)


@pytest.mark.db
def test_verify_moves_a_clean_draft_to_verified(world: World, conn: Conn) -> None:
    oid = orders.create_order(conn, order_in(world, payment_method="cod")).id
    assert verify(conn, oid, now=NOW, actor="checker") == []
    assert orders.get_order(conn, oid).state == S.VERIFIED
    last = orders.audit_trail(conn, oid)[-1]
    assert (last.actor, last.from_state, last.to_state) == ("checker", "draft", "verified")
    with pytest.raises(IllegalTransition, match="from verified to verified"):
        verify(conn, oid, now=NOW)


@pytest.mark.db
def test_verify_with_problems_changes_nothing(world: World, conn: Conn) -> None:
    oid = orders.create_order(conn, order_in(world, lat=None, lon=None)).id
    conn.execute("UPDATE products SET active = false WHERE sku = 'B'")
    found = verify(conn, oid, now=NOW + timedelta(days=1, minutes=30))
    assert [p.code for p in found] == [
        "unknown_sku",
        "no_coordinates",
        "lead_time_too_short",
        "payment_not_acceptable",
    ]
    assert orders.get_order(conn, oid).state == S.DRAFT
    assert len(orders.audit_trail(conn, oid)) == 1


@pytest.mark.db
def test_verify_uses_the_order_depot_and_the_given_area(world: World, conn: Conn) -> None:
    oid = orders.create_order(conn, order_in(world, payment_method="cod")).id
    assert [p.code for p in verify(conn, oid, now=NOW, service_area=Radius(1.5))] == [
        "outside_service_area"
    ]
    assert verify(conn, oid, now=NOW, service_area=Polygon(SQUARE)) == []
