"""Depot endpoints: create, change, list and read depots.

A depot is where orders are picked and trips start and end: its coordinates are the
planner's start and end point and the tower's depot zone, its opening hours (local
time in its IANA zone) bound every trip. Stock (``PUT /stock/{depot_id}/{sku}``),
vehicles (``depot_id``) and contacts refer to it; nothing else is needed to plan it.
"""

from __future__ import annotations

from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from aiohttp import web
from psycopg import sql
from psycopg.rows import dict_row

from oms_core.api.auth import Role
from oms_core.api.context import read_json, run
from oms_core.api.errors import ApiError, invalid
from oms_core.api.schema_check import FieldProblem
from oms_core.api.schema_parts import id_schema
from oms_core.api.spec import PREFIX, Operation, Param, parse_params
from oms_core.errors import NotFound

__all__ = ["OPERATIONS"]

Conn = psycopg.Connection[Any]
_READ = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_WRITE = frozenset({Role.DISPATCHER})
_ID_SCHEMA = id_schema()
_COLUMNS = (
    "id, name, lat, lon, to_char(open_time, 'HH24:MI:SS') AS open_time,"
    " to_char(close_time, 'HH24:MI:SS') AS close_time, time_zone"
)
_FIELDS = ("name", "lat", "lon", "open_time", "close_time", "time_zone")
_ERR = "Error"


def _depots(conn: Conn, depot_id: int | None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM depots WHERE %(id)s::bigint IS NULL OR id = %(id)s"
            " ORDER BY id",
            {"id": depot_id},
        ).fetchall()


def _values(body: dict[str, Any]) -> dict[str, Any]:
    """The body's fields as column values; an unknown time zone is the caller's to fix."""
    values = {k: body[k] for k in _FIELDS if k in body}
    for key in ("open_time", "close_time"):
        if key in values:
            values[key] = time.fromisoformat(values[key])
    if "time_zone" in values:
        try:
            ZoneInfo(values["time_zone"])
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise invalid(
                [FieldProblem("invalid_value", "/time_zone", "not an IANA zone: e.g. Asia/Jakarta")]
            ) from exc
    return values


def _write(conn: Conn, statement: sql.Composed, values: dict[str, Any]) -> dict[str, Any] | None:
    """Run an INSERT or UPDATE returning the depot; rule breaches become 409/422."""
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(statement, values).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise ApiError(
            409,
            "depot_name_taken",
            f"a depot is already named {values.get('name')!r}: pick another",
        ) from exc
    except psycopg.errors.CheckViolation as exc:
        raise invalid(
            [FieldProblem("invalid_value", "/close_time", "must be later than open_time")]
        ) from exc


async def create_depot(request: web.Request) -> web.Response:
    values = _values(await read_json(request, "DepotCreate"))
    columns = list(values)
    statement = sql.SQL("INSERT INTO depots ({}) VALUES ({}) RETURNING {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(map(sql.Placeholder, columns)),
        sql.SQL(_COLUMNS),
    )
    row = await run(request, lambda c: _write(c, statement, values))
    assert row is not None  # INSERT … RETURNING always returns the row
    return web.json_response(row, status=201, headers={"Location": f"{PREFIX}/depots/{row['id']}"})


async def update_depot(request: web.Request) -> web.Response:
    depot_id = parse_params(request, _OPS["updateDepot"])["id"]
    values = _values(await read_json(request, "DepotUpdate"))
    sets: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in values
    ]
    statement = sql.SQL("UPDATE depots SET {} WHERE id = %(id)s RETURNING {}").format(
        sql.SQL(", ").join(sets or [sql.SQL("name = name")]), sql.SQL(_COLUMNS)
    )
    row = await run(request, lambda c: _write(c, statement, {**values, "id": depot_id}))
    if row is None:
        raise NotFound(f"no depot {depot_id}")
    return web.json_response(row)


async def list_depots(request: web.Request) -> web.Response:
    return web.json_response({"depots": await run(request, lambda c: _depots(c, None))})


async def get_depot(request: web.Request) -> web.Response:
    depot_id = parse_params(request, _OPS["getDepot"])["id"]
    found = await run(request, lambda c: _depots(c, depot_id))
    if not found:
        raise NotFound(f"no depot {depot_id}")
    return web.json_response(found[0])


_ID = (Param("id", "path", _ID_SCHEMA, "depot id"),)
OPERATIONS = (
    Operation(
        "listDepots", "GET", "/depots", list_depots, "List depots", _READ,
        {200: ("every depot, by id", "DepotList")},
    ),
    Operation(
        "createDepot", "POST", "/depots", create_depot, "Add a depot", _WRITE,
        {201: ("the stored depot", "Depot"), 409: ("the name is taken", _ERR)},
        body="DepotCreate",
        description="Opening hours default to 06:00–22:00 in UTC: give time_zone so they"
        " are the depot's local hours. Then add stock (PUT /stock/{depot_id}/{sku}) and"
        " vehicles with this depot_id, and its orders can be planned.",
    ),
    Operation(
        "getDepot", "GET", "/depots/{id}", get_depot, "Read a depot", _READ,
        {200: ("the depot", "Depot"), 404: ("no such depot", _ERR)}, params=_ID,
    ),
    Operation(
        "updateDepot", "PATCH", "/depots/{id}", update_depot,
        "Change a depot's name, position, opening hours or time zone", _WRITE,
        {200: ("the changed depot", "Depot"), 404: ("no such depot", _ERR),
         409: ("the name is taken", _ERR)},
        body="DepotUpdate", params=_ID,
        description="Only the fields sent change. Trips already planned keep their times:"
        " re-plan the day (POST /plans with replace) to apply new hours.",
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
