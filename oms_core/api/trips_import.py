"""Trips planned in another system: import one as a planned trip, re-order a planned
trip's stops. Both are checked by the planner's independent checker (see
``oms_core.trip_import``); a refusal is a 422 whose details list every rule broken,
each with a stable code."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from aiohttp import web

from oms_core import trip_import
from oms_core.api.auth import Role
from oms_core.api.context import CTX, PRINCIPAL, read_json, run
from oms_core.api.errors import ApiError, invalid
from oms_core.api.plans import PLAN_AHEAD_DAYS, one_trip
from oms_core.api.schema_check import FieldProblem, parse_date, parse_datetime
from oms_core.api.schema_parts import id_schema
from oms_core.api.spec import PREFIX, Operation, Param, parse_params
from oms_core.planning.matrix import RoutingUnavailable

__all__ = ["OPERATIONS"]

Conn = psycopg.Connection[Any]
_WRITE = frozenset({Role.DISPATCHER})
_ID_SCHEMA = id_schema()
_ERR = "Error"
# Codes a refused trip's details may carry (the checker's rules, then the setting's).
_CODES = (
    "window_missed, over_capacity, outside_shift, outside_depot_hours, too_fast,"
    " service_too_short, mixed_stop, plan_check_failed, unknown_vehicle, vehicle_has_no_depot,"
    " vehicle_other_depot, no_driver, unknown_driver, vehicle_taken,"
    " driver_taken, vehicle_busy, driver_busy, shift_outside_depot_hours, duplicate_order,"
    " unknown_order, order_not_reserved, order_other_depot, no_coordinates,"
    " order_not_that_day, times_incomplete, stops_mismatch"
)


def _time(value: Any) -> datetime | None:
    return None if value is None else parse_datetime(value)


def _day(request: web.Request, text: str) -> date:
    day = parse_date(text)
    assert day is not None  # the schema checked the format
    today = request.app[CTX].now().date()
    if not today - timedelta(days=1) <= day <= today + timedelta(days=PLAN_AHEAD_DAYS):
        message = f"from yesterday to {PLAN_AHEAD_DAYS} days ahead"
        raise invalid([FieldProblem("invalid_value", "/date", message)])
    return day


def _line(body: dict[str, Any]) -> list[list[float]] | None:
    if "route_geometry" not in body:
        return None
    points = body["route_geometry"]["coordinates"]
    bad = [i for i, p in enumerate(points) if not -90 <= p[1] <= 90]
    if bad:
        at = f"/route_geometry/coordinates/{bad[0]}/1"
        raise invalid([FieldProblem("invalid_value", at, "latitude must be in [-90, 90]")])
    return [[float(p[0]), float(p[1])] for p in points]


def _trip(request: web.Request, body: dict[str, Any]) -> trip_import.ImportedTrip:
    stops = tuple(
        trip_import.ImportedStop(
            tuple(s["order_ids"]),
            _time(s.get("planned_arrival")),
            _time(s.get("planned_departure")),
        )
        for s in body["stops"]
    )
    return trip_import.ImportedTrip(
        vehicle_id=body["vehicle_id"],
        day=_day(request, body["date"]),
        stops=stops,
        driver_id=body.get("driver_id"),
        depot_id=body.get("depot_id"),
        departure=_time(body.get("planned_departure")),
        back=_time(body.get("planned_return")),
        geometry=_line(body),
    )


async def import_trip(request: web.Request) -> web.Response:
    trip = _trip(request, await read_json(request, "TripImport"))
    ctx, actor = request.app[CTX], request[PRINCIPAL].name

    def store(conn: Conn) -> dict[str, Any]:
        trip_id = trip_import.import_trip(
            conn, trip, actor=actor, matrix=ctx.matrix, routes=ctx.routes
        )
        return one_trip(conn, trip_id)

    try:
        stored = await run(request, store)
    except RoutingUnavailable as exc:
        raise ApiError(503, exc.code, f"{exc}; nothing was stored") from exc
    location = f"{PREFIX}/trips/{stored['id']}"
    return web.json_response(stored, status=201, headers={"Location": location})


async def reorder_stops(request: web.Request) -> web.Response:
    trip_id = parse_params(request, _OPS["reorderStops"])["id"]
    stop_ids = (await read_json(request, "StopOrder"))["stop_ids"]
    ctx = request.app[CTX]

    def move(conn: Conn) -> dict[str, Any]:
        trip_import.reorder_stops(conn, trip_id, stop_ids, matrix=ctx.matrix, routes=ctx.routes)
        return one_trip(conn, trip_id)

    try:
        return web.json_response(await run(request, move))
    except RoutingUnavailable as exc:
        raise ApiError(503, exc.code, f"{exc}; nothing was changed") from exc


OPERATIONS = (
    Operation(
        "importTrip", "POST", "/trips", import_trip,
        "Store a trip planned elsewhere (checked like the planner's own)", _WRITE,
        {201: ("the stored planned trip", "Trip"),
         409: ("an order or the assignment changed while storing: send it again", _ERR),
         503: ("the configured OSRM server failed (routing_unavailable)", _ERR)},
        body="TripImport",
        description="The stops are visited in the order sent; every order must be reserved"
        " at the trip's depot with a window on that day. Without times the stops are timed"
        " as the planner times them; with times (all of them) the times are checked against"
        " the travel times the planner uses. The vehicle's driver that day is the default"
        " driver; a driver with no vehicle that day is assigned to it. Refused (422) with a"
        f" detail per broken rule, coded: {_CODES}.",
    ),
    Operation(
        "reorderStops", "PUT", "/trips/{id}/stops/order", reorder_stops,
        "Re-order a planned trip's stops (before dispatch); times are recomputed", _WRITE,
        {200: ("the re-ordered trip", "Trip"), 404: ("no such trip", _ERR),
         409: ("the trip is dispatched or later (trip_not_planned)", _ERR),
         503: ("the configured OSRM server failed (routing_unavailable)", _ERR)},
        body="StopOrder", params=(Param("id", "path", _ID_SCHEMA, "trip id"),),
        description="Send every stop id of the trip once, in the new order. The trip is"
        " re-timed as the planner times a route and checked again; a new order that breaks"
        " a window, the shift or the depot hours is refused (422, trip_infeasible).",
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
