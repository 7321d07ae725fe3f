"""What the demo's deliveries came to, read back from the database, and the mailbox the
demo's customer emails go to.

The demo's customers live at example.org, which no mail server delivers to, so the demo
never hands their emails to a real server: it runs a local SMTP server (aiosmtpd) whose
mailbox is a Maildir folder the user can open (``menara-demo-mail/new/*``).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

from menara import admin_cmd
from menara.settings import Settings

__all__ = ["MAIL_DIR", "delivery_summary", "free_port", "mail_sink", "where_to_look"]

Conn = psycopg.Connection[Any]
MAIL_DIR = Path("menara-demo-mail")
_CRITERIA = (
    ("on_time", "on time"),
    ("in_full", "in full"),
    ("damage_free", "damage free"),
    ("documents_accurate", "documents accurate"),
)


def free_port() -> int:
    """A loopback TCP port free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mail_sink(folder: Path = MAIL_DIR) -> Iterator[int]:
    """A local SMTP server storing every message in the Maildir ``folder``; yields its port."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # a line per SMTP command
    for part in ("tmp", "new", "cur"):  # a Maildir (an existing folder is not made one)
        (folder / part).mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = Controller(Mailbox(folder), hostname="127.0.0.1", port=port)
    server.start()
    try:
        yield port
    finally:
        server.stop()


def delivery_summary(conn: Conn, trip_ids: Sequence[int], base_url: str) -> list[str]:
    """Lines saying how the trips' orders ended: outcomes, the perfect-delivery rate
    with each criterion's failures by reason, ePODs to review, COD, trips closed, the
    customers' notifications, and a tracking link to follow."""
    ids = list(trip_ids)
    orders = (
        "SELECT so.order_id FROM stops s JOIN stop_orders so ON so.stop_id = s.id"
        " WHERE s.trip_id = ANY(%s)"
    )
    states = dict(
        conn.execute(
            f"SELECT state, count(*) FROM orders WHERE id IN ({orders}) GROUP BY 1", (ids,)
        ).fetchall()
    )
    lines = ["", "Deliveries (read back from the database)"]
    lines.append("  orders: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE perfect),"
        + ", ".join(f"count(*) FILTER (WHERE {c})" for c, _ in _CRITERIA)
        + f" FROM perfect_deliveries WHERE order_id IN ({orders})",
        (ids,),
    ).fetchone()
    assert row is not None  # an aggregate always answers
    judged, perfect, *held = (int(x) for x in row)
    if judged:
        lines.append(
            f"  perfect deliveries: {perfect} of {judged} orders ({100 * perfect / judged:.1f} %,"
            " all four criteria per order)"
        )
        parts = [
            f"{name} {100 * n / judged:.1f} %" for (_, name), n in zip(_CRITERIA, held, strict=True)
        ]
        lines.append("    " + ", ".join(parts))
        reasons = conn.execute(
            "SELECT r, count(*) FROM perfect_deliveries, unnest(ARRAY[on_time_reason,"
            " in_full_reason, damage_reason, documents_reason]) AS r"
            f" WHERE r IS NOT NULL AND order_id IN ({orders}) GROUP BY r ORDER BY 2 DESC, 1",
            (ids,),
        ).fetchall()
        if reasons:
            lines.append("    failed by reason: " + ", ".join(f"{r} {n}" for r, n in reasons))
    else:
        lines.append("  perfect deliveries: none judged yet (no outcome recorded)")
    flagged = conn.execute(
        "SELECT f, count(*) FROM epods, jsonb_array_elements_text(checks -> 'flags') AS f"
        " WHERE trip_id = ANY(%s) GROUP BY f ORDER BY 2 DESC, 1",
        (ids,),
    ).fetchall()
    if flagged:
        lines.append("  ePOD checks flagged: " + ", ".join(f"{f} {n}" for f, n in flagged))
    cod = conn.execute(
        "SELECT count(*), coalesce(sum(expected), 0), coalesce(sum(handed_in), 0)"
        " FROM cod_settlements WHERE trip_id = ANY(%s)",
        (ids,),
    ).fetchone()
    assert cod is not None
    lines.append(
        f"  trips closed at the depot: {cod[0]} of {len(ids)}; COD due {cod[1]}, handed in {cod[2]}"
    )
    sent = dict(
        conn.execute(
            f"SELECT state, count(*) FROM deliveries WHERE order_id IN ({orders}) GROUP BY 1",
            (ids,),
        ).fetchall()
    )
    if sent:
        told = ", ".join(f"{k} {v}" for k, v in sorted(sent.items()))
        lines.append(f"  customer notifications: {told} (emails in {MAIL_DIR}/new/)")
    follow = conn.execute(
        f"SELECT tracking_number, public_token FROM orders WHERE id IN ({orders})"
        " ORDER BY state IN ('delivered', 'completed') DESC, id LIMIT 1",
        (ids,),
    ).fetchone()
    if follow is not None:
        lines.append(f"  follow order {follow[0]} as its customer: {base_url}/t/{follow[1]}")
    return lines


def _command() -> str:
    """How the user ran ``menara``: ``.venv/bin/menara`` when it lives under the current
    folder (the README's way), else plain ``menara``."""
    here, argv0 = os.getcwd(), os.path.abspath(sys.argv[0])
    if os.path.basename(argv0) == "menara" and argv0.startswith(here + os.sep):
        return os.path.relpath(argv0)
    return "menara"


def where_to_look(conn: Conn, trip_ids: Sequence[int], cfg: Settings) -> list[str]:
    """The demo has stopped but its day stays in the database: the commands that show it
    again (the API and pages, the day's report, the Grafana dashboards)."""
    days = conn.execute(
        "SELECT min(day), max(day) FROM order_delivery_kpis WHERE trip_id = ANY(%s)",
        (list(trip_ids),),
    ).fetchone()
    prog, at = _command(), dict(admin_cmd.urls(cfg))
    lines = [
        "\nWhere to look now (the day stays in the database):",
        f"  {prog} serve                 the API {at['API']} (its OpenAPI document:"
        f" {at['OpenAPI document']}), the driver app {at['driver app']} and the"
        " tracking links above",
        f"  {prog} admin bootstrap       a dispatcher token for the API, and these URLs",
    ]
    if days is not None and days[0] is not None:
        lines.append(
            f"  {prog} report --from {days[0]} --to {days[1]}   the day's KPIs"
            " (--format csv|xlsx|json, --by depot|driver|customer)"
        )
    lines.append(
        f"  {prog} dashboards export grafana/   Grafana's data source and the four dashboards"
        " (Live map, Alerts, Delivery performance, Fleet health) to provision; or"
        f" {prog} dashboards publish --url URL --token TOKEN"
    )
    return lines
