"""Fleet endpoints: vehicles and drivers (list, create, read) and daily assignments.

Lists are keyset pages by ascending id, with the parameters of ``GET /orders``
(``limit``, ``cursor`` = the last page's ``next_cursor``): a page stays correct while
records are added, which offset paging does not.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, time
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import psycopg
from aiohttp import web
from psycopg.rows import class_row

from oms_core import devices, fleet
from oms_core.api.auth import Role
from oms_core.api.context import read_json, run
from oms_core.api.errors import ApiError, invalid
from oms_core.api.schema_check import FieldProblem, parse_date
from oms_core.api.schemas import MAX_ID
from oms_core.api.spec import PAGE_PARAMS, PREFIX, Operation, Param, parse_params

__all__ = ["OPERATIONS", "keyset_page"]

Conn = psycopg.Connection[Any]


class _Keyed(Protocol):
    @property
    def id(self) -> int: ...


T = TypeVar("T", bound=_Keyed)
_READ = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_WRITE = frozenset({Role.DISPATCHER})
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_ERR = "Error"


def keyset_page(
    conn: Conn, cls: type[T], sql: str, params: dict[str, Any], q: dict[str, Any]
) -> tuple[list[T], str | None]:
    """One page of ``sql`` (a SELECT over a table with ``id``, its filters as named
    parameters) after ``q``'s cursor, by id; the cursor of the next page or None."""
    limit, cursor = q.get("limit", 50), q.get("cursor")
    where = " AND id > %(cursor)s" if cursor is not None else ""
    args = {**params, "cursor": None if cursor is None else int(cursor), "limit": limit + 1}
    with conn.cursor(row_factory=class_row(cls)) as cur:
        rows = cur.execute(sql + where + " ORDER BY id LIMIT %(limit)s", args).fetchall()
    page = rows[:limit]
    return page, str(page[-1].id) if len(rows) > limit else None


def _json(record: fleet.Vehicle | fleet.Driver) -> dict[str, Any]:
    out = asdict(record)
    for key, value in out.items():
        if isinstance(value, Decimal):
            out[key] = str(value)
        elif isinstance(value, time):
            out[key] = value.isoformat()
    return out


def _invalid(field: str, message: str) -> ApiError:
    return invalid([FieldProblem("invalid_value", field, message)])


def _check_depot(conn: Conn, depot_id: int | None) -> None:
    if (
        depot_id is not None
        and not conn.execute("SELECT 1 FROM depots WHERE id = %s", (depot_id,)).fetchone()
    ):
        raise _invalid("/depot_id", f"no depot {depot_id}")


async def create_vehicle(request: web.Request) -> web.Response:
    body = await read_json(request, "VehicleCreate")
    kg, m3 = Decimal(body["capacity_kg"]), Decimal(body["capacity_m3"])
    for name, value in (("capacity_kg", kg), ("capacity_m3", m3)):
        if value <= 0:
            raise _invalid(f"/{name}", "must be more than 0")

    def add(conn: Conn) -> fleet.Vehicle:
        _check_depot(conn, body.get("depot_id"))
        with conn.transaction():  # the vehicle and its tracker's registration, or neither
            vehicle = fleet.add_vehicle(
                conn,
                plate=body["plate"],
                type=body.get("type", "van"),
                capacity_kg=kg,
                capacity_m3=m3,
                tracker_device_id=body.get("tracker_device_id"),
                max_speed_kmh=body.get("max_speed_kmh"),
                depot_id=body.get("depot_id"),
            )
            if vehicle.tracker_device_id is not None:
                devices.track_vehicle(
                    conn, vehicle.id, vehicle.tracker_device_id, body.get("tracker_protocol")
                )
        return vehicle

    vehicle = await run(request, add)
    location = f"{PREFIX}/vehicles/{vehicle.id}"
    return web.json_response(_json(vehicle), status=201, headers={"Location": location})


async def update_vehicle(request: web.Request) -> web.Response:
    vid = parse_params(request, _OPS["updateVehicle"])["id"]
    body = await read_json(request, "VehicleUpdate")

    def change(conn: Conn) -> fleet.Vehicle:
        _check_depot(conn, body.get("depot_id"))
        with conn.transaction():  # the vehicle and its tracker's registration, or neither
            vehicle = fleet.update_vehicle(conn, vid, body)
            if "tracker_device_id" in body:
                devices.track_vehicle(
                    conn, vid, vehicle.tracker_device_id, body.get("tracker_protocol")
                )
        return vehicle

    return web.json_response(_json(await run(request, change)))


async def list_vehicles(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listVehicles"])
    sql = "SELECT * FROM vehicles WHERE (%(d)s::bigint IS NULL OR depot_id = %(d)s)"
    page, nxt = await run(
        request, lambda c: keyset_page(c, fleet.Vehicle, sql, {"d": q.get("depot_id")}, q)
    )
    return web.json_response({"vehicles": [_json(v) for v in page], "next_cursor": nxt})


async def get_vehicle(request: web.Request) -> web.Response:
    vid = parse_params(request, _OPS["getVehicle"])["id"]
    return web.json_response(_json(await run(request, lambda c: fleet.get_vehicle(c, vid))))


def _clock(body: dict[str, Any], key: str, default: time) -> time:
    return time.fromisoformat(body[key]) if key in body else default


async def create_driver(request: web.Request) -> web.Response:
    body = await read_json(request, "DriverCreate")
    start, end = _clock(body, "shift_start", time(8)), _clock(body, "shift_end", time(17))
    if end <= start:
        raise _invalid("/shift_end", "the shift must end after it starts (same day)")
    driver = await run(
        request,
        lambda c: fleet.add_driver(
            c,
            name=body["name"],
            shift_start=start,
            shift_end=end,
            phone=body.get("phone"),
            phone_device_id=body.get("phone_device_id"),
        ),
    )
    location = f"{PREFIX}/drivers/{driver.id}"
    return web.json_response(_json(driver), status=201, headers={"Location": location})


async def list_drivers(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listDrivers"])
    sql = "SELECT * FROM drivers WHERE true"
    page, nxt = await run(request, lambda c: keyset_page(c, fleet.Driver, sql, {}, q))
    return web.json_response({"drivers": [_json(d) for d in page], "next_cursor": nxt})


async def get_driver(request: web.Request) -> web.Response:
    did = parse_params(request, _OPS["getDriver"])["id"]
    return web.json_response(_json(await run(request, lambda c: fleet.get_driver(c, did))))


async def assign(request: web.Request) -> web.Response:
    body = await read_json(request, "Assignment")
    day: date | None = parse_date(body["day"])
    assert day is not None  # the schema checked the format
    made = await run(
        request, lambda c: fleet.assign(c, int(body["driver_id"]), int(body["vehicle_id"]), day)
    )
    out = {"driver_id": made.driver_id, "vehicle_id": made.vehicle_id, "day": made.day.isoformat()}
    location = f"{PREFIX}/drivers/{made.driver_id}"
    return web.json_response(out, status=201, headers={"Location": location})


_ID = (Param("id", "path", _ID_SCHEMA, "record id"),)
OPERATIONS = (
    Operation(
        "listVehicles", "GET", "/vehicles", list_vehicles,
        "List vehicles by id, a page at a time", _READ,
        {200: ("one page of vehicles", "VehicleList")},
        params=(Param("depot_id", "query", _ID_SCHEMA, "only vehicles of this depot"),
                *PAGE_PARAMS),
    ),
    Operation(
        "createVehicle", "POST", "/vehicles", create_vehicle, "Add a vehicle", _WRITE,
        {201: ("the stored vehicle", "Vehicle"),
         409: ("the plate or tracker is already in use", _ERR)},
        body="VehicleCreate",
        description="A tracker_device_id is registered as a device linked to the vehicle"
        " (protocol tracker_protocol) in the same transaction, so ingest accepts its data.",
    ),
    Operation(
        "getVehicle", "GET", "/vehicles/{id}", get_vehicle, "Read a vehicle", _READ,
        {200: ("the vehicle", "Vehicle"), 404: ("no such vehicle", _ERR)}, params=_ID,
    ),
    Operation(
        "updateVehicle", "PATCH", "/vehicles/{id}", update_vehicle,
        "Change a vehicle's tracker, depot or speed limit", _WRITE,
        {200: ("the changed vehicle", "Vehicle"), 404: ("no such vehicle", _ERR),
         409: ("the tracker is another vehicle's", _ERR)},
        body="VehicleUpdate", params=_ID,
        description="A new tracker_device_id is registered as a device linked to the"
        " vehicle (with tracker_protocol), in the same transaction; null unlinks it.",
    ),
    Operation(
        "listDrivers", "GET", "/drivers", list_drivers,
        "List drivers by id, a page at a time", _READ,
        {200: ("one page of drivers", "DriverList")}, params=PAGE_PARAMS,
    ),
    Operation(
        "createDriver", "POST", "/drivers", create_driver, "Add a driver", _WRITE,
        {201: ("the stored driver", "Driver"),
         409: ("the phone device is already in use", _ERR)},
        body="DriverCreate",
    ),
    Operation(
        "getDriver", "GET", "/drivers/{id}", get_driver, "Read a driver", _READ,
        {200: ("the driver", "Driver"), 404: ("no such driver", _ERR)}, params=_ID,
    ),
    Operation(
        "createAssignment", "POST", "/assignments", assign,
        "Put a driver on a vehicle for a day (the planner uses only driven vehicles)", _WRITE,
        {201: ("the assignment", "Assignment"), 404: ("no such driver or vehicle", _ERR),
         409: ("the driver or the vehicle is already assigned that day", _ERR)},
        body="Assignment",
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
