"""Stock reservation, release and consumption at a depot, inside the caller's transaction.

Each line is one conditional ``UPDATE`` (``on_hand - reserved >= q``): the row lock makes
two racing orders serialise on the stock row, and the loser's re-evaluated condition
fails, so it gets ``InsufficientStock`` instead of overselling. SKUs are taken in sorted
order so two multi-line orders can never lock rows in opposite orders (no deadlock).
The caller's transaction makes the whole order all-or-nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import psycopg

from oms_core.errors import InsufficientStock, OmsError

__all__ = ["consume", "release", "reserve"]

Conn = psycopg.Connection[Any]


def _by_sku(lines: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    total: Counter[str] = Counter()
    for sku, qty in lines:
        total[sku] += qty
    return sorted(total.items())


def reserve(conn: Conn, depot_id: int, lines: Iterable[tuple[str, int]]) -> None:
    """Reserve ``(sku, qty)`` lines at the depot or raise ``InsufficientStock``."""
    for sku, qty in _by_sku(lines):
        cur = conn.execute(
            "UPDATE stock SET reserved = reserved + %s"
            " WHERE depot_id = %s AND sku = %s AND on_hand - reserved >= %s",
            (qty, depot_id, sku, qty),
        )
        if cur.rowcount != 1:
            row = conn.execute(
                "SELECT on_hand - reserved FROM stock WHERE depot_id = %s AND sku = %s",
                (depot_id, sku),
            ).fetchone()
            raise InsufficientStock(sku, depot_id, qty, int(row[0]) if row else 0)


def release(conn: Conn, depot_id: int, lines: Iterable[tuple[str, int]]) -> None:
    """Give reserved units back to the free pool (cancel, failed delivery)."""
    for sku, qty in _by_sku(lines):
        _update_reserved(
            conn,
            "UPDATE stock SET reserved = reserved - %s"
            " WHERE depot_id = %s AND sku = %s AND reserved >= %s",
            (qty, depot_id, sku, qty),
            sku,
            depot_id,
        )


def consume(conn: Conn, depot_id: int, lines: Iterable[tuple[str, int, int]]) -> None:
    """Settle ``(sku, reserved_qty, delivered_qty)`` lines: the delivered units leave
    ``on_hand``, the whole reservation is dropped (undelivered units come back free)."""
    totals: dict[str, list[int]] = {}
    for sku, reserved, delivered in lines:
        t = totals.setdefault(sku, [0, 0])
        t[0] += reserved
        t[1] += delivered
    for sku, (reserved, delivered) in sorted(totals.items()):
        _update_reserved(
            conn,
            "UPDATE stock SET reserved = reserved - %s, on_hand = on_hand - %s"
            " WHERE depot_id = %s AND sku = %s AND reserved >= %s",
            (reserved, delivered, depot_id, sku, reserved),
            sku,
            depot_id,
        )


def _update_reserved(
    conn: Conn, query: str, params: tuple[Any, ...], sku: str, depot_id: int
) -> None:
    if conn.execute(query, params).rowcount != 1:
        # Only reachable if stock rows were edited behind the order core's back.
        raise OmsError(f"stock of {sku} at depot {depot_id} holds less than this order reserved")
