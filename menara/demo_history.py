"""The history of the demo's orders, dated on the replayed day.

The demo enters, verifies, plans and dispatches its orders seconds before it replays
their day, which it moves hours into the past; their history would then start after
their deliveries, and a report could say nothing about the stages before departure. So,
once the day is moved, the orders' history up to dispatch is dated as a real day of the
business would have it: entered over the evening and night before the ``ORDER_CUTOFF``
(06:00 local), verified and reserved at the cutoff, planned ``PLANNING`` after it, and
released to their van ``LOADING`` before its planned departure. Only the demo's own
orders are touched, in one transaction, with ``order_events``' append-only trigger off
for that transaction alone (``ALTER TABLE`` holds its lock until the commit, so no other
session ever sees the trigger off).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg

from menara.demo_oms import JAKARTA, ORDER_CUTOFF

__all__ = ["LOADING", "PLANNING", "date_history"]

ENTERED_OVER = timedelta(hours=10)  # orders come in over the 14 h to 4 h before the cutoff
PLANNING = timedelta(minutes=10)
LOADING = timedelta(minutes=45)

_SQL = """
WITH o AS (
    SELECT so.order_id, min(t.planned_departure) AS departure,
           (min(t.day) + %(cutoff)s::time) AT TIME ZONE %(tz)s + %(offset)s AS cutoff
    FROM trips t JOIN stops s ON s.trip_id = t.id JOIN stop_orders so ON so.stop_id = s.id
    WHERE t.id = ANY(%(trips)s) GROUP BY so.order_id
), timed AS (
    SELECT order_id,
           cutoff - interval '4 hours' - %(over)s * ((order_id * 7919) %% 1000) / 1000.0
               AS entered,
           cutoff AS reserved, cutoff + %(planning)s AS scheduled,
           greatest(departure - %(loading)s, cutoff + %(planning)s) AS dispatched
    FROM o
), orders_done AS (
    UPDATE orders SET created_at = timed.entered FROM timed WHERE orders.id = timed.order_id
)
UPDATE order_events e SET at = CASE
        WHEN e.to_state = 'draft' THEN timed.entered
        WHEN e.to_state IN ('verified', 'reserved') THEN timed.reserved
        WHEN e.to_state = 'scheduled' THEN timed.scheduled
        ELSE timed.dispatched END
FROM timed
WHERE e.order_id = timed.order_id AND e.kind = 'state'
  AND e.to_state IN ('draft', 'verified', 'reserved', 'scheduled', 'dispatched')
"""


def date_history(conn: psycopg.Connection[Any], trip_ids: Sequence[int], offset: timedelta) -> None:
    """Date the trips' orders' history up to dispatch on their day moved by ``offset``."""
    with conn.transaction():
        conn.execute("ALTER TABLE order_events DISABLE TRIGGER order_events_append_only")
        conn.execute(
            _SQL,
            {
                "trips": list(trip_ids),
                "cutoff": ORDER_CUTOFF,
                "tz": str(JAKARTA),
                "offset": offset,
                "over": ENTERED_OVER,
                "planning": PLANNING,
                "loading": LOADING,
            },
        )
        conn.execute("ALTER TABLE order_events ENABLE TRIGGER order_events_append_only")
