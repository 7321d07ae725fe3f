"""The supervisor email of an alert: what happened, to which vehicle, where, which orders
are at risk, and a link to act on it.

The payload carries ids; a supervisor thinks in plates, depots and tracking numbers, so
``describe`` looks those up once when the email is written (a deleted vehicle or order
falls back to its id). ``render`` is pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import psycopg

__all__ = ["ALERT_PATH", "OrderRef", "Where", "describe", "render", "subject"]

ALERT_PATH = "/api/v1/alerts/{id}"  # below ``public_url``
_EVENT_WORDS = {"open": "opened", "escalate": "ESCALATED: nobody acknowledged it in time"}


@dataclass(frozen=True, slots=True)
class OrderRef:
    """An order as a supervisor recognises it."""

    id: int
    tracking_number: str
    address_text: str
    customer: str


@dataclass(frozen=True, slots=True)
class Where:
    """Names for the ids in an alert; None where the id is absent or no longer exists."""

    vehicle: str | None = None  # "van B 1234 XY"
    depot: str | None = None
    stop_seq: int | None = None
    orders: Sequence[OrderRef] = ()


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


async def describe(conn: psycopg.AsyncConnection[Any], alert: Mapping[str, Any]) -> Where:
    """Look up the plate, depot name, stop sequence and orders an alert refers to."""

    async def first(sql: str, key: Any) -> tuple[Any, ...] | None:
        if key is None:
            return None
        cur = await conn.execute(sql, (key,))
        return await cur.fetchone()

    vehicle = await first("SELECT type, plate FROM vehicles WHERE id = %s", alert.get("vehicle_id"))
    depot = await first("SELECT name FROM depots WHERE id = %s", alert.get("depot_id"))
    stop = await first("SELECT seq FROM stops WHERE id = %s", alert.get("stop_id"))
    cur = await conn.execute(
        "SELECT o.id, o.tracking_number, o.address_text, c.name FROM orders o"
        " JOIN customers c ON c.id = o.customer_id WHERE o.id = ANY (%s) ORDER BY o.id",
        ([int(i) for i in alert.get("order_ids") or ()],),
    )
    return Where(
        vehicle=f"{vehicle[0]} {vehicle[1]}" if vehicle else None,
        depot=depot[0] if depot else None,
        stop_seq=stop[0] if stop else None,
        orders=[OrderRef(*row) for row in await cur.fetchall()],
    )


def subject(alert: Mapping[str, Any], event: str, where: Where) -> str:
    """E.g. ``[Menara] CRITICAL route_deviation — van B 1234 XY, trip 12``."""
    head = f"[Menara] {'ESCALATED ' if event == 'escalate' else ''}"
    head += f"{str(alert.get('severity', '')).upper()} {alert.get('type', 'alert')}"
    parts = [where.vehicle or _maybe("vehicle", alert.get("vehicle_id"))]
    parts.append(_maybe("trip", alert.get("trip_id")))
    said = ", ".join(p for p in parts if p)
    return _one_line(f"{head} — {said}" if said else head)


def _maybe(label: str, value: Any) -> str:
    return "" if value is None else f"{label} {value}"


def render(
    payload: Mapping[str, Any],
    where: Where,
    *,
    sender: str,
    to: str,
    public_url: str | None = None,
) -> EmailMessage:
    """The plain-text email for one outbox ``payload`` (``{"event", "alert"}``)."""
    alert: Mapping[str, Any] = payload["alert"]
    event = str(payload["event"])
    lines = [
        f"{str(alert.get('severity', '')).upper()} {alert.get('type')}:"
        f" {_EVENT_WORDS.get(event, event)}",
        "",
        str(alert.get("message", "")),
        "",
        f"Vehicle: {where.vehicle or '?'} (vehicle {alert.get('vehicle_id')})",
    ]
    if alert.get("trip_id") is not None:
        stop = alert.get("stop_id")
        at_stop = "" if stop is None else f", stop {where.stop_seq or '?'} (stop id {stop})"
        lines.append(f"Trip: {alert['trip_id']}{at_stop}")
    if where.depot is not None:
        lines.append(f"Depot: {where.depot}")
    lines.append(f"Since: {alert.get('opened_at')}")
    order_ids = [int(i) for i in alert.get("order_ids") or ()]
    if order_ids:
        known = {o.id: o for o in where.orders}
        lines += ["", f"Orders at risk ({len(order_ids)}):"]
        for oid in order_ids:
            o = known.get(oid)
            lines.append(
                f"  - order {oid}"
                if o is None
                else f"  - order {oid}, tracking {o.tracking_number}, {o.address_text}"
                f" ({o.customer})"
            )
    lines += ["", "Acknowledge the alert in the control room so it is not escalated."]
    if public_url:
        lines.append(f"Alert: {public_url.rstrip('/')}{ALERT_PATH.format(id=alert.get('id'))}")
    else:
        lines.append(f"Alert id: {alert.get('id')}")
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, to
    msg["Subject"] = subject(alert, event, where)
    msg.set_content("\n".join(lines) + "\n")
    return msg
