"""Errors of the order management core: one root, each with a stable ``code``.

The API maps ``code`` to an HTTP status in one place; the message is for a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "IllegalTransition",
    "InsufficientStock",
    "InvalidOrder",
    "NotFound",
    "OmsError",
    "Problem",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason an order cannot proceed: a stable code and a message to act on."""

    code: str
    message: str


class OmsError(Exception):
    """Root of order management errors."""

    code = "oms_error"


class NotFound(OmsError):
    """The order (or other record) does not exist."""

    code = "not_found"


class IllegalTransition(OmsError):
    """A state change the state machine does not allow; nothing was changed."""

    code = "illegal_transition"

    def __init__(self, from_state: str, to_state: str, legal: Sequence[str], kind: str) -> None:
        self.from_state, self.to_state, self.legal = from_state, to_state, tuple(legal)
        nxt = ", ".join(self.legal) if self.legal else f"none, {from_state} is final"
        super().__init__(f"{kind} cannot go from {from_state} to {to_state}; legal next: {nxt}")


class InsufficientStock(OmsError):
    """A depot has fewer free units of a SKU than an order needs; nothing was reserved."""

    code = "insufficient_stock"

    def __init__(self, sku: str, depot_id: int, wanted: int, available: int) -> None:
        self.sku, self.depot_id, self.wanted, self.available = sku, depot_id, wanted, available
        super().__init__(
            f"insufficient stock of {sku} at depot {depot_id}: {wanted} wanted,"
            f" {available} available"
        )


class InvalidOrder(OmsError):
    """An order (or a change to it) refused before anything was written."""

    code = "invalid_order"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.code}: {p.message}" for p in self.problems))
