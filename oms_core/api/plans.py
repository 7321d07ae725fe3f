"""Plan and trip endpoints: plan a day, read trips, dispatch and start them.

Driver tokens see only their own trips. Another driver's trip answers 404, exactly as a
trip that does not exist, so a driver cannot learn which trip ids are in use.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web

from oms_core import dispatch, trips
from oms_core.api.auth import Principal, Role
from oms_core.api.context import CTX, PRINCIPAL, read_json, run
from oms_core.api.errors import invalid
from oms_core.api.schemas import MAX_ID
from oms_core.api.spec import PREFIX, Operation, Param, parse_params
from oms_core.api.validate import FieldProblem, parse_date
from oms_core.errors import NotFound

__all__ = ["DEFAULT_TIME_LIMIT_S", "OPERATIONS", "PLAN_AHEAD_DAYS", "trip_json"]

DEFAULT_TIME_LIMIT_S = 10
# Orders are entered days, not years, ahead; the bound also keeps dates far from the
# calendar's ends, where local-midnight arithmetic overflows.
PLAN_AHEAD_DAYS = 366
_READ_TRIPS = frozenset({Role.DISPATCHER, Role.SUPERVISOR, Role.DRIVER})
_WRITE = frozenset({Role.DISPATCHER})
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_ERR = "Error"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def trip_json(trip: trips.Trip) -> dict[str, Any]:
    """A trip as the ``Trip`` schema describes it."""
    out: dict[str, Any] = _jsonable(asdict(trip))
    return out


def _driver_of(request: web.Request) -> int | None:
    """The caller's driver id when it is a driver token, else None (sees every trip)."""
    principal: Principal = request[PRINCIPAL]
    return principal.driver_id if principal.role == Role.DRIVER else None


async def plan(request: web.Request) -> web.Response:
    body = await read_json(request, "PlanRequest")
    day = parse_date(body["date"])
    assert day is not None  # the schema checked the format
    today = request.app[CTX].now().date()
    if not today - timedelta(days=1) <= day <= today + timedelta(days=PLAN_AHEAD_DAYS):
        raise invalid(
            [
                FieldProblem(
                    "invalid_value", "/date", f"plan from yesterday to {PLAN_AHEAD_DAYS} days ahead"
                )
            ]
        )
    depot_id = body.get("depot_id")
    limit = body.get("time_limit_s", DEFAULT_TIME_LIMIT_S)
    replace = bool(body.get("replace", False))

    def solve(conn: Any) -> tuple[dispatch.DayPlan, list[trips.Trip]]:
        made = dispatch.plan_day(conn, day, depot_id=depot_id, time_limit_s=limit, replace=replace)
        return made, [trips.get_trip(conn, t) for t in made.trip_ids]

    made, stored = await run(request, solve)
    out = {
        "day": day.isoformat(),
        "trips": [trip_json(t) for t in stored],
        "scheduled": list(made.scheduled),
        "unassigned": [{"order_id": o, "reason": r} for o, r in made.unassigned.items()],
        "idle_vehicles": [{"vehicle_id": v, "reason": r} for v, r in made.idle_vehicles.items()],
        "totals": {
            "trips": len(made.trip_ids),
            "orders": len(made.scheduled),
            "distance_m": made.distance_m,
            "duration_s": made.duration_s,
        },
    }
    where = f"{PREFIX}/trips?day={day}" + ("" if depot_id is None else f"&depot_id={depot_id}")
    return web.json_response(out, status=201, headers={"Location": where})


async def list_trips(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listTrips"])
    day = q.get("day") or request.app[CTX].now().date()
    driver = _driver_of(request)
    found = await run(request, lambda c: trips.list_trips(c, day, q.get("depot_id")))
    mine = [t for t in found if driver is None or t.driver_id == driver]
    return web.json_response({"trips": [trip_json(t) for t in mine]})


async def get_trip(request: web.Request) -> web.Response:
    trip_id = parse_params(request, _OPS["getTrip"])["id"]
    trip = await run(request, lambda c: trips.get_trip(c, trip_id))
    driver = _driver_of(request)
    if driver is not None and trip.driver_id != driver:
        raise NotFound(f"no trip {trip_id}")
    return web.json_response(trip_json(trip))


async def dispatch_trip(request: web.Request) -> web.Response:
    trip_id = parse_params(request, _OPS["dispatchTrip"])["id"]
    actor = request[PRINCIPAL].name
    trip = await run(request, lambda c: trips.dispatch_trip(c, trip_id, actor=actor))
    return web.json_response(trip_json(trip))


async def start_trip(request: web.Request) -> web.Response:
    trip_id = parse_params(request, _OPS["startTrip"])["id"]
    actor = request[PRINCIPAL].name
    trip = await run(request, lambda c: trips.start_trip(c, trip_id, actor=actor))
    return web.json_response(trip_json(trip))


_ID = (Param("id", "path", _ID_SCHEMA, "trip id"),)
_MOVE = {
    200: ("the moved trip", "Trip"),
    404: ("no such trip", _ERR),
    409: ("the trip is not in the state this move starts from, or an order refused", _ERR),
}
OPERATIONS = (
    Operation(
        "planDay", "POST", "/plans", plan,
        "Plan a day's reserved orders into trips (one depot or all)", _WRITE,
        {201: ("the stored trips, scheduled orders, unassigned orders with reasons, totals",
               "PlanResult"),
         404: ("no such depot", _ERR),
         409: ("the day already has trips there (with replace: dispatched ones)", _ERR),
         500: ("the independent checker refused the planner's answer (plan_rejected)",
               _ERR)},
        body="PlanRequest",
        description="Runs the planner (up to time_limit_s seconds per depot) and stores"
        " the day in one transaction: all of its trips, or none. With replace, a day whose"
        " trips are all still planned is planned again, its old trips deleted in that"
        " same transaction.",
    ),
    Operation(
        "listTrips", "GET", "/trips", list_trips,
        "A day's trips, by id (a driver token sees only its own)", _READ_TRIPS,
        {200: ("the trips with their stops", "TripList")},
        params=(
            Param("day", "query", {"type": "string", "format": "date"}, "default: today (UTC)"),
            Param("depot_id", "query", _ID_SCHEMA, "only trips from this depot"),
        ),
    ),
    Operation(
        "getTrip", "GET", "/trips/{id}", get_trip,
        "Read a trip with its stops (a driver token: only its own)", _READ_TRIPS,
        {200: ("the trip", "Trip"), 404: ("no such trip (or not this driver's)", _ERR)},
        params=_ID,
    ),
    Operation(
        "dispatchTrip", "POST", "/trips/{id}/dispatch", dispatch_trip,
        "Release a planned trip to its driver (its orders become dispatched)", _WRITE,
        _MOVE, params=_ID,
    ),
    Operation(
        "startTrip", "POST", "/trips/{id}/start", start_trip,
        "Mark a dispatched trip as left the depot (its orders are out for delivery)", _WRITE,
        _MOVE, params=_ID,
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
