"""What a customer message tells, read when it is sent: the order, its customer and
their language, the lines with what was delivered, the ePOD, and the re-delivery order.

Read at send time rather than queued: the ePOD and the follow-up order are written after
the outcome's transition in the same transaction, so they exist by the time the row can
be claimed, and a customer who changed their language gets the one they asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

__all__ = ["Facts", "FollowUp", "Line", "Proof", "load"]


@dataclass(frozen=True, slots=True)
class Line:
    """One order line; ``delivered`` is None until there is an outcome."""

    name: str
    qty: int
    delivered: int | None
    damaged: int = 0


@dataclass(frozen=True, slots=True)
class Proof:
    """The ePOD as far as the customer is concerned."""

    outcome: str
    reason_code: str | None
    recipient: str
    at: datetime
    notes: str


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The re-delivery order opened for what was not delivered."""

    tracking_number: str
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True, slots=True)
class Facts:
    """An order as its customer's messages describe it."""

    order_id: int
    tracking_number: str
    public_token: str
    state: str
    address: str
    window_start: datetime
    window_end: datetime
    payment_state: str
    customer: str
    language: str  # 'id' | 'en'
    time_zone: str  # the depot's
    lines: tuple[Line, ...] = ()
    proof: Proof | None = None
    reason_code: str | None = None  # the outcome's reason: the ePOD's, else the audit's
    follow_up: FollowUp | None = None


_ORDER = """
SELECT o.id AS order_id, o.tracking_number, o.public_token, o.state, o.address_text AS address,
       o.window_start, o.window_end, o.payment_state, c.name AS customer, c.language,
       d.time_zone
FROM orders o JOIN customers c ON c.id = o.customer_id JOIN depots d ON d.id = o.depot_id
WHERE o.id = %s
"""
_LINES = """
SELECT coalesce(nullif(p.name, ''), ol.sku) AS name, ol.qty, ol.delivered_qty AS delivered,
       coalesce(el.damaged_qty, 0) AS damaged
FROM order_lines ol LEFT JOIN products p ON p.sku = ol.sku
LEFT JOIN epods e ON e.order_id = ol.order_id
LEFT JOIN epod_lines el ON el.epod_id = e.id AND el.line_no = ol.line_no
WHERE ol.order_id = %s ORDER BY ol.line_no
"""
_PROOF = """
SELECT outcome, reason_code, recipient_name AS recipient, at, notes FROM epods
WHERE order_id = %s
"""
_AUDIT_REASON = """
SELECT nullif(reason, '') FROM order_events
WHERE order_id = %s AND kind = 'state' AND to_state IN ('partially_delivered', 'failed')
ORDER BY id DESC LIMIT 1
"""
_FOLLOW_UP = """
SELECT tracking_number, window_start, window_end FROM orders
WHERE follow_up_of = %s AND state <> 'cancelled' ORDER BY id LIMIT 1
"""


async def load(conn: psycopg.AsyncConnection[Any], order_id: int) -> Facts | None:
    """The facts of ``order_id``, or None when the order no longer exists."""
    async with conn.cursor(row_factory=dict_row) as cur:
        order = await (await cur.execute(_ORDER, (order_id,))).fetchone()
        if order is None:
            return None
        lines = await (await cur.execute(_LINES, (order_id,))).fetchall()
        proof = await (await cur.execute(_PROOF, (order_id,))).fetchone()
        follow = await (await cur.execute(_FOLLOW_UP, (order_id,))).fetchone()
    reason = None if proof is None else proof["reason_code"]
    if reason is None:
        row = await (await conn.execute(_AUDIT_REASON, (order_id,))).fetchone()
        reason = None if row is None else row[0]
    return Facts(
        **order,
        lines=tuple(Line(**r) for r in lines),
        proof=None if proof is None else Proof(**proof),
        reason_code=reason,
        follow_up=None if follow is None else FollowUp(**follow),
    )
