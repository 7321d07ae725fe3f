"""What the rules' findings do to the database, in the caller's transaction.

Alert phases go to the alert store (one incident, one alert). Facts move the plan
along: leaving the depot starts a dispatched trip (its orders go out for delivery), an
arrival stamps the stop and moves its orders to ``arrived``, a departure stamps the
stop, a stop passed during a tracker gap keeps the gap for someone to confirm the visit,
ETAs are stored on the stops. Order moves that are no longer legal (a dispatcher
already moved the order) are skipped, never fatal: the rules report what happened on
the road, the order core decides what it means.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from deviation.model import Event
from oms_core import trips
from oms_core.alerts import store
from oms_core.errors import NotFound, OmsError
from oms_core.execution.arrival import record_arrival
from oms_core.notify.enqueue import stop_at_risk
from tower.plans import VehicleInfo

__all__ = ["ACTOR", "Finding", "apply", "count_quality"]

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
ACTOR = "geofence"  # who moved an order in the audit trail: the arrival method


@dataclass(frozen=True, slots=True)
class Finding:
    """An event with the fixes that show it (evidence for alerts)."""

    event: Event
    evidence: tuple[Mapping[str, Any], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def apply(conn: Conn, device_id: str, vehicle: VehicleInfo, findings: Sequence[Finding]) -> int:
    """Apply ``findings`` of one vehicle; returns how many alert rows they touched."""
    touched = 0
    trip = vehicle.trip
    for f in findings:
        e = f.event
        if e.phase != "info":
            stop_id = _stop_of(e)
            if store.record(
                conn,
                e,
                vehicle_id=vehicle.vehicle_id,
                device_id=device_id,
                trip_id=None if trip is None else trip.trip_id,
                stop_id=stop_id,
                depot_id=vehicle.depot_id if trip is None else trip.depot_id,
                order_ids=_orders_at_risk(conn, vehicle, stop_id, e),
                evidence=f.evidence,
            ):
                touched += 1
            stop_at_risk(conn, e)  # a stop marked at risk: its customers hear of the delay
        elif trip is not None:
            _fact(conn, trip.trip_id, e)
    return touched


def _stop_of(e: Event) -> int | None:
    stop = e.data.get("stop_id")
    return None if stop is None else int(stop)


def _orders_at_risk(conn: Conn, vehicle: VehicleInfo, stop_id: int | None, e: Event) -> list[int]:
    """A stop's alert names that stop's orders; a vehicle's alert names every order still
    on board (stops not yet arrived at)."""
    trip = vehicle.trip
    if trip is None:
        return []
    if stop_id is not None and e.kind in ("eta_at_risk", "stop_out_of_sequence"):
        return [o for s in trip.stops if s.stop_id == stop_id for o in s.order_ids]
    rows = conn.execute(
        "SELECT so.order_id FROM stops s JOIN stop_orders so ON so.stop_id = s.id"
        " WHERE s.trip_id = %s AND s.actual_arrival IS NULL ORDER BY s.seq, so.order_id",
        (trip.trip_id,),
    ).fetchall()
    return [int(r[0]) for r in rows]


def _fact(conn: Conn, trip_id: int, e: Event) -> None:
    d = e.data
    if e.kind == "depot_departure":
        _start(conn, trip_id, datetime.fromtimestamp(float(d["departed_s"]), UTC))
    elif e.kind == "stop_arrival":
        _arrive(conn, int(d["stop_id"]), d)
    elif e.kind == "stop_visit_unconfirmed":
        conn.execute(
            "UPDATE stops SET unconfirmed_from = to_timestamp(%s), unconfirmed_to ="
            " to_timestamp(%s) WHERE id = %s AND trip_id = %s AND actual_arrival IS NULL",
            (d["gap_from_s"], d["gap_to_s"], d["stop_id"], trip_id),
        )
    elif e.kind == "stop_departure":
        conn.execute(
            "UPDATE stops SET actual_departure = to_timestamp(%s) WHERE id = %s AND trip_id = %s"
            " AND actual_departure IS NULL AND actual_arrival <= to_timestamp(%s)",
            (d["departed_s"], d["stop_id"], trip_id, d["departed_s"]),
        )
    elif e.kind == "eta":
        etas = d.get("etas", [])
        if etas:
            conn.execute(
                "UPDATE stops s SET eta = to_timestamp(x.eta_s), eta_updated_at = now()"
                " FROM unnest(%s::bigint[], %s::float8[]) AS x(stop_id, eta_s)"
                " WHERE s.id = x.stop_id AND s.trip_id = %s",
                ([int(x["stop_id"]) for x in etas], [float(x["eta_s"]) for x in etas], trip_id),
            )


def _start(conn: Conn, trip_id: int, at: datetime) -> None:
    row = conn.execute("SELECT state FROM trips WHERE id = %s", (trip_id,)).fetchone()
    if row is not None and row[0] == "dispatched":
        try:
            trips.start_trip(conn, trip_id, actor=ACTOR, at=at)
        except OmsError as exc:
            log.warning("trip %s left the depot but could not start: %s", trip_id, exc)
    elif row is not None:
        trips.record_departure(conn, trip_id, at)  # the driver's tap started it


def _arrive(conn: Conn, stop_id: int, d: Mapping[str, Any]) -> None:
    at = datetime.fromtimestamp(float(d["arrived_s"]), UTC)
    oos = bool(d.get("out_of_sequence", False))
    try:
        record_arrival(conn, stop_id, at, "geofence", actor=ACTOR, out_of_sequence=oos)
    except NotFound:
        log.warning("arrival at stop %s, which no longer exists", stop_id)


def count_quality(conn: Conn, device_id: str, found: Sequence[Finding]) -> None:
    """Every telemetry flag counted per device and reason (the alert is one per incident)."""
    reasons = Counter(
        str(f.event.data.get("reason", f.event.key))
        for f in found
        if f.event.kind == "telemetry" and f.event.phase in ("open", "update")
    )
    for reason, n in reasons.items():
        conn.execute(
            "INSERT INTO telemetry_issues (device_id, reason, count, last_at)"
            " VALUES (%s, %s, %s, now()) ON CONFLICT (device_id, reason)"
            " DO UPDATE SET count = telemetry_issues.count + excluded.count, last_at = now()",
            (device_id, reason, n),
        )
