"""Records of the order core: what callers pass in (``*In``) and what they get back.

Frozen dataclasses, so a record read from the database cannot drift from it by
mutation; money is ``Decimal`` end to end (the columns are numeric(12,2)).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from oms_core.states import OrderState, PaymentMethod, PaymentState

__all__ = ["Line", "LineIn", "Order", "OrderEvent", "OrderFilter", "OrderIn", "Page"]


@dataclass(frozen=True, slots=True)
class LineIn:
    """One ordered SKU."""

    sku: str
    qty: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class OrderIn:
    """A new order as entered. Without ``lat``/``lon`` the address is taken from
    ``address_id``'s coordinates when given; verification refuses an order with none."""

    customer_id: int
    depot_id: int
    address_text: str
    window_start: datetime
    window_end: datetime
    lines: tuple[LineIn, ...]
    payment_method: PaymentMethod = PaymentMethod.PREPAID
    lat: float | None = None
    lon: float | None = None
    address_id: int | None = None
    instructions: str = ""
    invoice_number: str | None = None


@dataclass(frozen=True, slots=True)
class Line:
    """A stored order line; ``delivered_qty`` is set when the order is delivered."""

    line_no: int
    sku: str
    qty: int
    unit_price: Decimal
    delivered_qty: int | None


@dataclass(frozen=True, slots=True)
class Order:
    """A stored order with its lines."""

    id: int
    customer_id: int
    address_id: int | None
    address_text: str
    lat: float | None
    lon: float | None
    depot_id: int
    window_start: datetime
    window_end: datetime
    instructions: str
    payment_method: PaymentMethod
    payment_state: PaymentState
    invoice_number: str | None
    total_amount: Decimal
    total_weight_kg: Decimal
    total_volume_m3: Decimal
    state: OrderState
    tracking_number: str
    public_token: str
    created_at: datetime
    updated_at: datetime
    lines: tuple[Line, ...]
    follow_up_of: int | None = None  # the order whose failed or short attempt this redoes


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One audit row: ``kind`` is ``state`` or ``payment``; ``from_state`` is None at creation."""

    id: int
    order_id: int
    at: datetime
    actor: str
    kind: str
    from_state: str | None
    to_state: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """Filters for ``list_orders``; None means any."""

    states: tuple[OrderState, ...] | None = None
    customer_id: int | None = None
    depot_id: int | None = None
    window_from: datetime | None = None  # window_start >= this
    window_to: datetime | None = None  # window_start < this
    tracking_number: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of orders, newest first; pass ``next_cursor`` back for the next page
    (None when this is the last)."""

    orders: tuple[Order, ...]
    next_cursor: str | None
