"""Arrival at a stop, however it was seen: the tower's geofence or the driver's tap.

Both are kept and neither overwrites the other: ``geofence_arrival`` and
``driver_arrival`` each hold the first time their method saw the arrival, and
``actual_arrival`` is the earlier of the two, with ``arrival_method`` saying which came
first. The stop's orders still out for delivery move to ``arrived`` once, on the first
arrival by any method (audited under that method's actor).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

import psycopg

from oms_core import orders
from oms_core.errors import NotFound, OmsError
from oms_core.states import OrderState

__all__ = ["Method", "record_arrival"]

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
Method = Literal["geofence", "driver", "dispatcher"]
_COLUMN = {"geofence": "geofence_arrival", "driver": "driver_arrival"}


def record_arrival(
    conn: Conn,
    stop_id: int,
    at: datetime,
    method: Method,
    *,
    actor: str,
    out_of_sequence: bool | None = None,
) -> bool:
    """Record that ``method`` saw the vehicle arrive at ``stop_id`` at ``at``; returns
    whether this was the stop's first arrival (its orders then moved to ``arrived``).

    A method's second report (a replay, a second tap) changes nothing. ``out_of_sequence``
    is the tower's verdict and is stored when given.
    """
    with conn.transaction():
        row = conn.execute(
            "SELECT actual_arrival, geofence_arrival, driver_arrival FROM stops"
            " WHERE id = %s FOR NO KEY UPDATE",
            (stop_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no stop {stop_id}")
        actual, geofence, driver = row
        own = {"geofence": geofence, "driver": driver}.get(method)
        first = actual is None
        if own is None and method in _COLUMN:
            conn.execute(f"UPDATE stops SET {_COLUMN[method]} = %s WHERE id = %s", (at, stop_id))
        if actual is None or (own is None and at < actual):
            conn.execute(
                "UPDATE stops SET actual_arrival = %s, arrival_method = %s WHERE id = %s",
                (at, method, stop_id),
            )
        if out_of_sequence is not None and first:
            conn.execute(
                "UPDATE stops SET out_of_sequence = %s WHERE id = %s", (out_of_sequence, stop_id)
            )
        if first:
            _orders_arrive(conn, stop_id, actor)
        return first


def _orders_arrive(conn: Conn, stop_id: int, actor: str) -> None:
    for (oid,) in conn.execute(
        "SELECT so.order_id FROM stop_orders so JOIN orders o ON o.id = so.order_id"
        " WHERE so.stop_id = %s AND o.state = 'out_for_delivery' ORDER BY so.order_id",
        (stop_id,),
    ).fetchall():
        try:
            orders.transition(
                conn, int(oid), OrderState.ARRIVED, actor=actor, reason=f"stop {stop_id}"
            )
        except OmsError as exc:  # moved on by someone else meanwhile: theirs stands
            log.warning("order %s arrived at stop %s but could not move: %s", oid, stop_id, exc)
