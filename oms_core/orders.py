"""Orders: entry, state transitions with their side effects, reads and the audit trail.

Every change is one transaction that locks the order row (``SELECT … FOR NO KEY
UPDATE``: rows that only reference the order, such as its audit rows, are not held up),
checks the state machine, writes the audit row and applies the stock side effect, so a
refused change leaves state, audit and stock exactly as they were. ``transition`` is the
primitive; callers move draft orders to verified through ``verify.verify``, which checks
the order first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from oms_core import stock, tracking
from oms_core.errors import InvalidOrder, NotFound, OmsError, Problem
from oms_core.model import Line, LineIn, Order, OrderEvent, OrderFilter, OrderIn, Page
from oms_core.notify.enqueue import order_moved
from oms_core.states import (
    HOLDS_STOCK,
    OrderState,
    PaymentMethod,
    PaymentState,
    check,
    check_payment,
)

__all__ = [
    "active_skus",
    "audit_trail",
    "create_order",
    "get_order",
    "line_problems",
    "list_orders",
    "set_payment",
    "transition",
]

Conn = psycopg.Connection[Any]
S = OrderState
_CENT = Decimal("0.01")
_TRACKING_ATTEMPTS = 5


def line_problems(lines: Sequence[LineIn | Line], active_skus: set[str]) -> list[Problem]:
    """What is wrong with the lines: unknown or discontinued SKUs, quantities, prices."""
    found: list[Problem] = []
    if not lines:
        found.append(Problem("no_lines", "an order needs at least one line"))
    for i, line in enumerate(lines, 1):
        if line.sku not in active_skus:
            found.append(Problem("unknown_sku", f"line {i}: SKU {line.sku!r} is not sold"))
        if line.qty <= 0:
            found.append(Problem("bad_quantity", f"line {i}: quantity must be positive"))
        if line.unit_price < 0:
            found.append(Problem("bad_price", f"line {i}: unit price must not be negative"))
    return found


def active_skus(conn: Conn, skus: Sequence[str]) -> dict[str, tuple[Decimal, Decimal]]:
    """Active SKUs among ``skus`` with their (unit weight kg, unit volume m³)."""
    rows = conn.execute(
        "SELECT sku, unit_weight_kg, unit_volume_m3 FROM products WHERE sku = ANY(%s) AND active",
        (list(skus),),
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def create_order(conn: Conn, new: OrderIn, *, actor: str = "system") -> Order:
    """Store a draft order with its lines, totals, tracking number and public token,
    or raise ``InvalidOrder`` with every problem found and store nothing."""
    with conn.transaction():
        products = active_skus(conn, [ln.sku for ln in new.lines])
        problems = line_problems(new.lines, set(products))
        lat, lon = new.lat, new.lon
        if new.address_id is not None and lat is None and lon is None:
            row = conn.execute(
                "SELECT lat, lon FROM addresses WHERE id = %s AND customer_id = %s",
                (new.address_id, new.customer_id),
            ).fetchone()
            if row is None:
                problems.append(Problem("unknown_address", "address is not the customer's"))
            else:
                lat, lon = row
        if (lat is None) != (lon is None):
            problems.append(Problem("bad_coordinates", "give both lat and lon, or neither"))
        if not new.address_text.strip():
            problems.append(Problem("no_address", "the delivery address text is empty"))
        if new.window_end <= new.window_start:
            problems.append(Problem("bad_window", "the window must end after it starts"))
        if not conn.execute("SELECT 1 FROM customers WHERE id = %s", (new.customer_id,)).fetchone():
            problems.append(Problem("unknown_customer", f"no customer {new.customer_id}"))
        if not conn.execute("SELECT 1 FROM depots WHERE id = %s", (new.depot_id,)).fetchone():
            problems.append(Problem("unknown_depot", f"no depot {new.depot_id}"))
        if problems:
            raise InvalidOrder(problems)
        amount = sum((ln.unit_price * ln.qty for ln in new.lines), Decimal(0)).quantize(_CENT)
        weight = sum((products[ln.sku][0] * ln.qty for ln in new.lines), Decimal(0))
        volume = sum((products[ln.sku][1] * ln.qty for ln in new.lines), Decimal(0))
        pay = PaymentState.COD_PENDING if new.payment_method == "cod" else PaymentState.UNPAID
        order_id = _insert_order(conn, new, lat, lon, pay, (amount, weight, volume))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO order_lines (order_id, line_no, sku, qty, unit_price)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(order_id, i, ln.sku, ln.qty, ln.unit_price) for i, ln in enumerate(new.lines, 1)],
            )
        _audit(conn, order_id, actor, "state", None, S.DRAFT, "created")
        return _load(conn, order_id)


def _insert_order(
    conn: Conn,
    new: OrderIn,
    lat: float | None,
    lon: float | None,
    pay: PaymentState,
    totals: tuple[Decimal, Decimal, Decimal],
) -> int:
    """Insert the order row; a tracking number collision (1 in 32⁸ per pair) draws again."""
    for _ in range(_TRACKING_ATTEMPTS):
        try:
            with conn.transaction():
                row = conn.execute(
                    "INSERT INTO orders (customer_id, address_id, address_text, lat, lon,"
                    " depot_id, window_start, window_end, instructions, payment_method,"
                    " payment_state, invoice_number, total_amount, total_weight_kg,"
                    " total_volume_m3, tracking_number, public_token)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " RETURNING id",
                    (
                        new.customer_id,
                        new.address_id,
                        new.address_text.strip(),
                        lat,
                        lon,
                        new.depot_id,
                        new.window_start,
                        new.window_end,
                        new.instructions,
                        new.payment_method,
                        pay,
                        new.invoice_number,
                        *totals,
                        tracking.new_tracking_number(),
                        tracking.new_token(),
                    ),
                ).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            diag = exc.diag.constraint_name or ""
            if "invoice_number" in diag:
                raise InvalidOrder(
                    [Problem("duplicate_invoice", f"invoice {new.invoice_number} is taken")]
                ) from exc
            continue
        assert row is not None  # INSERT … RETURNING always returns the row
        return int(row[0])
    raise OmsError(f"no free tracking number in {_TRACKING_ATTEMPTS} draws")


def transition(
    conn: Conn,
    order_id: int,
    to: OrderState | str,
    *,
    actor: str,
    reason: str = "",
    delivered: Mapping[int, int] | None = None,
) -> Order:
    """Move an order to ``to`` with its side effects, or raise and change nothing.

    → reserved reserves stock, except from scheduled (un-planning), which already holds it;
    → cancelled (from a state holding stock) and → failed release it;
    → delivered / partially_delivered consume the delivered units, given as
    ``delivered`` {line_no: qty} (delivered defaults to every line in full).
    """
    with conn.transaction():
        order = _load(conn, order_id, lock=True)
        check(order.state, str(to))
        target = OrderState(to)
        lines = [(ln.sku, ln.qty) for ln in order.lines]
        if target == S.RESERVED and order.state not in HOLDS_STOCK:
            stock.reserve(conn, order.depot_id, lines)
        elif target in (S.CANCELLED, S.FAILED) and order.state in HOLDS_STOCK:
            stock.release(conn, order.depot_id, lines)
        elif target in (S.DELIVERED, S.PARTIALLY_DELIVERED):
            qty = _delivered(order, target, delivered)
            stock.consume(
                conn, order.depot_id, [(ln.sku, ln.qty, qty[ln.line_no]) for ln in order.lines]
            )
            _set_delivered(conn, order_id, qty)
        if target == S.FAILED:
            _set_delivered(conn, order_id, {ln.line_no: 0 for ln in order.lines})
        conn.execute(
            "UPDATE orders SET state = %s, updated_at = now() WHERE id = %s", (target, order_id)
        )
        _audit(conn, order_id, actor, "state", order.state, target, reason)
        order_moved(conn, order_id, target)  # the customer's notification, same transaction
        return _load(conn, order_id)


def _delivered(order: Order, target: OrderState, given: Mapping[int, int] | None) -> dict[int, int]:
    """Delivered units per line, checked against the order."""
    ordered = {ln.line_no: ln.qty for ln in order.lines}
    if given is None and target == S.DELIVERED:
        return ordered
    given = dict(given or {})
    problems = [
        Problem("bad_delivered_qty", f"order {order.id} has no line {n}")
        for n in given
        if n not in ordered
    ]
    qty = {n: given.get(n, 0) for n in ordered}
    problems += [
        Problem("bad_delivered_qty", f"line {n}: delivered {q} of {ordered[n]}")
        for n, q in qty.items()
        if not 0 <= q <= ordered[n]
    ]
    full = qty == ordered
    if target == S.DELIVERED and not full:
        problems.append(
            Problem("bad_delivered_qty", "not every unit delivered: use partially_delivered")
        )
    if target == S.PARTIALLY_DELIVERED and (full or not any(qty.values())):
        problems.append(
            Problem(
                "bad_delivered_qty",
                "partial delivery needs some but not all units: use delivered or failed",
            )
        )
    if problems:
        raise InvalidOrder(problems)
    return qty


def _set_delivered(conn: Conn, order_id: int, qty: Mapping[int, int]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE order_lines SET delivered_qty = %s WHERE order_id = %s AND line_no = %s",
            [(q, order_id, n) for n, q in qty.items()],
        )


def set_payment(
    conn: Conn, order_id: int, to: PaymentState | str, *, actor: str, reason: str = ""
) -> Order:
    """Move the payment state (audited like order states), or raise and change nothing."""
    with conn.transaction():
        order = _load(conn, order_id, lock=True)
        check_payment(order.payment_state, str(to))
        conn.execute(
            "UPDATE orders SET payment_state = %s, updated_at = now() WHERE id = %s",
            (str(to), order_id),
        )
        _audit(conn, order_id, actor, "payment", order.payment_state, str(to), reason)
        return _load(conn, order_id)


def _audit(
    conn: Conn, order_id: int, actor: str, kind: str, frm: str | None, to: str, reason: str
) -> None:
    conn.execute(
        "INSERT INTO order_events (order_id, actor, kind, from_state, to_state, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (order_id, actor, kind, frm, to, reason),
    )


def get_order(conn: Conn, order_id: int, *, for_update: bool = False) -> Order:
    """The order with its lines, or ``NotFound``; ``for_update`` locks its row until the
    caller's transaction ends."""
    return _load(conn, order_id, lock=for_update)


def _load(conn: Conn, order_id: int, *, lock: bool = False) -> Order:
    query = "SELECT * FROM orders WHERE id = %s" + (" FOR NO KEY UPDATE" if lock else "")
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, (order_id,)).fetchone()
    if row is None:
        raise NotFound(f"no order {order_id}")
    return _orders(conn, [row])[0]


def _orders(conn: Conn, rows: Sequence[dict[str, Any]]) -> list[Order]:
    """Build orders from ``orders`` rows, fetching all their lines in one query."""
    lines: dict[int, list[Line]] = {r["id"]: [] for r in rows}
    for oid, n, sku, qty, price, dq in conn.execute(
        "SELECT order_id, line_no, sku, qty, unit_price, delivered_qty FROM order_lines"
        " WHERE order_id = ANY(%s) ORDER BY order_id, line_no",
        (list(lines),),
    ):
        lines[oid].append(Line(n, sku, qty, price, dq))
    return [
        Order(
            **{k: v for k, v in r.items() if k not in ("state", "payment_method", "payment_state")},
            state=OrderState(r["state"]),
            payment_method=PaymentMethod(r["payment_method"]),
            payment_state=PaymentState(r["payment_state"]),
            lines=tuple(lines[r["id"]]),
        )
        for r in rows
    ]


def list_orders(
    conn: Conn, filters: OrderFilter | None = None, *, limit: int = 50, cursor: str | None = None
) -> Page:
    """Orders matching ``filters``, newest first, ``limit`` (1–500) at a time."""
    if not 1 <= limit <= 500:
        raise InvalidOrder([Problem("bad_limit", "limit must be between 1 and 500")])
    f = filters or OrderFilter()
    where: list[str] = []
    params: list[Any] = []
    if cursor is not None:
        if not cursor.isdigit():
            raise InvalidOrder([Problem("bad_cursor", "cursor is not one this API returned")])
        where.append("id < %s")
        params.append(int(cursor))
    for clause, value in (
        ("state = ANY(%s)", [str(s) for s in f.states] if f.states is not None else None),
        ("customer_id = %s", f.customer_id),
        ("depot_id = %s", f.depot_id),
        ("window_start >= %s", f.window_from),
        ("window_start < %s", f.window_to),
        ("tracking_number = %s", f.tracking_number),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = "SELECT * FROM orders" + (" WHERE " + " AND ".join(where) if where else "")
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql + " ORDER BY id DESC LIMIT %s", (*params, limit + 1)).fetchall()
    more = len(rows) > limit
    orders = _orders(conn, rows[:limit])
    return Page(tuple(orders), str(orders[-1].id) if more else None)


def audit_trail(conn: Conn, order_id: int) -> list[OrderEvent]:
    """The order's audit rows, oldest first; ``NotFound`` for an unknown order."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT id, order_id, at, actor, kind, from_state, to_state, reason"
            " FROM order_events WHERE order_id = %s ORDER BY id",
            (order_id,),
        ).fetchall()
    if not rows and not conn.execute("SELECT 1 FROM orders WHERE id = %s", (order_id,)).fetchone():
        raise NotFound(f"no order {order_id}")
    return [OrderEvent(**r) for r in rows]
