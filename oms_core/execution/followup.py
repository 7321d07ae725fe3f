"""The follow-up of an attempt that failed or fell short.

The stock side is done by the outcome's transition: undelivered units return to the
depot's free stock. What remains owed to the customer becomes a re-delivery order: a
new draft for the undelivered units of each line, same customer, address, depot,
payment method and instructions, its window the same hours ``after`` later (the
dispatcher may change it before verifying), pointing back through ``follow_up_of``.
A refusal gets none (``reasons.NO_REDELIVERY``): the customer does not want the goods.
A prepaid order that was paid carries its payment over, so the customer is not asked
to pay twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import psycopg

from oms_core import orders
from oms_core.execution.reasons import NO_REDELIVERY, REASONS
from oms_core.model import LineIn, Order, OrderIn
from oms_core.states import PaymentMethod, PaymentState

__all__ = ["create"]

Conn = psycopg.Connection[Any]


def create(
    conn: Conn,
    order: Order,
    delivered: Mapping[int, int],
    reason: str,
    *,
    actor: str,
    after: timedelta,
) -> int | None:
    """The re-delivery order's id, or None when nothing is owed or the reason needs none."""
    owed = tuple(
        LineIn(ln.sku, ln.qty - delivered.get(ln.line_no, 0), ln.unit_price)
        for ln in order.lines
        if ln.qty > delivered.get(ln.line_no, 0)
    )
    if not owed or reason in NO_REDELIVERY:
        return None
    label = REASONS.get(reason, (reason,))[0]
    note = f"Re-delivery of {order.tracking_number} ({label.lower()})."
    new = orders.create_order(
        conn,
        OrderIn(
            customer_id=order.customer_id,
            depot_id=order.depot_id,
            address_text=order.address_text,
            window_start=order.window_start + after,
            window_end=order.window_end + after,
            lines=owed,
            payment_method=PaymentMethod(order.payment_method),
            lat=order.lat,
            lon=order.lon,
            address_id=order.address_id,
            instructions=f"{note} {order.instructions}".strip(),
        ),
        actor=actor,
    )
    conn.execute("UPDATE orders SET follow_up_of = %s WHERE id = %s", (order.id, new.id))
    if order.payment_state == PaymentState.PAID:
        orders.set_payment(conn, new.id, PaymentState.PAID, actor=actor,
                           reason=f"paid with {order.tracking_number}")  # fmt: skip
    return new.id
