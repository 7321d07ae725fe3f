"""Driver actions, each applied exactly once however often the phone sends it.

Every action carries an idempotency key the phone made when the driver tapped. The
first request inserts ``driver_actions`` (driver, key) and does the work in the same
transaction, storing its answer; a retry with the same key and body gets that answer
back and does nothing, and the same key with a different body is refused
(``idempotency_key_reused``). Two copies racing meet at the unique index: the second
waits for the first to commit, then replays its answer. A refused action rolls back
with its key, so sending it again after fixing the cause works; one that deadlocked with
the control tower (both touch stops and orders) is rolled back and run again.

Times: the phone says when the driver tapped (``phone_time``, its own clock) and when
it sent the request (``sent_at``). Their difference to the server's clock at receipt is
the phone's clock skew (network time is small beside the skews that matter), so the tap
is placed on the server's clock as ``phone_time - skew``: an action queued offline for
an hour keeps its hour, a phone whose clock is ten minutes off does not move events by
ten minutes. Without ``sent_at`` the phone's time is taken as it is. A tap is never
later than its receipt, and one older than ``MAX_AGE`` is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from oms_core.errors import InvalidOrder, OmsError, Problem
from oms_core.retry import on_conflict

__all__ = ["MAX_AGE", "Action", "ActionIn", "IdempotencyConflict", "perform", "request_digest"]

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
MAX_AGE = timedelta(days=2)  # a phone offline longer than this has lost its day's context
ATTEMPTS = 3  # a deadlock with the control tower rolls the action back: it is run again


class IdempotencyConflict(OmsError):
    """The key was used before for a different request; nothing was done."""

    code = "idempotency_key_reused"


@dataclass(frozen=True, slots=True)
class ActionIn:
    """An action as the phone sent it."""

    driver_id: int
    actor: str  # the token's name: the audit trail's "who"
    kind: str
    key: str
    phone_time: datetime
    body: Mapping[str, Any]  # the request as sent, for the replay check
    sent_at: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """A recorded action as the work sees it; ``at`` is the tap on the server's clock."""

    id: int
    driver_id: int
    actor: str
    kind: str
    at: datetime
    received_at: datetime
    phone_time: datetime
    clock_skew_s: float | None
    lat: float | None
    lon: float | None
    accuracy_m: float | None


def request_digest(body: Mapping[str, Any]) -> str:
    """SHA-256 of the body in canonical JSON, without ``sent_at`` (a retry's differs)."""
    canonical = {k: v for k, v in body.items() if k != "sent_at"}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _placed(a: ActionIn, now: datetime) -> tuple[datetime, float | None]:
    skew = None if a.sent_at is None else (a.sent_at - now).total_seconds()
    at = a.phone_time if skew is None else a.phone_time - timedelta(seconds=skew)
    at = min(at, now)
    if at < now - MAX_AGE:
        raise InvalidOrder(
            [
                Problem(
                    "bad_time",
                    f"the action happened more than {MAX_AGE.days} days ago (by the phone's"
                    " clock): check the phone's date and time",
                )
            ]
        )
    return at, skew


def perform(
    conn: Conn,
    a: ActionIn,
    work: Callable[[Conn, Action], Mapping[str, Any]],
    *,
    now: datetime,
    trip_id: int | None = None,
    stop_id: int | None = None,
    order_id: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """Apply the action once: ``(answer, replayed)``. ``work`` runs inside the action's
    transaction and returns the JSON-ready answer; a retry gets the stored answer."""
    digest = request_digest(a.body)
    at, skew = _placed(a, now)
    return on_conflict(
        lambda: _once(conn, a, work, digest, now, at, skew, (trip_id, stop_id, order_id)),
        attempts=ATTEMPTS,
        retried=lambda: log.info("driver action %s met a concurrent change; trying again", a.key),
    )


def _once(
    conn: Conn,
    a: ActionIn,
    work: Callable[[Conn, Action], Mapping[str, Any]],
    digest: str,
    now: datetime,
    at: datetime,
    skew: float | None,
    subject: tuple[int | None, int | None, int | None],
) -> tuple[dict[str, Any], bool]:
    trip_id, stop_id, order_id = subject
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO driver_actions (driver_id, idempotency_key, kind, trip_id, stop_id,"
            " order_id, phone_time, clock_skew_s, at, received_at, lat, lon, accuracy_m,"
            " request_sha256) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (driver_id, idempotency_key) DO NOTHING RETURNING id",
            (
                a.driver_id, a.key, a.kind, trip_id, stop_id, order_id, a.phone_time, skew,
                at, now, a.lat, a.lon, a.accuracy_m, digest,
            ),
        ).fetchone()  # fmt: skip
        if row is None:
            return _replay(conn, a, digest), True
        action = Action(
            int(row[0]), a.driver_id, a.actor, a.kind, at, now, a.phone_time, skew,
            a.lat, a.lon, a.accuracy_m,
        )  # fmt: skip
        answer = dict(work(conn, action))
        conn.execute(
            "UPDATE driver_actions SET response = %s WHERE id = %s", (Jsonb(answer), action.id)
        )
        return answer, False


def _replay(conn: Conn, a: ActionIn, digest: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT kind, request_sha256, response FROM driver_actions"
        " WHERE driver_id = %s AND idempotency_key = %s",
        (a.driver_id, a.key),
    ).fetchone()
    assert row is not None  # the conflicting row is committed: we waited for it
    kind, stored, response = row
    if kind != a.kind or stored != digest:
        raise IdempotencyConflict(
            f"idempotency key {a.key} was already used for another {kind} action:"
            " make a new key for a new action"
        )
    return dict(response)
