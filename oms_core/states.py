"""The order and payment state machines as pure transition tables.

Side effects (stock, audit) live in ``orders``; this module only says what is legal, so
the API, the planner and the tests all read one table.
"""

from __future__ import annotations

from enum import StrEnum

from oms_core.errors import IllegalTransition

__all__ = [
    "CANCELLABLE",
    "HOLDS_STOCK",
    "PAYMENT_TRANSITIONS",
    "TRANSITIONS",
    "OrderState",
    "PaymentMethod",
    "PaymentState",
    "check",
    "check_payment",
]


class OrderState(StrEnum):
    """Where an order is in its life; the values are stored in ``orders.state``."""

    DRAFT = "draft"
    VERIFIED = "verified"
    RESERVED = "reserved"
    SCHEDULED = "scheduled"
    DISPATCHED = "dispatched"
    OUT_FOR_DELIVERY = "out_for_delivery"
    ARRIVED = "arrived"
    DELIVERED = "delivered"
    PARTIALLY_DELIVERED = "partially_delivered"
    FAILED = "failed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class PaymentMethod(StrEnum):
    """How the customer pays."""

    PREPAID = "prepaid"
    COD = "cod"


class PaymentState(StrEnum):
    """Where the money is; stored in ``orders.payment_state``."""

    UNPAID = "unpaid"
    AUTHORISED = "authorised"
    PAID = "paid"
    COD_PENDING = "cod_pending"
    COD_COLLECTED = "cod_collected"
    REFUNDED = "refunded"


S = OrderState
# Cancellation is allowed until the goods leave the depot; after that the order ends in
# delivered, partially delivered or failed, and every outcome is closed as completed.
# Scheduled → reserved un-plans an order (a day re-planned before dispatch); the stock
# stays reserved, since both states hold it.
CANCELLABLE = frozenset({S.DRAFT, S.VERIFIED, S.RESERVED, S.SCHEDULED})
TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    S.DRAFT: frozenset({S.VERIFIED, S.CANCELLED}),
    S.VERIFIED: frozenset({S.RESERVED, S.CANCELLED}),
    S.RESERVED: frozenset({S.SCHEDULED, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.RESERVED, S.DISPATCHED, S.CANCELLED}),
    S.DISPATCHED: frozenset({S.OUT_FOR_DELIVERY}),
    S.OUT_FOR_DELIVERY: frozenset({S.ARRIVED}),
    S.ARRIVED: frozenset({S.DELIVERED, S.PARTIALLY_DELIVERED, S.FAILED}),
    S.DELIVERED: frozenset({S.COMPLETED}),
    S.PARTIALLY_DELIVERED: frozenset({S.COMPLETED}),
    S.FAILED: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}
# States in which the order's units are reserved at its depot.
HOLDS_STOCK = frozenset({S.RESERVED, S.SCHEDULED, S.DISPATCHED, S.OUT_FOR_DELIVERY, S.ARRIVED})

P = PaymentState
PAYMENT_TRANSITIONS: dict[PaymentState, frozenset[PaymentState]] = {
    P.UNPAID: frozenset({P.AUTHORISED, P.PAID}),
    P.AUTHORISED: frozenset({P.PAID, P.UNPAID}),  # an authorisation can lapse
    P.PAID: frozenset({P.REFUNDED}),
    P.COD_PENDING: frozenset({P.COD_COLLECTED}),
    P.COD_COLLECTED: frozenset({P.REFUNDED}),
    P.REFUNDED: frozenset(),
}


def check(from_state: str, to_state: str) -> None:
    """Raise ``IllegalTransition`` naming the legal next states unless from → to is allowed."""
    legal = TRANSITIONS[OrderState(from_state)] if from_state in _ORDER else set()
    if to_state not in legal:
        raise IllegalTransition(from_state, to_state, sorted(legal), "order")


def check_payment(from_state: str, to_state: str) -> None:
    """Like ``check`` for the payment state."""
    legal = PAYMENT_TRANSITIONS[PaymentState(from_state)] if from_state in _PAYMENT else set()
    if to_state not in legal:
        raise IllegalTransition(from_state, to_state, sorted(legal), "payment")


_ORDER = frozenset(s.value for s in OrderState)
_PAYMENT = frozenset(s.value for s in PaymentState)
