"""Plan and trip endpoints: plan a day, read trips, dispatch and start them, confirm
a stop's arrival (a visit the tracker missed).

Driver tokens see only their own trips. Another driver's trip answers 404, exactly as a
trip that does not exist, so a driver cannot learn which trip ids are in use. Every trip
answer is read by ``trip_views``, so each carries its stops' live fields (ETA, actual
times, how arrival was detected, zone radius, out of sequence) the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg
from aiohttp import web
from psycopg.rows import dict_row

from oms_core import dispatch, trips
from oms_core.api.auth import Principal, Role
from oms_core.api.context import CTX, PRINCIPAL, jsonable, read_json, run
from oms_core.api.errors import ApiError, invalid
from oms_core.api.schema_check import FieldProblem, parse_date, parse_datetime
from oms_core.api.schemas import MAX_ID
from oms_core.api.spec import PAGE_PARAMS, PREFIX, Operation, Param, parse_params
from oms_core.errors import NotFound
from oms_core.execution.arrival import record_arrival
from oms_core.planning.matrix import RoutingUnavailable

__all__ = ["DEFAULT_TIME_LIMIT_S", "OPERATIONS", "PLAN_AHEAD_DAYS", "one_trip", "trip_views"]

DEFAULT_TIME_LIMIT_S = 10
# Orders are entered days, not years, ahead; the bound also keeps dates far from the
# calendar's ends, where local-midnight arithmetic overflows.
PLAN_AHEAD_DAYS = 366
_READ_TRIPS = frozenset({Role.DISPATCHER, Role.SUPERVISOR, Role.DRIVER})
_WRITE = frozenset({Role.DISPATCHER})
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_ERR = "Error"


Conn = psycopg.Connection[Any]
_TRIP_STATES = ["planned", "dispatched", "in_progress", "completed", "cancelled"]
_STOP_COLUMNS = (
    "s.id, s.trip_id, s.seq, s.lat, s.lon, s.planned_arrival, s.planned_departure,"
    " s.service_time_s, s.window_start, s.window_end, s.eta, s.actual_arrival,"
    " s.actual_departure, s.arrival_method, s.geofence_arrival, s.driver_arrival, s.radius_m,"
    " s.out_of_sequence, s.unconfirmed_from, s.unconfirmed_to"
)


def trip_views(
    conn: Conn, where: str, params: Sequence[Any], *, limit: int | None = None
) -> list[dict[str, Any]]:
    """Trips matching ``where`` (SQL over ``trips``), by id, at most ``limit``, each as
    the ``Trip`` schema describes it, with its stops and their orders."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT id, vehicle_id, driver_id, depot_id, day, planned_departure, planned_return,"
            " state, loaded_at, actual_departure, actual_return, route_geometry FROM trips"
            f" WHERE {where} ORDER BY id" + ("" if limit is None else f" LIMIT {int(limit)}"),
            params,
        ).fetchall()
        stops = cur.execute(
            f"SELECT {_STOP_COLUMNS}, coalesce(array_agg(so.order_id ORDER BY so.order_id)"
            " FILTER (WHERE so.order_id IS NOT NULL), '{}') AS order_ids"
            " FROM stops s LEFT JOIN stop_orders so ON so.stop_id = s.id"
            " WHERE s.trip_id = ANY(%s) GROUP BY s.id ORDER BY s.trip_id, s.seq",
            ([r["id"] for r in rows],),
        ).fetchall()
    by_trip: dict[int, list[dict[str, Any]]] = {r["id"]: [] for r in rows}
    for stop in stops:
        by_trip[stop.pop("trip_id")].append(stop)
    out: list[dict[str, Any]] = [jsonable({**r, "stops": by_trip[r["id"]]}) for r in rows]
    return out


def _trips_by_id(conn: Conn, ids: Sequence[int]) -> list[dict[str, Any]]:
    return trip_views(conn, "id = ANY(%s)", (list(ids),))


def one_trip(conn: Conn, trip_id: int) -> dict[str, Any]:
    """The trip as the API shows it, or ``NotFound``."""
    found = _trips_by_id(conn, [trip_id])
    if not found:
        raise NotFound(f"no trip {trip_id}")
    return found[0]


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

    ctx = request.app[CTX]

    def solve(conn: Conn) -> tuple[dispatch.DayPlan, list[dict[str, Any]]]:
        made = dispatch.plan_day(
            conn,
            day,
            depot_id=depot_id,
            matrix=ctx.matrix,
            routes=ctx.routes,
            time_limit_s=limit,
            replace=replace,
        )
        return made, _trips_by_id(conn, made.trip_ids)

    try:
        made, stored = await run(request, solve)
    except RoutingUnavailable as exc:
        raise ApiError(503, exc.code, f"{exc}; nothing was planned") from exc
    out = {
        "day": day.isoformat(),
        "trips": stored,
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
    """Keyset pages by id (ascending); a driver token's filter is part of the query, so
    its pages are full pages of its own trips."""
    q = parse_params(request, _OPS["listTrips"])
    limit, cursor = q.get("limit", 50), q.get("cursor")
    clauses = {
        "day = %s": q.get("day"),
        "depot_id = %s": q.get("depot_id"),
        "vehicle_id = %s": q.get("vehicle_id"),
        "state = ANY(%s)": q.get("state"),
        "driver_id = %s": _driver_of(request),
        "id > %s": None if cursor is None else int(cursor),
    }
    where = " AND ".join(["true", *(k for k, v in clauses.items() if v is not None)])
    params = [v for v in clauses.values() if v is not None]
    found = await run(request, lambda c: trip_views(c, where, params, limit=limit + 1))
    more = len(found) > limit
    page = found[:limit]
    return web.json_response({"trips": page, "next_cursor": str(page[-1]["id"]) if more else None})


async def get_trip(request: web.Request) -> web.Response:
    trip_id = parse_params(request, _OPS["getTrip"])["id"]
    trip = await run(request, lambda c: one_trip(c, trip_id))
    driver = _driver_of(request)
    if driver is not None and trip["driver_id"] != driver:
        raise NotFound(f"no trip {trip_id}")
    return web.json_response(trip)


async def dispatch_trip(request: web.Request) -> web.Response:
    trip_id = parse_params(request, _OPS["dispatchTrip"])["id"]
    actor = request[PRINCIPAL].name

    def move(conn: Conn) -> dict[str, Any]:
        trips.dispatch_trip(conn, trip_id, actor=actor)
        return one_trip(conn, trip_id)

    return web.json_response(await run(request, move))


async def start_trip(request: web.Request) -> web.Response:
    trip_id = parse_params(request, _OPS["startTrip"])["id"]
    actor = request[PRINCIPAL].name

    def move(conn: Conn) -> dict[str, Any]:
        trips.start_trip(conn, trip_id, actor=actor)
        return one_trip(conn, trip_id)

    return web.json_response(await run(request, move))


async def confirm_arrival(request: web.Request) -> web.Response:
    """A dispatcher's word that the vehicle was at a stop (say, after calling the driver
    about a visit the tracker missed): an arrival by method ``dispatcher``, which moves
    the stop's orders to arrived if no arrival came first. A dispatched trip starts
    first, as the driver's tap starts it; a trip not on the road refuses (409)."""
    stop_id = parse_params(request, _OPS["confirmStopArrival"])["id"]
    body = await read_json(request, "StopArrival")
    at = None if "at" not in body else parse_datetime(body["at"])
    actor, now = request[PRINCIPAL].name, request.app[CTX].now()

    def move(conn: Conn) -> dict[str, Any]:
        row = conn.execute(
            "SELECT s.trip_id, s.unconfirmed_to, t.state FROM stops s"
            " JOIN trips t ON t.id = s.trip_id WHERE s.id = %s FOR NO KEY UPDATE OF t",
            (stop_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no stop {stop_id}")
        trip_id, gap_end, state = int(row[0]), row[1], str(row[2])
        when = at or gap_end or now
        trips.ensure_started(conn, trip_id, state, actor=actor, at=when)  # as the driver's tap
        record_arrival(conn, stop_id, when, "dispatcher", actor=actor)
        return one_trip(conn, trip_id)

    return web.json_response(await run(request, move))


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
               _ERR),
         503: ("the configured OSRM server failed (routing_unavailable)", _ERR)},
        body="PlanRequest",
        description="Runs the planner (up to time_limit_s seconds per depot) and stores"
        " the day in one transaction: all of its trips, or none. With replace, a day whose"
        " trips are all still planned is planned again, its old trips deleted in that"
        " same transaction.",
    ),
    Operation(
        "listTrips", "GET", "/trips", list_trips,
        "List trips by id, a page at a time (a driver token sees only its own)", _READ_TRIPS,
        {200: ("one page of trips with their stops", "TripList")},
        params=(
            Param("day", "query", {"type": "string", "format": "date"}, "only this day"),
            Param("depot_id", "query", _ID_SCHEMA, "only trips from this depot"),
            Param("vehicle_id", "query", _ID_SCHEMA, "only trips of this vehicle"),
            Param("state", "query", {"enum": _TRIP_STATES}, "any of", many=True),
            *PAGE_PARAMS,
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
    Operation(
        "confirmStopArrival", "POST", "/stops/{id}/arrival", confirm_arrival,
        "Confirm that the vehicle was at a stop (its orders arrive if none had)", _WRITE,
        {200: ("the stop's trip", "Trip"), 404: ("no such stop", _ERR),
         409: ("the stop's trip is planned, completed or cancelled", _ERR)},
        body="StopArrival", params=(Param("id", "path", _ID_SCHEMA, "stop id"),),
        description="For a visit the tracker missed (unconfirmed_from/to on the stop) or"
        " any arrival no geofence or driver reported. An arrival already recorded keeps"
        " its time unless this one is earlier; the first arrival moves the orders.",
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
