"""The constraints of the fleet and trip tables that no code path may break."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from oms_core import orders
from tests.oms_core import NOW, World, one, order_in, seed

pytestmark = pytest.mark.db
Conn = psycopg.Connection[Any]
DAY = date(2026, 6, 2)


@pytest.fixture
def conn(clean_db: str) -> Iterator[tuple[Conn, World]]:
    w = seed(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as c:
        yield c, w


def _vehicle(conn: Conn, plate: str) -> int:
    return one(
        conn,
        "INSERT INTO vehicles (plate, capacity_kg, capacity_m3, tracker_device_id)"
        " VALUES (%s, 1000, 8, %s)",
        (plate, f"imei-{plate}"),
    )


def _trip(conn: Conn, w: World, vehicle: int, driver: int) -> int:
    return one(
        conn,
        "INSERT INTO trips (vehicle_id, driver_id, depot_id, day, planned_departure,"
        " planned_return, route_geometry) VALUES (%s, %s, %s, %s, %s, %s,"
        " '[[4.9, 52.37], [4.9, 52.388]]')",
        (vehicle, driver, w.depot_id, DAY, NOW, NOW + timedelta(hours=8)),
    )


def _stop(conn: Conn, trip: int, seq: int, at: datetime) -> int:
    return one(
        conn,
        "INSERT INTO stops (trip_id, seq, lat, lon, planned_arrival, planned_departure,"
        " service_time_s) VALUES (%s, %s, 52.388, 4.9, %s, %s, 300)",
        (trip, seq, at, at + timedelta(minutes=5)),
    )


def test_a_driver_and_a_vehicle_are_paired_once_a_day(conn: tuple[Conn, World]) -> None:
    c, _ = conn
    v1, v2 = _vehicle(c, "AB-1"), _vehicle(c, "AB-2")
    d1 = one(c, "INSERT INTO drivers (name) VALUES ('Dee')")
    d2 = one(c, "INSERT INTO drivers (name) VALUES ('Eve')")
    c.execute("INSERT INTO driver_assignments VALUES (%s, %s, %s)", (d1, v1, DAY))
    with pytest.raises(psycopg.errors.UniqueViolation):
        c.execute("INSERT INTO driver_assignments VALUES (%s, %s, %s)", (d1, v2, DAY))
    with pytest.raises(psycopg.errors.UniqueViolation):
        c.execute("INSERT INTO driver_assignments VALUES (%s, %s, %s)", (d2, v1, DAY))
    c.execute("INSERT INTO driver_assignments VALUES (%s, %s, %s)", (d1, v2, DAY + timedelta(1)))
    assert c.execute("SELECT count(*) FROM driver_assignments").fetchone() == (2,)


def test_fleet_values_are_checked(conn: tuple[Conn, World]) -> None:
    c, _ = conn
    _vehicle(c, "AB-1")
    with pytest.raises(psycopg.errors.UniqueViolation):
        _vehicle(c, "AB-1")
    with pytest.raises(psycopg.errors.CheckViolation):
        c.execute("INSERT INTO vehicles (plate, capacity_kg, capacity_m3) VALUES ('X', 0, 1)")
    with pytest.raises(psycopg.errors.CheckViolation):
        c.execute(
            "INSERT INTO drivers (name, shift_start, shift_end) VALUES ('N', '17:00', '08:00')"
        )


def test_stops_are_ordered_and_go_with_their_trip(conn: tuple[Conn, World]) -> None:
    c, w = conn
    trip = _trip(c, w, _vehicle(c, "AB-1"), one(c, "INSERT INTO drivers (name) VALUES ('Dee')"))
    s1 = _stop(c, trip, 1, NOW + timedelta(hours=1))
    with pytest.raises(psycopg.errors.UniqueViolation):
        _stop(c, trip, 1, NOW + timedelta(hours=2))
    oid = orders.create_order(c, order_in(w)).id
    c.execute("INSERT INTO stop_orders VALUES (%s, %s)", (s1, oid))
    row = c.execute("SELECT route_geometry FROM trips WHERE id = %s", (trip,)).fetchone()
    assert row == ([[4.9, 52.37], [4.9, 52.388]],)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        c.execute("DELETE FROM orders WHERE id = %s", (oid,))  # an order on a stop stays
    c.execute("DELETE FROM trips WHERE id = %s", (trip,))
    assert c.execute("SELECT count(*) FROM stops").fetchone() == (0,)
    assert c.execute("SELECT count(*) FROM stop_orders").fetchone() == (0,)
    assert orders.get_order(c, oid).state == "draft"


def test_a_stop_cannot_leave_before_it_arrives(conn: tuple[Conn, World]) -> None:
    c, w = conn
    trip = _trip(c, w, _vehicle(c, "AB-1"), one(c, "INSERT INTO drivers (name) VALUES ('Dee')"))
    with pytest.raises(psycopg.errors.CheckViolation):
        c.execute(
            "INSERT INTO stops (trip_id, seq, lat, lon, planned_arrival, planned_departure)"
            " VALUES (%s, 1, 52, 4, %s, %s)",
            (trip, NOW, NOW - timedelta(minutes=1)),
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        c.execute(
            "INSERT INTO trips (vehicle_id, depot_id, day, planned_departure, planned_return,"
            " route_geometry) VALUES (%s, %s, %s, %s, %s, '{}')",
            (_vehicle(c, "AB-2"), w.depot_id, DAY, NOW, NOW),
        )


def test_devices_can_still_be_truncated(conn: tuple[Conn, World]) -> None:
    """Vehicles name their tracker by id without a foreign key (see 0002_oms.sql)."""
    c, _ = conn
    c.execute("INSERT INTO devices (device_id) VALUES ('imei-AB-1')")
    _vehicle(c, "AB-1")
    c.execute("TRUNCATE devices")
    assert c.execute("SELECT tracker_device_id FROM vehicles").fetchone() == ("imei-AB-1",)
