"""A delivery's outcome with its electronic proof (ePOD), checked as it is stored.

``deliver`` runs in the driver action's transaction: it implies the arrival when the
driver did not tap it, moves the order to its outcome (stock consumed for what was
delivered, the rest released), stores the ePOD with its lines and photos, collects the
COD cash, judges perfect delivery, opens the re-delivery order a failed or short
attempt needs, and verifies the proof automatically. The verification never refuses a
delivery (the goods are handed over whatever a phone's GPS says); it flags what a
dispatcher should look at (``needs_review``) with the figures behind each flag:

- ``phone_distance_m`` / ``vehicle_distance_m``: from the stop to the phone's position
  with the action, and to the vehicle's newest fix at or before it (no older than
  ``VEHICLE_FIX_MAX_AGE``); flagged beyond ``max_distance_m``.
- ``in_window``: the delivery time inside the order's window.
- ``lines_accounted``: the ePOD gives a quantity for every order line.
- ``signature_present`` when ``signature_required``.
- ``clock_skew_s``: the phone's clock against the server's; flagged beyond
  ``max_clock_skew_s``.
- ``short_loaded``: fewer units were loaded at the depot than the order has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from oms_core import orders
from oms_core.errors import InvalidOrder, Problem
from oms_core.execution import followup, perfect
from oms_core.execution.actions import Action
from oms_core.execution.arrival import record_arrival
from oms_core.execution.driver import FINAL, ensure_started, own_order
from oms_core.execution.reasons import REASONS, needs_notes
from oms_core.model import Order
from oms_core.states import OrderState, PaymentState
from oms_core.verify import haversine_km

__all__ = ["EpodIn", "EpodRules", "LineOutcome", "deliver"]

Conn = psycopg.Connection[Any]
S = OrderState
VEHICLE_FIX_MAX_AGE = timedelta(minutes=10)
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class LineOutcome:
    """What happened to one order line: units handed over, units found damaged."""

    line_no: int
    delivered_qty: int
    damaged_qty: int = 0


@dataclass(frozen=True, slots=True)
class EpodIn:
    """The proof as the driver recorded it; files are SHA-256s of uploaded images."""

    outcome: str  # delivered | partially_delivered | failed
    lines: tuple[LineOutcome, ...] = ()
    recipient_name: str = ""
    signature: str | None = None
    photos: tuple[str, ...] = ()
    notes: str = ""
    reason_code: str | None = None
    cod_collected: Decimal | None = None


@dataclass(frozen=True, slots=True)
class EpodRules:
    """The checks' thresholds (defaults as in menara.settings)."""

    signature_required: bool = True
    max_distance_m: float = 250.0
    max_clock_skew_s: float = 300.0
    redelivery_after: timedelta = field(default=timedelta(days=1))


def deliver(
    conn: Conn, action: Action, order_id: int, epod: EpodIn, rules: EpodRules
) -> dict[str, Any]:
    """Record the outcome of ``order_id`` with its ePOD; returns the answer for the phone."""
    stop_id, trip_id = own_order(conn, order_id, action.driver_id)
    # Locks go trip, stop, order, as the control tower takes them (no deadlock).
    state = orders.get_order(conn, order_id).state
    if state in FINAL or state == S.COMPLETED:
        raise InvalidOrder(
            [Problem("already_recorded", f"order {order_id} already has an outcome")]
        )
    ensure_started(conn, trip_id, action)
    record_arrival(conn, stop_id, action.at, "driver", actor=action.actor)
    order = orders.get_order(conn, order_id, for_update=True)
    if order.state != S.ARRIVED:  # someone else recorded it meanwhile
        raise InvalidOrder(
            [Problem("already_recorded", f"order {order.tracking_number} is {order.state}")]
        )
    delivered, damaged, accounted = _lines(order, epod)
    _check(conn, order, epod, delivered, rules)
    orders.transition(
        conn, order_id, epod.outcome, actor=action.actor,
        reason=epod.reason_code or "", delivered=delivered,
    )  # fmt: skip
    collected = epod.cod_collected is not None and epod.cod_collected > 0
    if collected and order.payment_state == PaymentState.COD_PENDING:
        orders.set_payment(conn, order_id, PaymentState.COD_COLLECTED, actor=action.actor,
                               reason=f"{epod.cod_collected} collected on delivery")  # fmt: skip
    checks = _verify(conn, action, order, stop_id, trip_id, epod, accounted, rules)
    epod_id = _store(conn, action, order_id, stop_id, trip_id, epod, delivered, damaged, checks)
    assessment = _judge(conn, order, stop_id, epod_id, action.at, delivered, damaged,
                        epod.cod_collected)  # fmt: skip
    follow = None
    if epod.outcome != S.DELIVERED:
        follow = followup.create(conn, order, delivered, epod.reason_code or "other",
                                 actor=action.actor, after=rules.redelivery_after)  # fmt: skip
    return {
        "order_id": order_id,
        "state": epod.outcome,
        "epod_id": epod_id,
        "needs_review": checks["needs_review"],
        "checks": checks,
        "perfect": assessment.perfect,
        "follow_up_order_id": follow,
    }


def _lines(order: Order, epod: EpodIn) -> tuple[dict[int, int], dict[int, int], bool]:
    """Delivered and damaged units per line, and whether every line is accounted for.
    Omitted lines are all delivered for ``delivered`` and none for the other outcomes; a
    partial delivery must name each line (one it leaves out is flagged)."""
    given = {ln.line_no: ln for ln in epod.lines}
    problems = [
        Problem("bad_line", f"order {order.tracking_number} has no line {n}")
        for n in given
        if n not in {ln.line_no for ln in order.lines}
    ]
    if len(given) != len(epod.lines):
        problems.append(Problem("bad_line", "a line is listed twice"))
    full = epod.outcome == S.DELIVERED
    delivered = {
        ln.line_no: given[ln.line_no].delivered_qty if ln.line_no in given else ln.qty * full
        for ln in order.lines
    }
    damaged = {
        ln.line_no: given[ln.line_no].damaged_qty for ln in order.lines if ln.line_no in given
    }
    problems += [
        Problem("bad_quantity", f"line {ln.line_no}: damaged {damaged[ln.line_no]} of {ln.qty}")
        for ln in order.lines
        if not 0 <= damaged.get(ln.line_no, 0) <= ln.qty
    ]
    if problems:
        raise InvalidOrder(problems)
    nothing = epod.outcome == S.FAILED  # a failed attempt accounts for every line: none
    return delivered, damaged, full or nothing or all(ln.line_no in given for ln in order.lines)


def _check(
    conn: Conn, order: Order, epod: EpodIn, delivered: dict[int, int], rules: EpodRules
) -> None:
    """Refuse an ePOD that contradicts itself or the order; nothing is written."""
    problems: list[Problem] = []
    handed_over = epod.outcome != S.FAILED
    if epod.outcome not in (S.DELIVERED, S.PARTIALLY_DELIVERED, S.FAILED):
        problems.append(
            Problem("bad_outcome", "outcome is delivered, partially_delivered or failed")
        )
    if epod.outcome == S.DELIVERED and epod.reason_code is not None:
        problems.append(Problem("reason_not_allowed", "a full delivery has no reason code"))
    if epod.outcome != S.DELIVERED:
        if epod.reason_code not in REASONS:
            problems.append(
                Problem("reason_required", f"give a reason: one of {', '.join(REASONS)}")
            )
        elif needs_notes(epod.reason_code) and not epod.notes.strip():
            problems.append(Problem("notes_required", "reason 'other' needs a note saying what"))
    if epod.outcome == S.FAILED and any(delivered.values()):
        problems.append(Problem("bad_quantity", "a failed delivery delivers nothing"))
    if handed_over and not epod.recipient_name.strip():
        problems.append(Problem("recipient_required", "write who received the goods"))
    if handed_over and rules.signature_required and epod.signature is None:
        problems.append(Problem("signature_required", "the recipient must sign"))
    cod = order.payment_method == "cod"
    if cod and handed_over and epod.cod_collected is None:
        problems.append(Problem("cod_required", "enter the cash collected (0 if none)"))
    if not cod and epod.cod_collected not in (None, Decimal(0)):
        problems.append(Problem("cod_not_due", "this order is prepaid: collect no cash"))
    files = [f for f in (epod.signature, *epod.photos) if f is not None]
    known = {
        r[0] for r in conn.execute("SELECT sha256 FROM files WHERE sha256 = ANY(%s)", (files,))
    }
    problems += [
        Problem("unknown_file", f"file {f[:12]}… was not uploaded: upload it first")
        for f in files
        if f not in known
    ]
    if problems:
        raise InvalidOrder(problems)


def _verify(
    conn: Conn,
    action: Action,
    order: Order,
    stop_id: int,
    trip_id: int,
    epod: EpodIn,
    accounted: bool,
    rules: EpodRules,
) -> dict[str, Any]:
    stop = conn.execute("SELECT lat, lon FROM stops WHERE id = %s", (stop_id,)).fetchone()
    assert stop is not None  # own_order found it in this transaction
    phone = None
    if action.lat is not None and action.lon is not None:
        phone = round(1000 * haversine_km(stop[0], stop[1], action.lat, action.lon), 1)
    fix = conn.execute(
        "SELECT p.lat, p.lon, p.fix_time FROM trips t JOIN vehicles v ON v.id = t.vehicle_id"
        " JOIN positions p ON p.device_id = v.tracker_device_id WHERE t.id = %s"
        " AND p.fix_time <= %s AND p.fix_time >= %s ORDER BY p.fix_time DESC LIMIT 1",
        (trip_id, action.at, action.at - VEHICLE_FIX_MAX_AGE),
    ).fetchone()
    vehicle = (
        None if fix is None else round(1000 * haversine_km(stop[0], stop[1], fix[0], fix[1]), 1)
    )
    short = conn.execute(
        "SELECT count(*) FROM order_lines WHERE order_id = %s AND loaded_qty < qty",
        (order.id,),
    ).fetchone()
    skew = action.clock_skew_s
    checks: dict[str, Any] = {
        "phone_distance_m": phone,
        "vehicle_distance_m": vehicle,
        "vehicle_fix_at": None if fix is None else fix[2].isoformat(),
        "max_distance_m": rules.max_distance_m,
        "in_window": order.window_start <= action.at <= order.window_end,
        "lines_accounted": accounted,
        "signature_required": rules.signature_required and epod.outcome != S.FAILED,
        "signature_present": epod.signature is not None,
        "clock_skew_s": None if skew is None else round(skew, 1),
        "short_loaded": bool(short and short[0]),
    }
    flags = [
        name
        for name, bad in (
            ("far_from_stop", any(d is not None and d > rules.max_distance_m
                                  for d in (phone, vehicle))),
            ("no_position", phone is None and vehicle is None),
            ("outside_window", not checks["in_window"]),
            ("lines_unaccounted", not accounted),
            ("signature_missing",
             checks["signature_required"] and not checks["signature_present"]),
            ("clock_skewed", skew is not None and abs(skew) > rules.max_clock_skew_s),
            ("short_loaded", checks["short_loaded"]),
        )
        if bad
    ]  # fmt: skip
    return {**checks, "flags": flags, "needs_review": bool(flags)}


def _store(
    conn: Conn,
    action: Action,
    order_id: int,
    stop_id: int,
    trip_id: int,
    epod: EpodIn,
    delivered: dict[int, int],
    damaged: dict[int, int],
    checks: dict[str, Any],
) -> int:
    row = conn.execute(
        "INSERT INTO epods (order_id, action_id, trip_id, stop_id, driver_id, outcome,"
        " reason_code, recipient_name, notes, signature_sha256, cod_collected, at, lat, lon,"
        " accuracy_m, checks, needs_review)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (
            order_id, action.id, trip_id, stop_id, action.driver_id, epod.outcome,
            epod.reason_code, epod.recipient_name.strip(), epod.notes.strip(), epod.signature,
            None if epod.cod_collected is None else epod.cod_collected.quantize(_CENT),
            action.at, action.lat, action.lon, action.accuracy_m, Jsonb(checks),
            checks["needs_review"],
        ),
    ).fetchone()  # fmt: skip
    assert row is not None  # INSERT … RETURNING returns the row
    epod_id = int(row[0])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO epod_lines (epod_id, line_no, delivered_qty, damaged_qty)"
            " VALUES (%s, %s, %s, %s)",
            [(epod_id, n, q, damaged.get(n, 0)) for n, q in sorted(delivered.items())],
        )
        cur.executemany(
            "INSERT INTO epod_photos (epod_id, seq, sha256) VALUES (%s, %s, %s)",
            [(epod_id, i, sha) for i, sha in enumerate(dict.fromkeys(epod.photos), 1)],
        )
    return epod_id


def _judge(
    conn: Conn,
    order: Order,
    stop_id: int,
    epod_id: int,
    handover: datetime,
    delivered: dict[int, int],
    damaged: dict[int, int],
    cod_collected: Decimal | None,
) -> perfect.Assessment:
    """The perfect-delivery row of the order, from the stop's first arrival."""
    with conn.cursor(row_factory=dict_row) as cur:
        stop = cur.execute("SELECT actual_arrival FROM stops WHERE id = %s", (stop_id,)).fetchone()
    arrival: datetime | None = None if stop is None else stop["actual_arrival"]
    lines: Sequence[perfect.Invoiced] = [
        perfect.Invoiced(ln.line_no, ln.qty, ln.unit_price) for ln in order.lines
    ]
    a = perfect.assess(
        lines=lines,
        invoice_number=order.invoice_number,
        invoice_total=order.total_amount,
        window=(order.window_start, order.window_end),
        arrival=arrival,
        handover=handover,
        delivered=delivered,
        damaged=damaged,
        cod_collected=cod_collected,
        cash_on_delivery=order.payment_method == "cod",
    )
    conn.execute(
        "INSERT INTO perfect_deliveries (order_id, epod_id, on_time, on_time_reason, in_full,"
        " in_full_reason, damage_free, damage_reason, documents_accurate, documents_reason,"
        " arrival, window_start, window_end)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            order.id, epod_id, a.on_time, a.on_time_reason, a.in_full, a.in_full_reason,
            a.damage_free, a.damage_reason, a.documents_accurate, a.documents_reason,
            arrival, order.window_start, order.window_end,
        ),
    )  # fmt: skip
    return a
