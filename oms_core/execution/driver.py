"""The driver's day, step by step: loaded, departed, arrived, back at the depot.

Each function does one action's work inside ``actions.perform``'s transaction and
returns its answer. A driver may act only on their own trip: any other id is
``NotFound``, the same as an id that does not exist. Steps the driver skipped are
implied, never refused: arriving at a stop on a trip that has not started starts it
(the van cannot be at a customer without having left the depot), as does delivering.
Back at the depot the trip completes only when every order on it has an outcome; its
orders are then closed and the trip's cash on delivery is settled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

from oms_core import orders, trips
from oms_core.errors import IllegalTransition, InvalidOrder, NotFound, Problem
from oms_core.execution.actions import Action
from oms_core.execution.arrival import record_arrival
from oms_core.states import OrderState
from oms_core.trips import TripRefused

__all__ = [
    "FINAL",
    "LoadedLine",
    "arrived",
    "departed",
    "ensure_started",
    "loaded",
    "own_order",
    "own_stop",
    "own_trip",
    "returned",
]

Conn = psycopg.Connection[Any]
S = OrderState
FINAL = frozenset({S.DELIVERED, S.PARTIALLY_DELIVERED, S.FAILED})  # an outcome recorded


@dataclass(frozen=True, slots=True)
class LoadedLine:
    """What the driver counted onto the van for one order line."""

    order_id: int
    line_no: int
    loaded_qty: int


def own_trip(conn: Conn, trip_id: int, driver_id: int, *, lock: bool = False) -> str:
    """The state of the driver's trip ``trip_id`` (``NotFound`` if not theirs)."""
    row = conn.execute(
        "SELECT state FROM trips WHERE id = %s AND driver_id = %s"
        + (" FOR NO KEY UPDATE" if lock else ""),
        (trip_id, driver_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no trip {trip_id}")
    return str(row[0])


def own_stop(conn: Conn, stop_id: int, driver_id: int) -> int:
    """The trip of the driver's stop ``stop_id`` (``NotFound`` if not theirs)."""
    row = conn.execute(
        "SELECT s.trip_id FROM stops s JOIN trips t ON t.id = s.trip_id"
        " WHERE s.id = %s AND t.driver_id = %s",
        (stop_id, driver_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no stop {stop_id}")
    return int(row[0])


def own_order(conn: Conn, order_id: int, driver_id: int) -> tuple[int, int]:
    """(stop id, trip id) of the driver's order ``order_id`` on its live trip."""
    row = conn.execute(
        "SELECT s.id, s.trip_id FROM stop_orders so JOIN stops s ON s.id = so.stop_id"
        " JOIN trips t ON t.id = s.trip_id WHERE so.order_id = %s AND t.driver_id = %s"
        " AND t.state <> 'cancelled' ORDER BY t.id DESC LIMIT 1",
        (order_id, driver_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no order {order_id}")
    return int(row[0]), int(row[1])


def ensure_started(conn: Conn, trip_id: int, action: Action) -> None:
    """The driver's trip is on the road: a dispatched one starts now (``trips.ensure_started``)."""
    state = own_trip(conn, trip_id, action.driver_id, lock=True)
    trips.ensure_started(conn, trip_id, state, actor=action.actor, at=action.at)


def loaded(conn: Conn, action: Action, trip_id: int, lines: Sequence[LoadedLine]) -> dict[str, Any]:
    """Record the per-line loading check at the depot; answers the short lines."""
    state = own_trip(conn, trip_id, action.driver_id, lock=True)
    if state not in ("dispatched", "in_progress"):
        raise IllegalTransition(state, "loaded", ("dispatched",), f"trip {trip_id}")
    ordered = {
        (int(o), int(n)): int(q)
        for o, n, q in conn.execute(
            "SELECT ol.order_id, ol.line_no, ol.qty FROM order_lines ol"
            " JOIN stop_orders so ON so.order_id = ol.order_id"
            " JOIN stops s ON s.id = so.stop_id JOIN orders o ON o.id = ol.order_id"
            " WHERE s.trip_id = %s AND o.state <> 'cancelled'",
            (trip_id,),
        ).fetchall()
    }
    problems = [
        Problem("bad_line", f"order {ln.order_id} line {ln.line_no} is not on this trip")
        for ln in lines
        if (ln.order_id, ln.line_no) not in ordered
    ] + [
        Problem("bad_quantity", f"order {ln.order_id} line {ln.line_no}: loaded {ln.loaded_qty}"
                f" of {ordered[(ln.order_id, ln.line_no)]}")
        for ln in lines
        if (ln.order_id, ln.line_no) in ordered
        and not 0 <= ln.loaded_qty <= ordered[(ln.order_id, ln.line_no)]
    ]  # fmt: skip
    if problems:
        raise InvalidOrder(problems)
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE order_lines SET loaded_qty = %s WHERE order_id = %s AND line_no = %s",
            [(ln.loaded_qty, ln.order_id, ln.line_no) for ln in lines],
        )
    conn.execute(
        "UPDATE trips SET loaded_at = coalesce(loaded_at, %s) WHERE id = %s", (action.at, trip_id)
    )
    short = [
        {"order_id": ln.order_id, "line_no": ln.line_no, "loaded_qty": ln.loaded_qty,
         "qty": ordered[(ln.order_id, ln.line_no)]}
        for ln in lines
        if ln.loaded_qty < ordered[(ln.order_id, ln.line_no)]
    ]  # fmt: skip
    unchecked = len(ordered) - len({(ln.order_id, ln.line_no) for ln in lines})
    return {"trip_id": trip_id, "short": short, "lines_unchecked": unchecked}


def departed(conn: Conn, action: Action, trip_id: int) -> dict[str, Any]:
    """The van left the depot: the trip starts (unless the geofence already started it)."""
    ensure_started(conn, trip_id, action)
    trips.record_departure(conn, trip_id, action.at)
    return {"trip_id": trip_id, "state": own_trip(conn, trip_id, action.driver_id)}


def arrived(conn: Conn, action: Action, stop_id: int) -> dict[str, Any]:
    """The driver is at the stop: the driver's arrival is kept beside the geofence's."""
    trip_id = own_stop(conn, stop_id, action.driver_id)
    ensure_started(conn, trip_id, action)
    first = record_arrival(conn, stop_id, action.at, "driver", actor=action.actor)
    row = conn.execute(
        "SELECT actual_arrival, arrival_method, geofence_arrival, driver_arrival FROM stops"
        " WHERE id = %s",
        (stop_id,),
    ).fetchone()
    assert row is not None  # own_stop found it in this transaction
    return {
        "stop_id": stop_id,
        "first_arrival": first,
        "actual_arrival": row[0].isoformat(),
        "arrival_method": row[1],
        "geofence_arrival": None if row[2] is None else row[2].isoformat(),
        "driver_arrival": None if row[3] is None else row[3].isoformat(),
    }


def returned(conn: Conn, action: Action, trip_id: int, handed_in: Decimal | None) -> dict[str, Any]:
    """Back at the depot: close the trip and its orders and settle its COD cash.

    Refused (``TripRefused``, nothing changed) while an order on it has no outcome;
    ``handed_in`` is the cash the driver gave in (default: what the ePODs say was
    collected)."""
    state = own_trip(conn, trip_id, action.driver_id, lock=True)
    if state != "in_progress":
        raise IllegalTransition(state, "completed", trips.TRIP_MOVES.get(state, ()),
                                f"trip {trip_id}")  # fmt: skip
    on_board = conn.execute(
        "SELECT o.id, o.tracking_number, o.state FROM stops s"
        " JOIN stop_orders so ON so.stop_id = s.id JOIN orders o ON o.id = so.order_id"
        " WHERE s.trip_id = %s AND o.state NOT IN ('completed', 'cancelled')"
        " ORDER BY s.seq, o.id",
        (trip_id,),
    ).fetchall()
    closing = sorted(int(oid) for oid, _, st in on_board if st in FINAL)
    if len(closing) < len(on_board):
        listed = ", ".join(f"{num} ({st})" for _, num, st in on_board if st not in FINAL)
        raise TripRefused(
            f"trip {trip_id} cannot close: record delivered, partial or failed for {listed}"
        )
    for oid in closing:
        orders.transition(conn, oid, S.COMPLETED, actor=action.actor,
                          reason=f"trip {trip_id} back at the depot")  # fmt: skip
    conn.execute(
        "UPDATE trips SET state = 'completed', actual_return = %s WHERE id = %s",
        (action.at, trip_id),
    )
    return {"trip_id": trip_id, "state": "completed", "orders_closed": len(closing),
            "cod": settle_cod(conn, trip_id, action.driver_id, handed_in)}  # fmt: skip


def settle_cod(
    conn: Conn, trip_id: int, driver_id: int, handed_in: Decimal | None
) -> dict[str, str | int]:
    """The trip's COD settlement: due for the delivered units, collected per the ePODs,
    handed in by the driver; stored once per trip."""
    row = conn.execute(
        "SELECT count(DISTINCT o.id),"
        " coalesce(sum(ol.unit_price * coalesce(ol.delivered_qty, 0)), 0),"
        " coalesce((SELECT sum(e.cod_collected) FROM epods e WHERE e.trip_id = %s), 0)"
        " FROM stops s JOIN stop_orders so ON so.stop_id = s.id"
        " JOIN orders o ON o.id = so.order_id JOIN order_lines ol ON ol.order_id = o.id"
        " WHERE s.trip_id = %s AND o.payment_method = 'cod' AND o.state <> 'cancelled'",
        (trip_id, trip_id),
    ).fetchone()
    assert row is not None  # an aggregate always answers
    count, expected, collected = int(row[0]), Decimal(row[1]), Decimal(row[2])
    given = collected if handed_in is None else handed_in
    conn.execute(
        "INSERT INTO cod_settlements (trip_id, driver_id, orders, expected, collected,"
        " handed_in) VALUES (%s, %s, %s, %s, %s, %s)",
        (trip_id, driver_id, count, expected, collected, given),
    )
    return {
        "orders": count,
        "expected": str(expected.quantize(Decimal("0.01"))),
        "collected": str(collected.quantize(Decimal("0.01"))),
        "handed_in": str(given.quantize(Decimal("0.01"))),
        "difference": str((given - expected).quantize(Decimal("0.01"))),
    }
