"""Orders against the real database: entry, every transition, audit, payment, listing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from oms_core import orders
from oms_core.errors import IllegalTransition, InvalidOrder, NotFound
from oms_core.model import LineIn, OrderFilter
from oms_core.states import TRANSITIONS, OrderState, PaymentState
from oms_core.tracking import valid_tracking_number
from tests.oms_core import NOW, World, order_in, stock_of

pytestmark = pytest.mark.db
S = OrderState
Conn = psycopg.Connection[Any]

# How to reach each state from draft (partial delivery: 1 of the 3 A, none of the 2 B).
PARTIAL = {1: 1, 2: 0}
PATH: dict[OrderState, list[OrderState]] = {S.DRAFT: []}
for _a, _b in [
    (S.DRAFT, S.VERIFIED),
    (S.VERIFIED, S.RESERVED),
    (S.RESERVED, S.SCHEDULED),
    (S.SCHEDULED, S.DISPATCHED),
    (S.DISPATCHED, S.OUT_FOR_DELIVERY),
    (S.OUT_FOR_DELIVERY, S.ARRIVED),
    (S.ARRIVED, S.DELIVERED),
    (S.ARRIVED, S.PARTIALLY_DELIVERED),
    (S.ARRIVED, S.FAILED),
    (S.DELIVERED, S.COMPLETED),
    (S.DRAFT, S.CANCELLED),
]:
    PATH[_b] = [*PATH[_a], _b]


def _go(conn: Conn, order_id: int, to: OrderState) -> None:
    orders.transition(
        conn,
        order_id,
        to,
        actor="test",
        delivered=PARTIAL if to == S.PARTIALLY_DELIVERED else None,
    )


def _snapshot(conn: Conn, w: World, order_id: int) -> tuple[object, ...]:
    o = orders.get_order(conn, order_id)
    return (
        o.state,
        o.lines,
        o.updated_at,
        orders.audit_trail(conn, order_id),
        stock_of(conn, w.depot_id),
    )


def test_create_stores_a_draft_with_totals_tracking_and_audit(world: World, conn: Conn) -> None:
    o = orders.create_order(conn, order_in(world, invoice_number="INV-1"), actor="desk")
    assert o.state == S.DRAFT
    assert o.payment_state == PaymentState.UNPAID
    assert o.total_amount == Decimal("35.00")
    assert o.total_weight_kg == Decimal("7.000")
    assert o.total_volume_m3 == Decimal("0.0340")
    assert [(ln.line_no, ln.sku, ln.qty, ln.delivered_qty) for ln in o.lines] == [
        (1, "A", 3, None),
        (2, "B", 2, None),
    ]
    assert valid_tracking_number(o.tracking_number)
    assert len(o.public_token) >= 22
    assert o.invoice_number == "INV-1"
    assert orders.get_order(conn, o.id) == o
    [event] = orders.audit_trail(conn, o.id)
    assert (event.actor, event.kind, event.from_state, event.to_state, event.reason) == (
        "desk",
        "state",
        None,
        "draft",
        "created",
    )
    assert stock_of(conn, world.depot_id) == {"A": (10, 0), "B": (5, 0)}


def test_cod_orders_start_pending(world: World, conn: Conn) -> None:
    o = orders.create_order(conn, order_in(world, payment_method="cod"))
    assert o.payment_state == PaymentState.COD_PENDING


def test_coordinates_come_from_the_saved_address(world: World, conn: Conn) -> None:
    aid = conn.execute(
        "INSERT INTO addresses (customer_id, text, lat, lon) VALUES (%s, 'Dam 1', 52.373, 4.893)"
        " RETURNING id",
        (world.customer_id,),
    ).fetchone()
    assert aid is not None
    o = orders.create_order(conn, order_in(world, lat=None, lon=None, address_id=aid[0]))
    assert (o.lat, o.lon, o.address_id) == (52.373, 4.893, aid[0])


def test_invalid_orders_are_refused_with_every_reason_and_nothing_stored(
    world: World, conn: Conn
) -> None:
    bad = order_in(
        world,
        customer_id=999,
        lat=None,
        window_end=NOW,
        address_text=" ",
        lines=(LineIn("A", 0, Decimal(1)), LineIn("NOPE", 1, Decimal(-1))),
    )
    with pytest.raises(InvalidOrder) as info:
        orders.create_order(conn, bad)
    assert [p.code for p in info.value.problems] == [
        "bad_quantity",
        "unknown_sku",
        "bad_price",
        "bad_coordinates",
        "no_address",
        "bad_window",
        "unknown_customer",
    ]
    assert "SKU 'NOPE' is not sold" in str(info.value)
    with pytest.raises(InvalidOrder, match="no_lines"):
        orders.create_order(conn, order_in(world, lines=()))
    assert conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM order_events").fetchone() == (0,)


def test_duplicate_invoice_number_is_refused(world: World, conn: Conn) -> None:
    orders.create_order(conn, order_in(world, invoice_number="INV-7"))
    with pytest.raises(InvalidOrder, match="duplicate_invoice: invoice INV-7 is taken"):
        orders.create_order(conn, order_in(world, invoice_number="INV-7"))
    assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)


def _expected_stock(frm: OrderState, to: OrderState) -> dict[str, tuple[int, int]]:
    """Stock after ``frm`` → ``to`` for the 3 A + 2 B order, from 10 A / 5 B."""
    held = {"A": (10, 3), "B": (5, 2)}
    free = {"A": (10, 0), "B": (5, 0)}
    if to == S.RESERVED:
        return held
    if to == S.DELIVERED:
        return {"A": (7, 0), "B": (3, 0)}
    if to == S.PARTIALLY_DELIVERED:
        return {"A": (9, 0), "B": (5, 0)}
    if to in (S.CANCELLED, S.FAILED):
        return free
    if to == S.COMPLETED:
        return {S.DELIVERED: {"A": (7, 0), "B": (3, 0)}, S.FAILED: free}.get(
            frm, {"A": (9, 0), "B": (5, 0)}
        )
    return held if frm not in (S.DRAFT, S.VERIFIED) else free


@pytest.mark.parametrize("frm", list(OrderState))
@pytest.mark.parametrize("to", list(OrderState))
def test_every_transition(world: World, conn: Conn, frm: OrderState, to: OrderState) -> None:
    oid = orders.create_order(conn, order_in(world)).id
    for step in PATH[frm]:
        _go(conn, oid, step)
    before = _snapshot(conn, world, oid)
    if to not in TRANSITIONS[frm]:
        with pytest.raises(IllegalTransition, match=f"from {frm} to {to}"):
            orders.transition(conn, oid, to, actor="x", reason="try", delivered=PARTIAL)
        assert _snapshot(conn, world, oid) == before
        return
    after = orders.transition(
        conn,
        oid,
        to,
        actor="ops",
        reason=f"to {to}",
        delivered=PARTIAL if to == S.PARTIALLY_DELIVERED else None,
    )
    assert after.state == to == orders.get_order(conn, oid).state
    trail = orders.audit_trail(conn, oid)
    assert len(trail) == len(PATH[frm]) + 2
    last = trail[-1]
    assert (last.actor, last.kind, last.from_state, last.to_state, last.reason) == (
        "ops",
        "state",
        frm,
        to,
        f"to {to}",
    )
    assert stock_of(conn, world.depot_id) == _expected_stock(frm, to)


def test_delivered_quantities_are_recorded(world: World, conn: Conn) -> None:
    oid = orders.create_order(conn, order_in(world)).id
    for step in PATH[S.PARTIALLY_DELIVERED]:
        _go(conn, oid, step)
    assert [ln.delivered_qty for ln in orders.get_order(conn, oid).lines] == [1, 0]
    other = orders.create_order(conn, order_in(world)).id
    for step in PATH[S.FAILED]:
        _go(conn, other, step)
    assert [ln.delivered_qty for ln in orders.get_order(conn, other).lines] == [0, 0]


@pytest.mark.parametrize(
    ("to", "delivered", "message"),
    [
        (S.DELIVERED, {1: 3, 2: 1}, "not every unit delivered: use partially_delivered"),
        (S.PARTIALLY_DELIVERED, {1: 3, 2: 2}, "some but not all units"),
        (S.PARTIALLY_DELIVERED, {1: 0}, "some but not all units"),
        (S.PARTIALLY_DELIVERED, None, "some but not all units"),
        (S.PARTIALLY_DELIVERED, {1: 4}, "line 1: delivered 4 of 3"),
        (S.PARTIALLY_DELIVERED, {1: 1, 9: 1}, "has no line 9"),
    ],
)
def test_bad_delivered_quantities_change_nothing(
    world: World, conn: Conn, to: OrderState, delivered: dict[int, int] | None, message: str
) -> None:
    oid = orders.create_order(conn, order_in(world)).id
    for step in PATH[S.ARRIVED]:
        _go(conn, oid, step)
    before = _snapshot(conn, world, oid)
    with pytest.raises(InvalidOrder, match=message):
        orders.transition(conn, oid, to, actor="driver", delivered=delivered)
    assert _snapshot(conn, world, oid) == before


def test_unknown_order(conn: Conn) -> None:
    with pytest.raises(NotFound, match="no order 12345"):
        orders.transition(conn, 12345, S.VERIFIED, actor="x")
    with pytest.raises(NotFound):
        orders.get_order(conn, 12345)
    with pytest.raises(NotFound):
        orders.audit_trail(conn, 12345)


def test_the_audit_trail_is_append_only(world: World, conn: Conn) -> None:
    oid = orders.create_order(conn, order_in(world)).id
    with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
        conn.execute("UPDATE order_events SET actor = 'mallory' WHERE order_id = %s", (oid,))
    with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
        conn.execute("DELETE FROM order_events WHERE order_id = %s", (oid,))
    assert [e.actor for e in orders.audit_trail(conn, oid)] == ["system"]


def test_payment_moves_are_checked_and_audited(world: World, conn: Conn) -> None:
    oid = orders.create_order(conn, order_in(world)).id
    orders.set_payment(conn, oid, PaymentState.AUTHORISED, actor="psp", reason="auth 42")
    o = orders.set_payment(conn, oid, "paid", actor="psp")
    assert o.payment_state == PaymentState.PAID
    with pytest.raises(IllegalTransition, match="payment cannot go from paid to cod_collected"):
        orders.set_payment(conn, oid, "cod_collected", actor="psp")
    trail = orders.audit_trail(conn, oid)
    assert [(e.kind, e.from_state, e.to_state, e.reason) for e in trail[1:]] == [
        ("payment", "unpaid", "authorised", "auth 42"),
        ("payment", "authorised", "paid", ""),
    ]
    assert orders.get_order(conn, oid).state == S.DRAFT


def test_list_filters_and_pages(world: World, conn: Conn) -> None:
    other = conn.execute("INSERT INTO customers (name) VALUES ('Bob') RETURNING id").fetchone()
    assert other is not None
    ids = []
    for i in range(7):
        o = orders.create_order(
            conn,
            order_in(
                world,
                customer_id=other[0] if i % 3 == 0 else world.customer_id,
                window_start=NOW + timedelta(days=i + 1),
                window_end=NOW + timedelta(days=i + 1, hours=3),
            ),
        )
        ids.append(o.id)
    orders.transition(conn, ids[1], S.CANCELLED, actor="x")
    orders.transition(conn, ids[2], S.CANCELLED, actor="x")

    seen, cursor, sizes = [], None, []
    while True:
        page = orders.list_orders(conn, limit=3, cursor=cursor)
        sizes.append(len(page.orders))
        seen += [o.id for o in page.orders]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sizes == [3, 3, 1]
    assert seen == sorted(ids, reverse=True)

    def ids_for(f: OrderFilter) -> list[int]:
        return sorted(o.id for o in orders.list_orders(conn, f, limit=500).orders)

    assert ids_for(OrderFilter(states=(S.CANCELLED,))) == [ids[1], ids[2]]
    assert ids_for(OrderFilter(customer_id=other[0])) == [ids[0], ids[3], ids[6]]
    assert ids_for(OrderFilter(customer_id=other[0], states=(S.DRAFT,))) == [
        ids[0],
        ids[3],
        ids[6],
    ]
    assert ids_for(
        OrderFilter(window_from=NOW + timedelta(days=2), window_to=NOW + timedelta(days=4))
    ) == [ids[1], ids[2]]
    tn = orders.get_order(conn, ids[4]).tracking_number
    assert ids_for(OrderFilter(tracking_number=tn)) == [ids[4]]
    assert ids_for(OrderFilter(depot_id=world.depot_id + 1)) == []
    page = orders.list_orders(conn, limit=7)
    assert page.next_cursor is None and len(page.orders) == 7
    assert page.orders[0].lines == orders.get_order(conn, ids[6]).lines
    with pytest.raises(InvalidOrder, match="bad_cursor"):
        orders.list_orders(conn, cursor="abc")
    with pytest.raises(InvalidOrder, match="bad_limit"):
        orders.list_orders(conn, limit=0)
