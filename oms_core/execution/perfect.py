"""Perfect delivery, per order: on time, in full, damage free, documents accurate.

``assess`` is pure: it gets what was ordered and invoiced, the window, the arrival and
what the ePOD says, and judges each criterion on its own with a reason code when it
fails. The rate over many orders is the share of orders with all four true, never a
product of per-criterion averages (those hide orders failing two criteria at once).

The criteria, as the README defines them:
- on time: the stop's actual arrival (the earlier of geofence and the driver's tap) is
  inside the order's window. A van there before the window opens that hands the goods
  over once it is open is on time too: it waited, as the plan has it wait, and the
  customer got the goods inside their window. ``late`` (arrived after the window),
  ``early`` (handed over before it opened), ``no_arrival``.
- in full: every line's delivered quantity equals the ordered one. ``not_delivered``
  (failed) / ``short_delivered``.
- damage free: no line has damaged units. ``damaged``.
- documents accurate: the order has an invoice, the ePOD accounts for every invoiced
  line, the delivered lines at their invoiced prices make the invoice total, and cash
  collected on a COD order equals what the delivered units cost. ``no_invoice`` /
  ``lines_unaccounted`` / ``quantity_differs_from_invoice`` / ``cod_amount_mismatch``
  (the first that applies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

__all__ = ["Assessment", "Invoiced", "assess", "due_for"]


@dataclass(frozen=True, slots=True)
class Invoiced:
    """One ordered (and invoiced) line."""

    line_no: int
    qty: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class Assessment:
    """Each criterion and, when it failed, why (None when it held)."""

    on_time: bool
    on_time_reason: str | None
    in_full: bool
    in_full_reason: str | None
    damage_free: bool
    damage_reason: str | None
    documents_accurate: bool
    documents_reason: str | None

    @property
    def perfect(self) -> bool:
        return self.on_time and self.in_full and self.damage_free and self.documents_accurate


def due_for(lines: Sequence[Invoiced], delivered: Mapping[int, int]) -> Decimal:
    """What the delivered units cost at their invoiced prices (the COD amount due)."""
    return sum((ln.unit_price * delivered.get(ln.line_no, 0) for ln in lines), Decimal(0))


def assess(
    *,
    lines: Sequence[Invoiced],
    invoice_number: str | None,
    invoice_total: Decimal,
    window: tuple[datetime, datetime],
    arrival: datetime | None,
    handover: datetime,
    delivered: Mapping[int, int],
    damaged: Mapping[int, int],
    cod_collected: Decimal | None,
    cash_on_delivery: bool,
) -> Assessment:
    """Judge one delivery attempt; ``delivered``/``damaged`` are {line_no: units} and
    ``handover`` is when the attempt was made (the ePOD's time)."""
    start, end = window
    on_time_reason = None
    if arrival is None:
        on_time_reason = "no_arrival"
    elif arrival > end:
        on_time_reason = "late"
    elif arrival < start and handover < start:
        on_time_reason = "early"
    units = sum(delivered.get(ln.line_no, 0) for ln in lines)
    in_full_reason = (
        "not_delivered"
        if units == 0
        else None
        if all(delivered.get(ln.line_no) == ln.qty for ln in lines)
        else "short_delivered"
    )
    damage_reason = "damaged" if any(v > 0 for v in damaged.values()) else None
    documents_reason = _documents(
        lines, invoice_number, invoice_total, delivered, cod_collected, cash_on_delivery
    )
    return Assessment(
        on_time=on_time_reason is None,
        on_time_reason=on_time_reason,
        in_full=in_full_reason is None,
        in_full_reason=in_full_reason,
        damage_free=damage_reason is None,
        damage_reason=damage_reason,
        documents_accurate=documents_reason is None,
        documents_reason=documents_reason,
    )


def _documents(
    lines: Sequence[Invoiced],
    invoice_number: str | None,
    invoice_total: Decimal,
    delivered: Mapping[int, int],
    cod_collected: Decimal | None,
    cash_on_delivery: bool,
) -> str | None:
    if not invoice_number:
        return "no_invoice"
    if any(ln.line_no not in delivered for ln in lines):
        return "lines_unaccounted"
    if due_for(lines, delivered) != invoice_total:
        return "quantity_differs_from_invoice"
    if cash_on_delivery and cod_collected != invoice_total:
        return "cod_amount_mismatch"
    return None
