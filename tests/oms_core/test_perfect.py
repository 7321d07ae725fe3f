"""Perfect delivery judged per order and per criterion, with each failure's reason.

One order throughout: 3 A at 10.00 and 2 B at 2.50 (35.00, invoice INV-1), window
09:00–12:00; each case changes one thing from a perfect delivery at 10:00.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from oms_core.execution.perfect import Assessment, Invoiced, assess, due_for

LINES = (Invoiced(1, 3, Decimal("10.00")), Invoiced(2, 2, Decimal("2.50")))
START, END = datetime(2026, 6, 2, 9, tzinfo=UTC), datetime(2026, 6, 2, 12, tzinfo=UTC)
PERFECT: dict[str, Any] = {
    "lines": LINES,
    "invoice_number": "INV-1",
    "invoice_total": Decimal("35.00"),
    "window": (START, END),
    "arrival": datetime(2026, 6, 2, 10, tzinfo=UTC),
    "handover": datetime(2026, 6, 2, 10, 5, tzinfo=UTC),
    "delivered": {1: 3, 2: 2},
    "damaged": {},
    "cod_collected": None,
    "cash_on_delivery": False,
}


def judged(**change: Any) -> Assessment:
    return assess(**{**PERFECT, **change})


def failures(a: Assessment) -> dict[str, str | None]:
    return {
        k: getattr(a, f"{k}_reason")
        for k in ("on_time", "in_full", "damage", "documents")
        if getattr(a, f"{k}_reason") is not None
    }


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({}, {}),
        ({"arrival": START}, {}),  # the window's edges are inside it
        ({"arrival": END}, {}),
        ({"arrival": datetime(2026, 6, 2, 12, 1, tzinfo=UTC)}, {"on_time": "late"}),
        ({"arrival": datetime(2026, 6, 2, 8, 59, tzinfo=UTC),
          "handover": datetime(2026, 6, 2, 8, 59, 50, tzinfo=UTC)}, {"on_time": "early"}),
        # there early, waited for the window, handed over inside it: on time
        ({"arrival": datetime(2026, 6, 2, 8, 40, tzinfo=UTC), "handover": START}, {}),
        ({"arrival": None}, {"on_time": "no_arrival"}),
        ({"delivered": {1: 3, 2: 1}},
         {"in_full": "short_delivered", "documents": "quantity_differs_from_invoice"}),
        ({"delivered": {1: 0, 2: 0}},
         {"in_full": "not_delivered", "documents": "quantity_differs_from_invoice"}),
        ({"damaged": {2: 1}}, {"damage": "damaged"}),
        ({"damaged": {1: 0}}, {}),
        ({"invoice_number": None}, {"documents": "no_invoice"}),
        ({"delivered": {1: 3}},
         {"in_full": "short_delivered", "documents": "lines_unaccounted"}),
        ({"invoice_total": Decimal("36.00")}, {"documents": "quantity_differs_from_invoice"}),
        ({"cash_on_delivery": True, "cod_collected": Decimal("35.00")}, {}),
        ({"cash_on_delivery": True, "cod_collected": Decimal("30.00")},
         {"documents": "cod_amount_mismatch"}),
        ({"cash_on_delivery": True, "cod_collected": None},
         {"documents": "cod_amount_mismatch"}),
        ({"arrival": END.replace(hour=13), "damaged": {1: 1}, "delivered": {1: 2, 2: 2}},
         {"on_time": "late", "in_full": "short_delivered", "damage": "damaged",
          "documents": "quantity_differs_from_invoice"}),
    ],
)  # fmt: skip
def test_each_criterion_is_judged_on_its_own(
    change: dict[str, Any], failed: dict[str, str]
) -> None:
    a = judged(**change)
    assert failures(a) == failed
    assert a.perfect is (not failed)
    for name in ("on_time", "in_full", "documents_accurate"):
        reason = name.removesuffix("_accurate")
        assert getattr(a, name) is (reason not in failed)
    assert a.damage_free is ("damage" not in failed)


def test_the_rate_is_a_share_of_orders_never_a_product_of_averages() -> None:
    """Two orders each failing one different criterion: on time and damage free each
    average 50 %, and their product says 25 % perfect; the real rate is 0 of 2."""
    late = judged(arrival=END.replace(hour=13))
    damaged = judged(damaged={1: 1})
    assert [late.perfect, damaged.perfect] == [False, False]
    assert (late.on_time, damaged.on_time) == (False, True)
    assert (late.damage_free, damaged.damage_free) == (True, False)


def test_the_cod_due_is_what_the_delivered_units_cost() -> None:
    assert due_for(LINES, {1: 3, 2: 2}) == Decimal("35.00")
    assert due_for(LINES, {1: 1}) == Decimal("10.00")
    assert due_for(LINES, {}) == 0
