"""Trips planned elsewhere: import one (checked like the planner's plans) and dispatch
it; refusals with their codes; re-order a planned trip's stops, not a dispatched one's.

Day: 2 June 2026 at the Amsterdam depot (UTC+2). The van holds 100 kg; each order is
7 kg. North is 2 km north of the depot, East 2 km east: 312 s apart from the depot at
the planner's 30 km/h with its 1.3 road factor. Windows are 09:00–12:00 UTC unless a
test says otherwise; the driver's shift is 08:00–17:00 local (06:00–15:00 UTC).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import pytest

from oms_core.api import Role
from oms_core.planning import HaversineMatrix, Site
from oms_core.planning.matrix import IntMatrix
from tests.oms_core import DEPOT_LAT, DEPOT_LON
from tests.oms_core.test_api import Api, api_for, order_body
from tests.oms_core.test_api_plans import reserved_order

pytestmark = pytest.mark.db
DAY = "2026-06-02"
NORTH = {"lat": DEPOT_LAT + 0.018, "lon": DEPOT_LON}
EAST = {"lat": DEPOT_LAT, "lon": DEPOT_LON + 0.0295}


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


@dataclass(frozen=True)
class Fleet:
    van: int
    driver: int


@pytest.fixture
def fleet(api: Api) -> Fleet:
    return van_and_driver(api)


def van_and_driver(api: Api) -> Fleet:
    d = api.world.depot_id
    for sku in ("A", "B"):
        assert api.call("PUT", f"/stock/{d}/{sku}", json={"on_hand": 100})[0] == 200
    van = {"plate": "IMP-1", "capacity_kg": "100", "capacity_m3": "1", "depot_id": d}
    vid = api.call("POST", "/vehicles", json=van)[2]["id"]
    did = api.call("POST", "/drivers", json={"name": "Iris"})[2]["id"]
    return Fleet(vid, did)


def utc(hhmm: str) -> str:
    return f"{DAY}T{hhmm}:00+00:00"


def window(start: str, end: str) -> dict[str, str]:
    return {"window_start": utc(start), "window_end": utc(end)}


def state(api: Api, order_id: int) -> str:
    return str(api.call("GET", f"/orders/{order_id}")[2]["state"])


def seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def test_import_a_trip_and_dispatch_it(api: Api, fleet: Fleet) -> None:
    north, east = reserved_order(api, **NORTH), reserved_order(api, **EAST)
    body = {
        "vehicle_id": fleet.van,
        "driver_id": fleet.driver,
        "date": DAY,
        "stops": [{"order_ids": [east]}, {"order_ids": [north]}],
    }
    status, headers, trip = api.call("POST", "/trips", json=body)
    assert status == 201, trip
    assert headers["Location"] == f"/api/v1/trips/{trip['id']}"
    assert (trip["state"], trip["driver_id"], trip["depot_id"]) == (
        "planned",
        fleet.driver,
        api.world.depot_id,
    )
    assert [s["order_ids"] for s in trip["stops"]] == [[east], [north]]
    first, second = trip["stops"]
    # Timed as the planner does: at the first stop when its window opens, no wait there.
    assert first["planned_arrival"] == utc("09:00")
    assert seconds(trip["planned_departure"], first["planned_arrival"]) == 312
    assert seconds(first["planned_departure"], first["planned_arrival"]) == -300
    assert trip["route_geometry"][0] == trip["route_geometry"][-1] == [DEPOT_LON, DEPOT_LAT]
    assert trip["route_geometry"][1] == [EAST["lon"], EAST["lat"]]
    assert second["planned_arrival"] > first["planned_departure"]
    assert (state(api, north), state(api, east)) == ("scheduled", "scheduled")
    with psycopg.connect(api.world.dsn) as conn:
        assigned = conn.execute(
            "SELECT driver_id FROM driver_assignments WHERE vehicle_id = %s AND day = %s",
            (fleet.van, DAY),
        ).fetchall()
        reasons = conn.execute(
            "SELECT reason FROM order_events WHERE order_id = %s AND to_state = 'scheduled'",
            (east,),
        ).fetchall()
    assert assigned == [(fleet.driver,)]
    assert reasons == [(f"trip {trip['id']} (imported)",)]

    status, _, moved = api.call("POST", f"/trips/{trip['id']}/dispatch")
    assert (status, moved["state"]) == (200, "dispatched")
    assert state(api, east) == "dispatched"

    # The day now has a trip: the planner does not plan over it.
    status, _, err = api.call("POST", "/plans", json={"date": DAY, "time_limit_s": 1})
    assert (status, err["error"]["code"]) == (409, "day_already_planned")


def test_given_times_and_geometry_are_kept(api: Api, fleet: Fleet) -> None:
    north = reserved_order(api, **NORTH)
    line = [[DEPOT_LON, DEPOT_LAT], [DEPOT_LON, DEPOT_LAT + 0.01], [NORTH["lon"], NORTH["lat"]]]
    body = {
        "vehicle_id": fleet.van,
        "driver_id": fleet.driver,
        "date": DAY,
        "planned_departure": utc("08:30"),
        "planned_return": utc("10:00"),
        "stops": [
            {
                "order_ids": [north],
                "planned_arrival": utc("09:00"),
                "planned_departure": utc("09:15"),
            }
        ],
        "route_geometry": {"type": "LineString", "coordinates": line},
    }
    status, _, trip = api.call("POST", "/trips", json=body)
    assert status == 201, trip
    assert (trip["planned_departure"], trip["planned_return"]) == (utc("08:30"), utc("10:00"))
    stop = trip["stops"][0]
    assert (stop["planned_arrival"], stop["planned_departure"]) == (utc("09:00"), utc("09:15"))
    assert trip["route_geometry"] == line


def refusal(api: Api, body: dict[str, Any]) -> list[str]:
    status, _, err = api.call("POST", "/trips", json=body)
    assert (status, err["error"]["code"]) == (422, "trip_infeasible"), err
    return [d["code"] for d in err["error"]["details"]]


def test_infeasible_trips_are_refused_with_codes(api: Api, fleet: Fleet) -> None:
    north, east = reserved_order(api, **NORTH), reserved_order(api, **EAST)
    early = reserved_order(api, **EAST, **window("06:30", "07:00"))
    draft = api.call("POST", "/orders", json=order_body(api.world))[2]["id"]
    base = {"vehicle_id": fleet.van, "driver_id": fleet.driver, "date": DAY}

    def stops(*ids: int) -> list[dict[str, Any]]:
        return [{"order_ids": [i]} for i in ids]

    # Serving north first (from 09:00) makes the 06:30–07:00 order late.
    assert refusal(api, {**base, "stops": stops(north, early)}) == ["window_missed"]
    assert refusal(api, {**base, "stops": stops(draft, 999_999, north, north)}) == [
        "duplicate_order",
        "order_not_reserved",
        "unknown_order",
    ]
    timed = {
        **base,
        "planned_departure": utc("08:58"),
        "planned_return": utc("10:00"),
        "stops": [{"order_ids": [north], "planned_arrival": utc("09:00"),
                   "planned_departure": utc("09:04")}],
    }  # fmt: skip
    # 2 min for a 312 s leg, 4 min for 5 min of service, so service began before 09:00.
    assert refusal(api, timed) == ["too_fast", "service_too_short", "window_missed"]
    assert refusal(api, {**base, "stops": [{"order_ids": [north, east]}]}) == ["mixed_stop"]
    partial = {**base, "planned_departure": utc("08:00"), "stops": stops(north)}
    assert refusal(api, partial) == ["times_incomplete"]
    assert refusal(api, {**base, "vehicle_id": 999, "stops": stops(north)}) == ["unknown_vehicle"]
    unassigned = {"vehicle_id": fleet.van, "date": DAY, "stops": stops(north)}
    assert refusal(api, unassigned) == ["no_driver"]

    small = {"plate": "TINY", "capacity_kg": "10", "capacity_m3": "1"}
    tiny = api.call("POST", "/vehicles", json={**small, "depot_id": api.world.depot_id})[2]
    other = api.call("POST", "/drivers", json={"name": "Otto"})[2]["id"]
    heavy = {**base, "vehicle_id": tiny["id"], "driver_id": other, "stops": stops(north, east)}
    assert refusal(api, heavy) == ["over_capacity"]
    assert (state(api, north), state(api, early), state(api, east)) == ("reserved",) * 3

    assert api.call("POST", "/trips", json={**base, "stops": stops(north)})[0] == 201
    again = {**base, "vehicle_id": tiny["id"], "stops": stops(east)}
    assert refusal(api, again) == ["driver_taken", "driver_busy"]
    assert refusal(api, {**base, "driver_id": other, "stops": stops(east)}) == [
        "vehicle_taken",
        "vehicle_busy",
    ]
    status, _, err = api.call("POST", "/trips", json={**base, "stops": []})
    assert (status, err["error"]["details"][0]["field"]) == (422, "/stops")
    assert api.call("POST", "/trips", role=Role.SUPERVISOR, json=base)[0] == 403


def test_reorder_before_dispatch_only(api: Api, fleet: Fleet) -> None:
    north, east = reserved_order(api, **NORTH), reserved_order(api, **EAST)
    body = {"vehicle_id": fleet.van, "driver_id": fleet.driver, "date": DAY}
    body["stops"] = [{"order_ids": [north]}, {"order_ids": [east]}]
    trip = api.call("POST", "/trips", json=body)[2]
    first, second = (s["id"] for s in trip["stops"])

    status, _, err = api.call("PUT", f"/trips/{trip['id']}/stops/order", json={"stop_ids": [first]})
    assert (status, err["error"]["details"][0]["code"]) == (422, "stops_mismatch")
    status, _, moved = api.call(
        "PUT", f"/trips/{trip['id']}/stops/order", json={"stop_ids": [second, first]}
    )
    assert status == 200, moved
    assert [(s["id"], s["seq"], s["order_ids"]) for s in moved["stops"]] == [
        (second, 1, [east]),
        (first, 2, [north]),
    ]
    assert moved["stops"][0]["planned_arrival"] == utc("09:00")
    assert moved["stops"][1]["planned_arrival"] > moved["stops"][0]["planned_departure"]
    assert moved["route_geometry"][1] == [EAST["lon"], EAST["lat"]]
    assert api.call("GET", f"/trips/{trip['id']}")[2] == moved

    assert api.call("POST", f"/trips/{trip['id']}/dispatch")[2]["state"] == "dispatched"
    status, _, err = api.call(
        "PUT", f"/trips/{trip['id']}/stops/order", json={"stop_ids": [first, second]}
    )
    assert (status, err["error"]["code"]) == (409, "trip_not_planned")
    assert api.call("GET", f"/trips/{trip['id']}")[2]["stops"] == moved["stops"]
    assert api.call("PUT", "/trips/999999/stops/order", json={"stop_ids": [1]})[0] == 404


def test_a_reorder_that_breaks_a_window_is_refused(api: Api, fleet: Fleet) -> None:
    early = reserved_order(api, **NORTH, **window("07:00", "07:30"))
    late = reserved_order(api, **EAST)
    body = {"vehicle_id": fleet.van, "driver_id": fleet.driver, "date": DAY}
    body["stops"] = [{"order_ids": [early]}, {"order_ids": [late]}]
    trip = api.call("POST", "/trips", json=body)[2]
    ids = [s["id"] for s in trip["stops"]]
    status, _, err = api.call(
        "PUT", f"/trips/{trip['id']}/stops/order", json={"stop_ids": ids[::-1]}
    )
    assert (status, err["error"]["code"]) == (422, "trip_infeasible")
    assert [d["code"] for d in err["error"]["details"]] == ["window_missed"]
    assert api.call("GET", f"/trips/{trip['id']}")[2] == trip


def test_a_planners_trip_can_be_reordered_too(api: Api, fleet: Fleet) -> None:
    north, east = reserved_order(api, **NORTH), reserved_order(api, **EAST)
    body = {"driver_id": fleet.driver, "vehicle_id": fleet.van, "day": DAY}
    assert api.call("POST", "/assignments", json=body)[0] == 201
    (trip,) = api.call("POST", "/plans", json={"date": DAY, "time_limit_s": 1})[2]["trips"]
    planned = [s["order_ids"] for s in trip["stops"]]
    assert sorted(planned) == [[north], [east]]
    reverse = [s["id"] for s in trip["stops"]][::-1]
    status, _, moved = api.call(
        "PUT", f"/trips/{trip['id']}/stops/order", json={"stop_ids": reverse}
    )
    assert status == 200, moved
    assert [s["order_ids"] for s in moved["stops"]] == planned[::-1]
    assert [s["seq"] for s in moved["stops"]] == [1, 2]
    assert api.call("POST", f"/trips/{trip['id']}/dispatch")[2]["state"] == "dispatched"


class Counting:
    """The planner's default matrix, counting the tables asked for (a road server's
    table is the slow part of an import)."""

    def __init__(self) -> None:
        self.inner, self.calls = HaversineMatrix(), 0

    def matrices(self, sites: Sequence[Site]) -> tuple[IntMatrix, IntMatrix]:
        self.calls += 1
        return self.inner.matrices(sites)


def test_timing_and_checking_an_import_ask_for_one_table(clean_db: str) -> None:
    counting = Counting()
    for api in api_for(clean_db, matrix=counting):
        van = van_and_driver(api)
        north, east = reserved_order(api, **NORTH), reserved_order(api, **EAST)
        stops = [{"order_ids": [east]}, {"order_ids": [north]}]  # not in order-id order
        body = {"vehicle_id": van.van, "driver_id": van.driver, "date": DAY, "stops": stops}
        assert api.call("POST", "/trips", json=body)[0] == 201
    assert counting.calls == 1
