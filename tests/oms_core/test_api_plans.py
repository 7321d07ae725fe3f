"""From orders to a dispatched trip through the API (real sockets, database and planner),
and who may see or move which trip.

Day: 2 June 2026 at the Amsterdam depot. Two vans that hold 10 kg each, a driver on
each; two 7 kg orders (one per van) and one 16 kg order no van can carry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from oms_core.api import Role, create_token
from tests.oms_core.test_api import Api, api_for, order_body

pytestmark = pytest.mark.db
DAY = "2026-06-02"


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


@dataclass(frozen=True)
class Day:
    """Ids made through the API, and a token per driver."""

    small: list[int]
    heavy: int
    drivers: list[int]
    driver_tokens: list[str]


def call_as(api: Api, token: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    status, _, body = api.call(
        method, path, role=None, headers={"Authorization": f"Bearer {token}"}, **kw
    )
    return status, body


def reserved_order(api: Api, **changes: Any) -> int:
    """Enter, verify and reserve through the API."""
    status, _, order = api.call("POST", "/orders", json=order_body(api.world, **changes))
    assert status == 201
    assert api.call("POST", f"/orders/{order['id']}/verify")[2]["verified"] is True
    status, _, reserved = api.call("POST", f"/orders/{order['id']}/reserve")
    assert (status, reserved["state"]) == (200, "reserved")
    return int(order["id"])


@pytest.fixture
def day(api: Api) -> Day:
    d = api.world.depot_id
    assert api.call("PUT", f"/stock/{d}/A", json={"on_hand": 100})[0] == 200
    drivers, tokens = [], []
    for n in (1, 2):
        van = {"plate": f"V{n}", "capacity_kg": "10", "capacity_m3": "1", "depot_id": d}
        vid = api.call("POST", "/vehicles", json=van)[2]["id"]
        did = api.call("POST", "/drivers", json={"name": f"Driver {n}"})[2]["id"]
        body = {"driver_id": did, "vehicle_id": vid, "day": DAY}
        assert api.call("POST", "/assignments", json=body)[0] == 201
        drivers.append(did)
        with psycopg.connect(api.world.dsn, autocommit=True) as conn:
            tokens.append(create_token(conn, f"phone {n}", Role.DRIVER, did))
    small = [reserved_order(api, lon=4.9 + 0.01 * k) for k in (1, 2)]
    heavy = reserved_order(api, lines=[{"sku": "A", "qty": 8, "unit_price": "1.00"}])
    return Day(small, heavy, drivers, tokens)


def plan(api: Api) -> tuple[int, dict[str, Any]]:
    status, headers, body = api.call("POST", "/plans", json={"date": DAY, "time_limit_s": 1})
    if status == 201:
        assert headers["Location"] == f"/api/v1/trips?day={DAY}"
    return status, body


def test_orders_to_a_dispatched_trip(api: Api, day: Day) -> None:
    status, result = plan(api)
    assert status == 201
    assert sorted(result["scheduled"]) == day.small
    assert [u["order_id"] for u in result["unassigned"]] == [day.heavy]
    assert result["unassigned"][0]["reason"]
    assert result["totals"]["trips"] == len(result["trips"]) == 2
    assert result["totals"]["orders"] == 2
    assert result["totals"]["distance_m"] > 0 and result["totals"]["duration_s"] > 0
    assert sorted(t["driver_id"] for t in result["trips"]) == day.drivers
    carried = sorted(o for t in result["trips"] for s in t["stops"] for o in s["order_ids"])
    assert carried == day.small
    for oid in day.small:
        assert api.call("GET", f"/orders/{oid}")[2]["state"] == "scheduled"
    assert api.call("GET", f"/orders/{day.heavy}")[2]["state"] == "reserved"

    status, _, listed = api.call("GET", f"/trips?day={DAY}", role=Role.SUPERVISOR)
    assert (status, listed["trips"]) == (200, result["trips"])
    d = api.world.depot_id
    empty: dict[str, Any] = {"trips": [], "next_cursor": None}
    assert api.call("GET", f"/trips?day={DAY}&depot_id={d + 1}")[2] == empty
    assert api.call("GET", "/trips?day=2026-06-03")[2] == empty
    trip = result["trips"][0]
    assert api.call("GET", f"/trips/{trip['id']}")[2] == trip
    live = {k: trip["stops"][0][k] for k in _LIVE}
    assert live == dict.fromkeys(_LIVE) | {"out_of_sequence": False}
    assert trip["route_geometry"][0] == trip["route_geometry"][-1]  # depot to depot

    status, _, moved = api.call("POST", f"/trips/{trip['id']}/dispatch")
    assert (status, moved["state"]) == (200, "dispatched")
    for oid in trip["stops"][0]["order_ids"]:
        assert api.call("GET", f"/orders/{oid}")[2]["state"] == "dispatched"
    status, _, err = api.call("POST", f"/trips/{trip['id']}/dispatch")
    assert (status, err["error"]["code"]) == (409, "illegal_transition")
    assert err["error"]["details"][0]["legal_next"] == ["in_progress"]
    status, _, moved = api.call("POST", f"/trips/{trip['id']}/start")
    assert (status, moved["state"]) == (200, "in_progress")
    for oid in trip["stops"][0]["order_ids"]:
        assert api.call("GET", f"/orders/{oid}")[2]["state"] == "out_for_delivery"
    assert api.call("POST", "/trips/999999/start")[0] == 404

    status, again = plan(api)
    assert (status, again["error"]["code"]) == (409, "day_already_planned")


_LIVE = ("eta", "actual_arrival", "actual_departure", "arrival_method", "radius_m",
         "out_of_sequence", "unconfirmed_from", "unconfirmed_to")  # fmt: skip


def test_trips_are_paged_and_filtered(api: Api, day: Day) -> None:
    trips = plan(api)[1]["trips"]
    first, second = sorted(trips, key=lambda t: t["id"])
    status, _, page = api.call("GET", "/trips?limit=1")  # no day: every day
    assert (status, page["trips"], page["next_cursor"]) == (200, [first], str(first["id"]))
    page = api.call("GET", f"/trips?limit=1&cursor={page['next_cursor']}")[2]
    assert page == {"trips": [second], "next_cursor": None}
    by_vehicle = api.call("GET", f"/trips?vehicle_id={second['vehicle_id']}")[2]["trips"]
    assert by_vehicle == [second]
    assert api.call("POST", f"/trips/{second['id']}/dispatch")[0] == 200
    listed = api.call("GET", f"/trips?day={DAY}&state=dispatched&state=in_progress")[2]
    assert [t["id"] for t in listed["trips"]] == [second["id"]]
    assert api.call("GET", "/trips?state=completed")[2]["trips"] == []

    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE stops SET eta = '2026-06-02T09:30:00Z', actual_arrival ="
            " '2026-06-02T09:31:00Z', arrival_method = 'geofence', radius_m = 80,"
            " out_of_sequence = true WHERE trip_id = %s AND seq = 1",
            (second["id"],),
        )
    stop = api.call("GET", f"/trips/{second['id']}")[2]["stops"][0]
    assert {k: stop[k] for k in _LIVE} == {
        "eta": "2026-06-02T09:30:00+00:00",
        "actual_arrival": "2026-06-02T09:31:00+00:00",
        "actual_departure": None,
        "arrival_method": "geofence",
        "radius_m": 80.0,
        "out_of_sequence": True,
        "unconfirmed_from": None,
        "unconfirmed_to": None,
    }


def test_a_dispatcher_confirms_a_visit_the_tracker_missed(api: Api, day: Day) -> None:
    trip = plan(api)[1]["trips"][0]
    stop = trip["stops"][0]
    status, _, err = api.call("POST", f"/stops/{stop['id']}/arrival", json={})
    assert (status, err["error"]["code"]) == (409, "illegal_transition")  # still planned
    assert api.call("POST", f"/trips/{trip['id']}/dispatch")[0] == 200
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:  # what the tower records
        conn.execute(
            "UPDATE stops SET unconfirmed_from = '2026-06-02T09:10:00Z',"
            " unconfirmed_to = '2026-06-02T09:25:00Z' WHERE id = %s",
            (stop["id"],),
        )
    shown = api.call("GET", f"/trips/{trip['id']}")[2]["stops"][0]
    assert (shown["unconfirmed_from"], shown["unconfirmed_to"], shown["actual_arrival"]) == (
        "2026-06-02T09:10:00+00:00",
        "2026-06-02T09:25:00+00:00",
        None,
    )
    driver = call_as(api, day.driver_tokens[0], "POST", f"/stops/{stop['id']}/arrival", json={})
    assert driver[0] == 403
    status, _, moved = api.call("POST", f"/stops/{stop['id']}/arrival", json={})
    arrived = moved["stops"][0]
    assert (status, arrived["actual_arrival"], arrived["arrival_method"]) == (
        200,
        "2026-06-02T09:25:00+00:00",  # by default, the end of the silence
        "dispatcher",
    )
    assert moved["state"] == "in_progress"  # dispatched: the confirmation started it
    for oid in stop["order_ids"]:
        assert api.call("GET", f"/orders/{oid}")[2]["state"] == "arrived"
    earlier = {"at": "2026-06-02T09:15:00Z"}  # the driver said when: it stands
    moved = api.call("POST", f"/stops/{stop['id']}/arrival", json=earlier)[2]
    assert moved["stops"][0]["actual_arrival"] == "2026-06-02T09:15:00+00:00"
    status, _, err = api.call("POST", "/stops/999999/arrival", json={})
    assert (status, err["error"]["code"]) == (404, "not_found")
    status, _, err = api.call("POST", f"/stops/{stop['id']}/arrival", json={"at": "soon"})
    assert status == 422


def test_drivers_see_only_their_own_trips(api: Api, day: Day) -> None:
    trips = plan(api)[1]["trips"]
    by_driver = {t["driver_id"]: t for t in trips}
    mine, theirs = by_driver[day.drivers[0]], by_driver[day.drivers[1]]
    token = day.driver_tokens[0]

    mine_only = {"trips": [mine], "next_cursor": None}
    assert call_as(api, token, "GET", f"/trips?day={DAY}") == (200, mine_only)
    assert call_as(api, token, "GET", "/trips?limit=1") == (200, mine_only)  # a full page
    assert call_as(api, token, "GET", f"/trips/{mine['id']}") == (200, mine)
    status, err = call_as(api, token, "GET", f"/trips/{theirs['id']}")
    assert (status, err["error"]["code"]) == (404, "not_found")
    missing = call_as(api, token, "GET", "/trips/999999")[1]
    assert err["error"]["message"].replace(str(theirs["id"]), "N") == missing["error"][
        "message"
    ].replace("999999", "N")  # same answer as a trip that does not exist

    for method, path in [
        ("POST", f"/trips/{mine['id']}/dispatch"),
        ("POST", f"/trips/{mine['id']}/start"),
        ("GET", "/orders"),
        ("GET", "/vehicles"),
    ]:
        status, err = call_as(api, token, method, path)
        assert (status, err["error"]["code"]) == (403, "forbidden"), path
    status, err = call_as(api, token, "POST", "/plans", json={"date": DAY})
    assert status == 403
    assert api.call("GET", f"/trips/{mine['id']}")[2]["state"] == "planned"


def test_supervisors_read_trips_but_change_nothing(api: Api, day: Day) -> None:
    trips = plan(api)[1]["trips"]
    status, _, listed = api.call("GET", f"/trips?day={DAY}", role=Role.SUPERVISOR)
    assert (status, len(listed["trips"])) == (200, 2)
    for path in [f"/trips/{trips[0]['id']}/dispatch", f"/trips/{trips[0]['id']}/start"]:
        assert api.call("POST", path, role=Role.SUPERVISOR)[0] == 403
    assert api.call("POST", "/plans", role=Role.SUPERVISOR, json={"date": DAY})[0] == 403
    assert api.call("GET", f"/trips/{trips[0]['id']}")[2]["state"] == "planned"
    for path in ["/trips", f"/trips/{trips[0]['id']}"]:
        assert api.call("GET", path, role=Role.CUSTOMER)[0] == 403


def test_plan_request_checks(api: Api) -> None:
    for body, field in [
        ({"date": DAY, "time_limit_s": 61}, "/time_limit_s"),
        ({"date": "2026-13-01"}, "/date"),
        ({"date": "2026-05-30"}, "/date"),  # two days before NOW: past
        ({"date": "9999-12-31"}, "/date"),
        ({}, "/date"),
    ]:
        status, _, err = api.call("POST", "/plans", json=body)
        assert (status, err["error"]["details"][0]["field"]) == (422, field)
    status, _, err = api.call("POST", "/plans", json={"date": DAY, "depot_id": 999})
    assert (status, err["error"]["code"]) == (404, "not_found")
    status, _, empty = api.call("POST", "/plans", json={"date": DAY, "time_limit_s": 1})
    assert status == 201
    assert (empty["trips"], empty["scheduled"], empty["unassigned"]) == ([], [], [])
