"""The pure transition tables (the database side is in test_orders)."""

from __future__ import annotations

import itertools

import pytest

from oms_core.errors import IllegalTransition
from oms_core.states import (
    CANCELLABLE,
    HOLDS_STOCK,
    PAYMENT_TRANSITIONS,
    TRANSITIONS,
    OrderState,
    PaymentState,
    check,
    check_payment,
)

S = OrderState
HAPPY_PATH = [
    S.DRAFT,
    S.VERIFIED,
    S.RESERVED,
    S.SCHEDULED,
    S.DISPATCHED,
    S.OUT_FOR_DELIVERY,
    S.ARRIVED,
    S.DELIVERED,
    S.COMPLETED,
]


def test_the_happy_path_is_legal() -> None:
    for a, b in itertools.pairwise(HAPPY_PATH):
        check(a, b)


def test_every_state_has_a_row_and_completed_is_reachable_from_every_outcome() -> None:
    assert set(TRANSITIONS) == set(OrderState)
    for outcome in (S.DELIVERED, S.PARTIALLY_DELIVERED, S.FAILED):
        assert TRANSITIONS[outcome] == {S.COMPLETED}
    assert TRANSITIONS[S.ARRIVED] == {S.DELIVERED, S.PARTIALLY_DELIVERED, S.FAILED}


def test_the_only_step_back_is_un_planning_and_it_keeps_the_stock() -> None:
    order = list(OrderState)
    backward = {(a, b) for a in order for b in TRANSITIONS[a] if order.index(b) < order.index(a)}
    assert backward == {(S.SCHEDULED, S.RESERVED)}
    assert {S.SCHEDULED, S.RESERVED} <= HOLDS_STOCK


def test_cancel_is_legal_exactly_before_dispatch() -> None:
    assert {s for s in OrderState if S.CANCELLED in TRANSITIONS[s]} == CANCELLABLE
    assert {S.DRAFT, S.VERIFIED, S.RESERVED, S.SCHEDULED} == CANCELLABLE


@pytest.mark.parametrize("frm", list(OrderState))
@pytest.mark.parametrize("to", list(OrderState))
def test_check_matches_the_table(frm: OrderState, to: OrderState) -> None:
    if to in TRANSITIONS[frm]:
        check(frm, to)
        return
    with pytest.raises(IllegalTransition) as info:
        check(frm, to)
    assert info.value.legal == tuple(sorted(TRANSITIONS[frm]))
    msg = str(info.value)
    assert f"from {frm} to {to}" in msg
    for nxt in TRANSITIONS[frm]:
        assert nxt in msg


def test_final_states_say_so() -> None:
    with pytest.raises(IllegalTransition, match="legal next: none, completed is final"):
        check("completed", "draft")


def test_unknown_states_are_illegal() -> None:
    with pytest.raises(IllegalTransition, match="from draft to shipped"):
        check("draft", "shipped")
    with pytest.raises(IllegalTransition, match="from lost to draft"):
        check("lost", "draft")


def test_payment_table() -> None:
    assert set(PAYMENT_TRANSITIONS) == set(PaymentState)
    check_payment("unpaid", "authorised")
    check_payment("authorised", "paid")
    check_payment("cod_pending", "cod_collected")
    check_payment("paid", "refunded")
    with pytest.raises(IllegalTransition, match="payment cannot go from refunded to paid"):
        check_payment("refunded", "paid")
    with pytest.raises(IllegalTransition, match="legal next: cod_collected"):
        check_payment("cod_pending", "paid")
