"""Queue an alert event for delivery: one outbox row per matching webhook and, for the
events a person must act on, per supervisor email of the alert's depot. Rows are
written in the caller's transaction, so an alert and its deliveries commit together
and a crash between them cannot lose a notification."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import psycopg

__all__ = ["CHANNEL", "EMAIL_EVENTS", "WEBHOOK_EVENTS", "enqueue"]

CHANNEL = "menara_deliveries"  # NOTIFYd when rows are queued; the Deliverer listens

WEBHOOK_EVENTS = frozenset({"open", "clear", "acknowledge", "escalate", "resolve"})
EMAIL_EVENTS = frozenset({"open", "escalate"})


def enqueue(conn: psycopg.Connection[Any], alert: Mapping[str, Any], event: str) -> int:
    """Insert the deliveries ``event`` of ``alert`` (a JSON-ready dict with at least
    ``id``, ``type`` and ``depot_id``) calls for; returns how many rows were queued."""
    payload = json.dumps({"event": event, "alert": alert}, default=str)
    queued = 0
    if event in WEBHOOK_EVENTS:
        cur = conn.execute(
            "INSERT INTO deliveries (alert_id, event, channel, webhook_id, payload)"
            " SELECT %s, %s, 'webhook', w.id, %s::jsonb FROM webhooks w"
            " WHERE w.active AND w.purpose = 'alerts'"
            " AND (w.depot_id IS NULL OR w.depot_id = %s)"
            " AND (w.types IS NULL OR %s = ANY (w.types))",
            (alert["id"], event, payload, alert.get("depot_id"), alert["type"]),
        )
        queued += cur.rowcount
    if event in EMAIL_EVENTS and alert.get("depot_id") is not None:
        cur = conn.execute(
            "INSERT INTO deliveries (alert_id, event, channel, email, payload)"
            " SELECT %s, %s, 'email', c.email, %s::jsonb FROM depot_contacts c"
            " WHERE c.depot_id = %s AND c.role = 'supervisor'",
            (alert["id"], event, payload, alert["depot_id"]),
        )
        queued += cur.rowcount
    if queued:
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(alert["id"])))
    return queued
