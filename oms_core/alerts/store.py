"""The alert store: rule events become one alert per incident, people move alerts through
open → acknowledged → escalated → resolved, and every change is logged, queued for
delivery (``outbox.enqueue``) and announced on ``pg_notify('menara_alerts')`` for the
live stream, all in the caller's transaction so none of it can be half-done.

The rules' condition (``cleared_at``) and the people's handling (``state``) are apart: a
condition that ends clears the alert, but it stays in its human state until resolved.
``update`` phases write no action rows (the evidence and ``last_seen_at`` tell the
story) and are not announced: an incident that lasts an hour is one open and one clear.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from deviation.model import Event
from oms_core.alerts import catalog, outbox
from oms_core.errors import IllegalTransition, NotFound

__all__ = [
    "ANNOUNCED",
    "CHANNEL",
    "EVIDENCE_HEAD",
    "EVIDENCE_MAX",
    "LEGAL_NEXT",
    "REPLAY_SQL",
    "STATES",
    "Action",
    "AlertFilter",
    "State",
    "acknowledge",
    "alert_json",
    "announced_since",
    "comment",
    "dedupe_key",
    "escalate",
    "escalate_overdue",
    "get_alert",
    "list_alerts",
    "notification",
    "record",
    "replayed",
    "resolve",
]

Conn = psycopg.Connection[Any]
State = Literal["open", "acknowledged", "escalated", "resolved"]
Action = Literal["acknowledge", "escalate", "resolve"]
STATES: tuple[State, ...] = ("open", "acknowledged", "escalated", "resolved")
LEGAL_NEXT: Mapping[str, tuple[State, ...]] = {
    "open": ("acknowledged", "escalated", "resolved"),
    "acknowledged": ("escalated", "resolved"),
    "escalated": ("resolved",),
    "resolved": (),
}
_TARGET: Mapping[Action, tuple[State, str]] = {
    "acknowledge": ("acknowledged", "acknowledged_at"),
    "escalate": ("escalated", "escalated_at"),
    "resolve": ("resolved", "resolved_at"),
}
CHANNEL = "menara_alerts"
EVIDENCE_MAX = 50  # entries kept per alert: the first EVIDENCE_HEAD and the latest others
EVIDENCE_HEAD = 10
_NOTIFY_MAX = 7900  # pg_notify payloads must stay under 8000 bytes
_LIVE = "cleared_at IS NULL AND state <> 'resolved'"


def dedupe_key(event: Event, vehicle_id: int | None, trip_id: int | None) -> str:
    """One incident, one key: kind, vehicle, trip ('-' without one) and the event's key."""
    return f"{event.kind}:{vehicle_id}:{trip_id or '-'}:{event.key}"


def _at(t_s: float) -> datetime:
    return datetime.fromtimestamp(t_s, UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def alert_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """An ``alerts`` row as JSON-ready data, with ``time_to_ack_s`` (acknowledged_at −
    created_at, null until acknowledged) and without the evidence (see ``get_alert``)."""
    out = {k: _iso(v) if isinstance(v, datetime) else v for k, v in row.items()}
    out.pop("evidence", None)
    out["order_ids"] = list(row["order_ids"])
    ack, created = row["acknowledged_at"], row["created_at"]
    out["time_to_ack_s"] = None if ack is None else (ack - created).total_seconds()
    return out


def notification(alert: Mapping[str, Any], event: str, seq: int | None = None) -> str:
    """The compact JSON announced on ``CHANNEL``; long messages and order lists are cut
    so it stays under PostgreSQL's 8000-byte limit. ``seq`` is the event's action log
    id: the live stream's event id, from which a client that lost its connection asks
    for what it missed (``announced_since``)."""
    keys = ("id", "type", "severity", "state", "vehicle_id", "trip_id", "stop_id", "depot_id")
    body: dict[str, Any] = {"event": event, **{k: alert.get(k) for k in keys}}
    if seq is not None:
        body["seq"] = seq
    body.update(
        order_ids=list(alert.get("order_ids", [])),
        message=alert.get("message", ""),
        opened_at=alert.get("opened_at"),
    )
    text = json.dumps(body, default=str, separators=(",", ":"))
    if len(text.encode()) > _NOTIFY_MAX:
        body["order_ids"] = body["order_ids"][:100]
        body["message"] = body["message"][:500]
        body["truncated"] = True
        text = json.dumps(body, default=str, separators=(",", ":"))
    return text


def _announce(
    conn: Conn, row: Mapping[str, Any], event: str, actor: str, comment: str = ""
) -> None:
    """Log the change, queue it for delivery and announce it, in the caller's transaction."""
    seq = _log(conn, row["id"], event, actor, comment)
    alert = alert_json(row)
    outbox.enqueue(conn, alert, event)
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, notification(alert, event, seq)))


def _log(conn: Conn, alert_id: int, action: str, actor: str, comment: str = "") -> int:
    row = conn.execute(
        "INSERT INTO alert_actions (alert_id, action, actor, comment) VALUES (%s, %s, %s, %s)"
        " RETURNING id",
        (alert_id, action, actor, comment),
    ).fetchone()
    assert row is not None
    return int(row[0])


ANNOUNCED = ("open", "clear", "acknowledge", "escalate", "resolve")
REPLAY_SQL = """
SELECT x.id AS seq, x.action, a.* FROM alert_actions x JOIN alerts a ON a.id = x.alert_id
WHERE x.id > %s AND x.action = ANY(%s) ORDER BY x.id LIMIT %s
"""


def replayed(row: Mapping[str, Any]) -> str:
    """A ``REPLAY_SQL`` row as its notification (the alert as it is now)."""
    alert = {k: v for k, v in row.items() if k not in ("seq", "action")}
    return notification(alert_json(alert), str(row["action"]), int(row["seq"]))


def announced_since(conn: Conn, seq: int, limit: int = 500) -> list[str]:
    """The notifications of the announced changes after action ``seq``, oldest first,
    at most ``limit``; each carries the alert as it is now, with the event it missed."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(REPLAY_SQL, (seq, list(ANNOUNCED), limit)).fetchall()
    return [replayed(r) for r in rows]


def _merge_evidence(old: list[Any], new: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Append what is not there yet (a replayed fix adds nothing), keep the cap."""
    out = list(old)
    out += [dict(e) for e in new if dict(e) not in out]
    if len(out) > EVIDENCE_MAX:
        out = out[:EVIDENCE_HEAD] + out[len(out) - (EVIDENCE_MAX - EVIDENCE_HEAD) :]
    return out


def _live(conn: Conn, key: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT * FROM alerts WHERE dedupe_key = %s AND {_LIVE} FOR UPDATE", (key,)
        ).fetchone()


def record(
    conn: Conn,
    event: Event,
    *,
    vehicle_id: int | None,
    device_id: str | None = None,
    trip_id: int | None = None,
    stop_id: int | None = None,
    depot_id: int | None = None,
    order_ids: Sequence[int] = (),
    evidence: Sequence[Mapping[str, Any]] = (),
) -> int | None:
    """Apply one rule event; returns the alert's id, or None when there is nothing to do
    (an ``info`` event, or an update/close for an incident with no live alert).

    ``open`` inserts, or updates the live alert of the same incident; an ``open`` whose
    alert already exists with the same start time (a replay) changes nothing, even after
    the alert was cleared or resolved. ``close`` sets ``cleared_at``.
    """
    if event.phase == "info":
        return None
    key = dedupe_key(event, vehicle_id, trip_id)
    at = _at(event.t_s)
    subject = catalog.Subject(vehicle_id, trip_id, stop_id, event.key)
    severity, message = catalog.describe(event.kind, event.data, subject)
    with conn.transaction():
        if event.phase == "open":
            # trip_id narrows the search through its index (the dedupe index holds
            # live alerts only, and a replay may come after the clear)
            args: tuple[Any, ...] = () if trip_id is None else (trip_id,)
            trip = "trip_id IS NULL" if trip_id is None else "trip_id = %s"
            replayed = conn.execute(
                f"SELECT id FROM alerts WHERE {trip} AND dedupe_key = %s AND opened_at = %s",
                (*args, key, at),
            ).fetchone()
            if replayed is not None:
                return int(replayed[0])
            with conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(
                    "INSERT INTO alerts (type, severity, dedupe_key, vehicle_id, device_id,"
                    " trip_id, stop_id, depot_id, order_ids, message, details, evidence,"
                    " opened_at, last_seen_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    f" ON CONFLICT (dedupe_key) WHERE {_LIVE} DO NOTHING RETURNING *",
                    (
                        event.kind, severity, key, vehicle_id, device_id, trip_id, stop_id,
                        depot_id, list(order_ids), message, Jsonb(event.data),
                        Jsonb(_merge_evidence([], evidence)), at, at,
                    ),
                ).fetchone()  # fmt: skip
            if row is not None:
                _announce(conn, row, "open", "rules")
                return int(row["id"])
        live = _live(conn, key)
        if live is None:
            return None
        closing = event.phase == "close"
        details = {**live["details"], **event.data}  # a bare close keeps the figures
        message = catalog.describe(event.kind, details, subject)[1]
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "UPDATE alerts SET last_seen_at = greatest(last_seen_at, %s),"
                " details = %s, evidence = %s, message = %s,"
                " order_ids = CASE WHEN cardinality(%s::bigint[]) > 0 THEN %s ELSE order_ids END,"
                " cleared_at = CASE WHEN %s THEN %s ELSE cleared_at END"
                " WHERE id = %s RETURNING *",
                (
                    at, Jsonb(details), Jsonb(_merge_evidence(live["evidence"], evidence)),
                    message, list(order_ids), list(order_ids), closing, at, live["id"],
                ),
            ).fetchone()  # fmt: skip
        assert row is not None  # locked above
        if closing:
            _announce(conn, row, "clear", "rules")
        return int(row["id"])


def _locked(conn: Conn, alert_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)).fetchone()
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    return row


def _move(conn: Conn, alert_id: int, action: Action, actor: str, comment: str) -> dict[str, Any]:
    state, column = _TARGET[action]
    with conn.transaction():
        row = _locked(conn, alert_id)
        if action == "acknowledge" and row["state"] == "escalated" and not row[column]:
            state = "escalated"  # someone took the escalated alert: it stays escalated
        elif state not in LEGAL_NEXT[row["state"]]:
            raise IllegalTransition(row["state"], state, LEGAL_NEXT[row["state"]], "alert")
        with conn.cursor(row_factory=dict_row) as cur:
            moved = cur.execute(
                f"UPDATE alerts SET state = %s, {column} = now() WHERE id = %s RETURNING *",
                (state, alert_id),
            ).fetchone()
        assert moved is not None
        _announce(conn, moved, action, actor, comment)
    return alert_json(moved)


def acknowledge(conn: Conn, alert_id: int, actor: str, comment: str = "") -> dict[str, Any]:
    """open → acknowledged; an escalated alert nobody acknowledged yet keeps its state
    and gets its ``acknowledged_at`` (so time to acknowledge is known for it too);
    ``IllegalTransition`` (naming the legal moves) otherwise."""
    return _move(conn, alert_id, "acknowledge", actor, comment)


def escalate(conn: Conn, alert_id: int, actor: str, comment: str = "") -> dict[str, Any]:
    """open or acknowledged → escalated."""
    return _move(conn, alert_id, "escalate", actor, comment)


def resolve(conn: Conn, alert_id: int, actor: str, comment: str = "") -> dict[str, Any]:
    """Any state but resolved → resolved (final)."""
    return _move(conn, alert_id, "resolve", actor, comment)


def comment(conn: Conn, alert_id: int, actor: str, comment: str = "") -> dict[str, Any]:
    """Add a note to the action log, in any state; the alert itself does not change."""
    with conn.transaction():
        row = _locked(conn, alert_id)
        _log(conn, alert_id, "comment", actor, comment)
    return alert_json(row)


def escalate_overdue(conn: Conn, now: datetime, after_s: float) -> list[int]:
    """Escalate (actor 'system') every open alert raised ``after_s`` or more before
    ``now`` that nobody acknowledged, cleared or not: an incident that ended by itself
    still wants a person to look at it. Returns their ids; rows another transaction
    holds are left for the next call."""
    moved: list[int] = []
    note = f"unacknowledged for {after_s:.0f} s"
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "UPDATE alerts SET state = 'escalated', escalated_at = %s WHERE id IN"
            " (SELECT id FROM alerts WHERE state = 'open' AND created_at <= %s"
            "  ORDER BY id FOR UPDATE SKIP LOCKED) RETURNING *",
            (now, now - timedelta(seconds=after_s)),
        ).fetchall()
        for row in sorted(rows, key=lambda r: int(r["id"])):
            _announce(conn, row, "escalate", "system", note)
            moved.append(int(row["id"]))
    return moved


def get_alert(conn: Conn, alert_id: int) -> dict[str, Any]:
    """One alert with its evidence and its action log (oldest first); ``NotFound``."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,)).fetchone()
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        actions = cur.execute(
            "SELECT action, actor, at, comment FROM alert_actions WHERE alert_id = %s ORDER BY id",
            (alert_id,),
        ).fetchall()
    out = alert_json(row)
    out["evidence"] = row["evidence"]
    out["actions"] = [{**a, "at": a["at"].isoformat()} for a in actions]
    return out


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """What ``list_alerts`` keeps; None (or empty) means any."""

    states: Sequence[str] = ()
    type: str | None = None
    severity: str | None = None
    depot_id: int | None = None
    vehicle_id: int | None = None
    trip_id: int | None = None
    since: datetime | None = None  # opened at or after


def list_alerts(
    conn: Conn, filters: AlertFilter | None = None, *, limit: int = 50, cursor: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Alerts matching ``filters``, newest first, and the cursor of the next page (None
    on the last); pass that cursor back as ``cursor``."""
    f = filters or AlertFilter()
    where, params = ["TRUE"], []
    for clause, value in (
        ("id < %s", cursor),
        ("state = ANY(%s)", list(f.states) or None),
        ("type = %s", f.type),
        ("severity = %s", f.severity),
        ("depot_id = %s", f.depot_id),
        ("vehicle_id = %s", f.vehicle_id),
        ("trip_id = %s", f.trip_id),
        ("opened_at >= %s", f.since),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT * FROM alerts WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s",
            (*params, limit + 1),
        ).fetchall()
    page = [alert_json(r) for r in rows[:limit]]
    return page, (page[-1]["id"] if len(rows) > limit else None)
