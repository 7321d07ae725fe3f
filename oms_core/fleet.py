"""Fleet records: vehicles, drivers and which driver drives which vehicle on a day.

The planner reads these (``dispatch.load_day``): a vehicle is planned on a day only when
a driver is assigned to it, and its shift is that driver's shift inside depot hours.
The uniqueness rules (one vehicle per driver a day, one driver per vehicle a day) are
table constraints; a breach becomes ``FleetConflict`` with the rule in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import class_row

from oms_core.errors import NotFound, OmsError

__all__ = [
    "Assignment",
    "Driver",
    "FleetConflict",
    "Vehicle",
    "add_driver",
    "add_vehicle",
    "assign",
    "assignments",
    "get_driver",
    "get_vehicle",
    "unassign",
    "update_vehicle",
]

Conn = psycopg.Connection[Any]


class FleetConflict(OmsError):
    """A fleet change would break a uniqueness rule; nothing was changed."""

    code = "fleet_conflict"


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A stored vehicle; capacities are what the planner may load."""

    id: int
    plate: str
    type: str
    capacity_kg: Decimal
    capacity_m3: Decimal
    tracker_device_id: str | None
    max_speed_kmh: float | None
    depot_id: int | None


@dataclass(frozen=True, slots=True)
class Driver:
    """A stored driver; the shift is local time at the depot they drive from."""

    id: int
    name: str
    phone: str | None
    shift_start: time
    shift_end: time
    phone_device_id: str | None


@dataclass(frozen=True, slots=True)
class Assignment:
    """Driver ``driver_id`` drives vehicle ``vehicle_id`` on ``day``."""

    driver_id: int
    vehicle_id: int
    day: date


def add_vehicle(
    conn: Conn,
    *,
    plate: str,
    capacity_kg: Decimal | float,
    capacity_m3: Decimal | float,
    depot_id: int | None,
    type: str = "van",
    tracker_device_id: str | None = None,
    max_speed_kmh: float | None = None,
) -> Vehicle:
    """Store a vehicle; a plate or tracker already in use raises ``FleetConflict``."""
    try:
        with conn.transaction(), conn.cursor(row_factory=class_row(Vehicle)) as cur:
            row = cur.execute(
                "INSERT INTO vehicles (plate, type, capacity_kg, capacity_m3,"
                " tracker_device_id, max_speed_kmh, depot_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (plate, type, capacity_kg, capacity_m3, tracker_device_id, max_speed_kmh, depot_id),
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise FleetConflict(f"plate {plate} or tracker {tracker_device_id} is taken") from exc
    assert row is not None  # INSERT … RETURNING always returns the row
    return row


def add_driver(
    conn: Conn,
    *,
    name: str,
    shift_start: time = time(8),
    shift_end: time = time(17),
    phone: str | None = None,
    phone_device_id: str | None = None,
) -> Driver:
    """Store a driver (default shift 08:00–17:00); a phone device in use raises
    ``FleetConflict``."""
    try:
        with conn.transaction(), conn.cursor(row_factory=class_row(Driver)) as cur:
            row = cur.execute(
                "INSERT INTO drivers (name, phone, shift_start, shift_end, phone_device_id)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING *",
                (name, phone, shift_start, shift_end, phone_device_id),
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise FleetConflict(f"phone device {phone_device_id} is taken") from exc
    assert row is not None  # INSERT … RETURNING always returns the row
    return row


_CHANGEABLE = ("tracker_device_id", "depot_id", "max_speed_kmh")


def update_vehicle(conn: Conn, vehicle_id: int, changes: dict[str, Any]) -> Vehicle:
    """Set the given fields (tracker, depot, speed limit); ``NotFound`` for an unknown
    vehicle, ``FleetConflict`` for a tracker another vehicle has."""
    fields = [k for k in _CHANGEABLE if k in changes]
    sets = ", ".join(f"{k} = %({k})s" for k in fields) or "plate = plate"
    try:
        with conn.transaction(), conn.cursor(row_factory=class_row(Vehicle)) as cur:
            row = cur.execute(
                f"UPDATE vehicles SET {sets} WHERE id = %(id)s RETURNING *",
                {**{k: changes[k] for k in fields}, "id": vehicle_id},
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        taken = changes.get("tracker_device_id")
        raise FleetConflict(f"tracker {taken} is another vehicle's: unlink it there first") from exc
    if row is None:
        raise NotFound(f"no vehicle {vehicle_id}")
    return row


def get_vehicle(conn: Conn, vehicle_id: int) -> Vehicle:
    """The vehicle or ``NotFound``."""
    with conn.cursor(row_factory=class_row(Vehicle)) as cur:
        row = cur.execute("SELECT * FROM vehicles WHERE id = %s", (vehicle_id,)).fetchone()
    if row is None:
        raise NotFound(f"no vehicle {vehicle_id}")
    return row


def get_driver(conn: Conn, driver_id: int) -> Driver:
    """The driver or ``NotFound``."""
    with conn.cursor(row_factory=class_row(Driver)) as cur:
        row = cur.execute("SELECT * FROM drivers WHERE id = %s", (driver_id,)).fetchone()
    if row is None:
        raise NotFound(f"no driver {driver_id}")
    return row


def assign(conn: Conn, driver_id: int, vehicle_id: int, day: date) -> Assignment:
    """Put the driver on the vehicle for the day, or raise ``FleetConflict`` (either one
    is already taken that day) / ``NotFound`` (unknown driver or vehicle)."""
    get_driver(conn, driver_id)
    get_vehicle(conn, vehicle_id)
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO driver_assignments (driver_id, vehicle_id, day) VALUES (%s, %s, %s)",
                (driver_id, vehicle_id, day),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise FleetConflict(
            f"on {day} driver {driver_id} already drives a vehicle or vehicle {vehicle_id}"
            " already has a driver"
        ) from exc
    return Assignment(driver_id, vehicle_id, day)


def unassign(conn: Conn, driver_id: int, day: date) -> None:
    """Take the driver off their vehicle for the day; ``NotFound`` if they had none."""
    cur = conn.execute(
        "DELETE FROM driver_assignments WHERE driver_id = %s AND day = %s", (driver_id, day)
    )
    if cur.rowcount != 1:
        raise NotFound(f"driver {driver_id} has no vehicle on {day}")


def assignments(conn: Conn, day: date) -> list[Assignment]:
    """The day's assignments, by vehicle."""
    rows = conn.execute(
        "SELECT driver_id, vehicle_id, day FROM driver_assignments WHERE day = %s"
        " ORDER BY vehicle_id",
        (day,),
    ).fetchall()
    return [Assignment(d, v, dy) for d, v, dy in rows]
