"""Queue a customer notification in the transaction of the change that causes it.

``order_moved`` is called by ``orders.transition`` for every state change (the one place
they all go through: API, driver app, control tower, demo) and ``stop_at_risk`` by the
tower's effects for each alert event. Rows follow the customer's ``notify_prefs``:
``email`` → ``customers.email``; ``sms`` / ``whatsapp`` → ``customers.phone`` through
every active ``customer_messages`` webhook of the order's depot (or of every depot)
whose ``types`` (if any) name the event. Each row's dedupe key
``order:<id>:<event>:<medium>:<target>`` is unique, so a replay, a retried transaction
or a second path to the same event (geofence and driver both seeing the van leave)
queues nothing more.

The payload keeps what must be told as it was at that moment (the ETA a window is drawn
around); everything else is read when the message is written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from deviation.model import Event
from oms_core.alerts.outbox import CHANNEL
from oms_core.states import OrderState

__all__ = ["ON_STATE", "order_moved", "queue", "stop_at_risk"]

Conn = psycopg.Connection[Any]
S = OrderState
ON_STATE: dict[OrderState, str] = {
    S.VERIFIED: "confirmed",
    S.OUT_FOR_DELIVERY: "out_for_delivery",
    S.DELIVERED: "delivered",
    S.PARTIALLY_DELIVERED: "delivered",
    S.FAILED: "failed",
}
# Orders a delay notice still concerns: loaded or on the road, not yet at the door.
_ON_THE_WAY = [str(S.DISPATCHED), str(S.OUT_FOR_DELIVERY)]
_STOP = """
SELECT s.id, coalesce(s.eta, s.planned_arrival) FROM stop_orders so
JOIN stops s ON s.id = so.stop_id JOIN trips t ON t.id = s.trip_id
WHERE so.order_id = %s AND t.state <> 'cancelled'
ORDER BY t.created_at DESC, t.id DESC LIMIT 1
"""
_EMAIL = """
INSERT INTO deliveries (order_id, event, channel, email, payload, dedupe_key)
SELECT o.id, %(event)s::text, 'email', c.email,
       %(payload)s::jsonb || jsonb_build_object('medium', 'email'),
       concat_ws(':', 'order', o.id, %(event)s::text, 'email', c.email)
FROM orders o JOIN customers c ON c.id = o.customer_id
WHERE o.id = %(order)s AND coalesce(c.email, '') <> ''
  AND c.notify_prefs -> 'email' = 'true'::jsonb
ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
"""
_GATEWAY = """
INSERT INTO deliveries (order_id, event, channel, webhook_id, payload, dedupe_key)
SELECT o.id, %(event)s::text, 'webhook', w.id,
       %(payload)s::jsonb || jsonb_build_object('medium', m.medium, 'to', c.phone),
       concat_ws(':', 'order', o.id, %(event)s::text, m.medium, c.phone, 'webhook', w.id)
FROM orders o JOIN customers c ON c.id = o.customer_id
CROSS JOIN unnest(ARRAY['sms', 'whatsapp']) AS m (medium)
JOIN webhooks w ON w.active AND w.purpose = 'customer_messages'
  AND (w.depot_id IS NULL OR w.depot_id = o.depot_id)
  AND (w.types IS NULL OR %(event)s::text = ANY (w.types))
WHERE o.id = %(order)s AND coalesce(c.phone, '') <> ''
  AND c.notify_prefs -> m.medium = 'true'::jsonb
ORDER BY w.id, m.medium
ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
"""


def queue(conn: Conn, order_id: int, event: str, facts: dict[str, Any] | None = None) -> int:
    """Queue ``event`` of ``order_id`` on every medium the customer chose; returns how
    many rows are new (0 when all were queued before)."""
    payload = Jsonb({"event": event, **(facts or {})})
    params = {"order": order_id, "event": event, "payload": payload}
    queued = conn.execute(_EMAIL, params).rowcount + conn.execute(_GATEWAY, params).rowcount
    if queued:
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"order:{order_id}"))
    return queued


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat()


def order_moved(conn: Conn, order_id: int, state: OrderState) -> int:
    """Queue what the customer hears about ``order_id`` reaching ``state`` (most states
    say nothing); out for delivery captures the stop's ETA (else its planned arrival)."""
    event = ON_STATE.get(state)
    if event is None:
        return 0
    facts: dict[str, Any] = {"state": str(state)}
    if event == "out_for_delivery":
        stop = conn.execute(_STOP, (order_id,)).fetchone()
        facts["stop_id"] = None if stop is None else int(stop[0])
        facts["eta"] = None if stop is None else _iso(stop[1])
    return queue(conn, order_id, event, facts)


def stop_at_risk(conn: Conn, event: Event) -> int:
    """Queue a delay notice for each order of the stop the tower just marked at risk
    (``eta_at_risk`` opening), with the ETA it foresees; other events queue nothing.
    Once per order: a stop at risk again later tells nobody twice."""
    stop_id = event.data.get("stop_id")
    if event.kind != "eta_at_risk" or event.phase != "open" or stop_id is None:
        return 0
    eta_s = event.data.get("eta_s")
    rows = conn.execute(
        "SELECT so.order_id, coalesce(s.eta, s.planned_arrival) FROM stop_orders so"
        " JOIN stops s ON s.id = so.stop_id JOIN orders o ON o.id = so.order_id"
        " WHERE so.stop_id = %s AND o.state = ANY (%s) ORDER BY so.order_id",
        (int(stop_id), _ON_THE_WAY),
    ).fetchall()
    queued = 0
    for order_id, planned in rows:
        eta = planned if eta_s is None else datetime.fromtimestamp(float(eta_s), UTC)
        queued += queue(conn, int(order_id), "delayed", {"stop_id": int(stop_id), "eta": _iso(eta)})
    return queued
