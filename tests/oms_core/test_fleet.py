"""Fleet records against the real database: vehicles, drivers, one pairing a day."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from oms_core import fleet
from oms_core.errors import NotFound
from tests.oms_core import World

pytestmark = pytest.mark.db
Conn = psycopg.Connection[Any]
DAY = date(2026, 6, 2)


def test_vehicles_and_drivers_are_stored_and_read_back(world: World, conn: Conn) -> None:
    van = fleet.add_vehicle(
        conn,
        plate="AB-12-CD",
        capacity_kg=Decimal("750.5"),
        capacity_m3=6,
        depot_id=world.depot_id,
        tracker_device_id="T1",
        max_speed_kmh=90.0,
    )
    assert fleet.get_vehicle(conn, van.id) == van
    assert (van.plate, van.type, van.capacity_kg, van.capacity_m3) == (
        "AB-12-CD",
        "van",
        Decimal("750.50"),
        Decimal("6.000"),
    )
    driver = fleet.add_driver(conn, name="Bo", phone="+31 6 1234")
    assert fleet.get_driver(conn, driver.id) == driver
    assert (driver.shift_start, driver.shift_end) == (time(8), time(17))


def test_plates_and_devices_are_unique(world: World, conn: Conn) -> None:
    fleet.add_vehicle(conn, plate="P1", capacity_kg=100, capacity_m3=1, depot_id=None)
    with pytest.raises(fleet.FleetConflict, match="plate P1"):
        fleet.add_vehicle(conn, plate="P1", capacity_kg=100, capacity_m3=1, depot_id=None)
    fleet.add_driver(conn, name="A", phone_device_id="phone-1")
    with pytest.raises(fleet.FleetConflict, match="phone-1"):
        fleet.add_driver(conn, name="B", phone_device_id="phone-1")
    assert conn.execute("SELECT count(*) FROM vehicles").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM drivers").fetchone() == (1,)


def test_one_vehicle_per_driver_and_one_driver_per_vehicle_a_day(world: World, conn: Conn) -> None:
    v1, v2 = (
        fleet.add_vehicle(conn, plate=p, capacity_kg=100, capacity_m3=1, depot_id=world.depot_id)
        for p in ("V1", "V2")
    )
    d1, d2 = (fleet.add_driver(conn, name=n) for n in ("D1", "D2"))
    assert fleet.assign(conn, d1.id, v1.id, DAY) == fleet.Assignment(d1.id, v1.id, DAY)
    with pytest.raises(fleet.FleetConflict):
        fleet.assign(conn, d1.id, v2.id, DAY)  # the driver already drives V1
    with pytest.raises(fleet.FleetConflict):
        fleet.assign(conn, d2.id, v1.id, DAY)  # V1 already has a driver
    fleet.assign(conn, d1.id, v2.id, date(2026, 6, 3))  # another day is free
    fleet.assign(conn, d2.id, v2.id, DAY)
    assert fleet.assignments(conn, DAY) == [
        fleet.Assignment(d1.id, v1.id, DAY),
        fleet.Assignment(d2.id, v2.id, DAY),
    ]
    fleet.unassign(conn, d1.id, DAY)
    assert fleet.assignments(conn, DAY) == [fleet.Assignment(d2.id, v2.id, DAY)]
    with pytest.raises(NotFound, match=f"driver {d1.id} has no vehicle"):
        fleet.unassign(conn, d1.id, DAY)


def test_unknown_records_are_not_found(world: World, conn: Conn) -> None:
    with pytest.raises(NotFound, match="no vehicle 404"):
        fleet.get_vehicle(conn, 404)
    with pytest.raises(NotFound, match="no driver 404"):
        fleet.get_driver(conn, 404)
    van = fleet.add_vehicle(conn, plate="V", capacity_kg=1, capacity_m3=1, depot_id=None)
    with pytest.raises(NotFound, match="no driver 404"):
        fleet.assign(conn, 404, van.id, DAY)
    assert fleet.assignments(conn, DAY) == []
