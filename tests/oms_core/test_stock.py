"""Stock reservation under concurrency: two orders racing for the last unit."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from oms_core import orders, stock
from oms_core.errors import InsufficientStock
from oms_core.model import LineIn
from oms_core.states import OrderState
from tests.oms_core import World, order_in, stock_of

pytestmark = pytest.mark.db
S = OrderState
Conn = psycopg.Connection[Any]


def _verified_order(conn: Conn, w: World, *lines: LineIn) -> int:
    oid = orders.create_order(conn, order_in(w, lines=lines)).id
    orders.transition(conn, oid, S.VERIFIED, actor="test")
    return oid


def _race(dsn: str, order_ids: list[int]) -> list[BaseException | None]:
    """Reserve each order from its own thread and connection, released together."""
    outcome: list[BaseException | None] = [None] * len(order_ids)
    start = threading.Barrier(len(order_ids))

    def run(i: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            start.wait()
            try:
                orders.transition(c, order_ids[i], S.RESERVED, actor=f"t{i}")
            except InsufficientStock as exc:
                outcome[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(order_ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    return outcome


def test_two_orders_race_for_the_last_unit_twenty_times(world: World, conn: Conn) -> None:
    for round_no in range(20):
        conn.execute(
            "UPDATE stock SET on_hand = reserved + 1 WHERE depot_id = %s AND sku = 'A'",
            (world.depot_id,),
        )
        ids = [_verified_order(conn, world, LineIn("A", 1, Decimal(1))) for _ in range(2)]
        outcome = _race(world.dsn, ids)
        losers = [i for i, exc in enumerate(outcome) if exc is not None]
        assert len(losers) == 1, round_no
        loser, winner = ids[losers[0]], ids[1 - losers[0]]
        assert "insufficient stock of A" in str(outcome[losers[0]])
        assert orders.get_order(conn, winner).state == S.RESERVED
        assert orders.get_order(conn, loser).state == S.VERIFIED
        assert [e.to_state for e in orders.audit_trail(conn, loser)] == ["draft", "verified"]
        on_hand, reserved = stock_of(conn, world.depot_id)["A"]
        assert on_hand == reserved == round_no + 1


def test_a_waiting_reservation_sees_the_committed_one(world: World, conn: Conn) -> None:
    """Deterministic interleaving: the second reservation blocks on the stock row while the
    first transaction is open, then re-reads it after the commit and fails."""
    conn.execute(
        "UPDATE stock SET on_hand = 1 WHERE depot_id = %s AND sku = 'A'", (world.depot_id,)
    )
    first = _verified_order(conn, world, LineIn("A", 1, Decimal(1)))
    second = _verified_order(conn, world, LineIn("A", 1, Decimal(1)))
    outcome: list[BaseException | None] = [None]
    with psycopg.connect(world.dsn) as holder:
        holder.execute("SELECT 1")  # open a transaction: transition() becomes a savepoint in it
        orders.transition(holder, first, S.RESERVED, actor="holder")  # not committed yet
        pid = holder.info.backend_pid

        def run() -> None:
            with psycopg.connect(world.dsn, autocommit=True) as c:
                try:
                    orders.transition(c, second, S.RESERVED, actor="waiter")
                except InsufficientStock as exc:
                    outcome[0] = exc

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 10
        while not conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND %s = ANY(pg_blocking_pids(pid))",
            (pid,),
        ).fetchone():
            assert time.monotonic() < deadline, "the second reservation never waited"
            time.sleep(0.01)
        holder.commit()
    t.join(10)
    assert isinstance(outcome[0], InsufficientStock)
    assert orders.get_order(conn, second).state == S.VERIFIED
    assert stock_of(conn, world.depot_id)["A"] == (1, 1)


def test_reservation_is_all_or_nothing(world: World, conn: Conn) -> None:
    oid = _verified_order(conn, world, LineIn("A", 4, Decimal(1)), LineIn("B", 6, Decimal(1)))
    with pytest.raises(InsufficientStock) as info:
        orders.transition(conn, oid, S.RESERVED, actor="x")
    assert (info.value.sku, info.value.wanted, info.value.available) == ("B", 6, 5)
    assert info.value.code == "insufficient_stock"
    assert stock_of(conn, world.depot_id) == {"A": (10, 0), "B": (5, 0)}
    assert orders.get_order(conn, oid).state == S.VERIFIED


def test_lines_of_one_sku_are_reserved_together(world: World, conn: Conn) -> None:
    oid = _verified_order(conn, world, LineIn("A", 6, Decimal(1)), LineIn("A", 5, Decimal(1)))
    with pytest.raises(InsufficientStock, match="11 wanted, 10 available"):
        orders.transition(conn, oid, S.RESERVED, actor="x")
    ok = _verified_order(conn, world, LineIn("A", 6, Decimal(1)), LineIn("A", 4, Decimal(1)))
    orders.transition(conn, ok, S.RESERVED, actor="x")
    assert stock_of(conn, world.depot_id)["A"] == (10, 10)


def test_a_sku_the_depot_does_not_stock_is_insufficient(world: World, conn: Conn) -> None:
    conn.execute("INSERT INTO products (sku, unit_weight_kg, unit_volume_m3) VALUES ('C', 1, 1)")
    oid = _verified_order(conn, world, LineIn("C", 1, Decimal(1)))
    with pytest.raises(InsufficientStock, match="1 wanted, 0 available"):
        orders.transition(conn, oid, S.RESERVED, actor="x")


def test_release_and_consume_refuse_more_than_was_reserved(world: World, conn: Conn) -> None:
    with conn.transaction():
        stock.reserve(conn, world.depot_id, [("A", 2)])
    with pytest.raises(Exception, match="holds less than this order reserved"):
        stock.release(conn, world.depot_id, [("A", 3)])
    with pytest.raises(Exception, match="holds less than this order reserved"):
        stock.consume(conn, world.depot_id, [("A", 3, 3)])
    stock.consume(conn, world.depot_id, [("A", 2, 1)])
    assert stock_of(conn, world.depot_id)["A"] == (9, 0)


def test_the_schema_refuses_overbooking(world: World, conn: Conn) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE stock SET reserved = on_hand + 1 WHERE sku = 'A'")
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE stock SET on_hand = -1 WHERE sku = 'B'")
