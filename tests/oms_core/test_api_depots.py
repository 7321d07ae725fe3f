"""Depots without SQL: create, change, read; a depot made through the API plans a day.

The seeded world has the AMS depot; the tests add Haarlem (20 km west) through the API.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oms_core.api import Role
from tests.oms_core.test_api import Api, api_for, order_body

pytestmark = pytest.mark.db
LAT, LON = 52.38, 4.64
HAARLEM = {"name": "Haarlem", "lat": LAT, "lon": LON}


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


def test_create_read_change_a_depot(api: Api) -> None:
    body = {**HAARLEM, "open_time": "07:00", "close_time": "19:30", "time_zone": "Europe/Amsterdam"}
    status, headers, made = api.call("POST", "/depots", json=body)
    assert status == 201
    assert headers["Location"] == f"/api/v1/depots/{made['id']}"
    assert made == {
        **HAARLEM,
        "id": made["id"],
        "open_time": "07:00:00",
        "close_time": "19:30:00",
        "time_zone": "Europe/Amsterdam",
    }
    assert api.call("GET", f"/depots/{made['id']}", role=Role.SUPERVISOR)[2] == made
    listed = api.call("GET", "/depots")[2]["depots"]
    assert [d["name"] for d in listed] == ["AMS", "Haarlem"]

    status, _, changed = api.call("PATCH", f"/depots/{made['id']}", json={"close_time": "21:00"})
    assert (status, changed) == (200, {**made, "close_time": "21:00:00"})
    defaults = api.call("POST", "/depots", json={"name": "Zaandam", "lat": 52.44, "lon": 4.81})
    assert {k: defaults[2][k] for k in ("open_time", "close_time", "time_zone")} == {
        "open_time": "06:00:00",
        "close_time": "22:00:00",
        "time_zone": "UTC",
    }


def test_depot_refusals_say_what_to_fix(api: Api) -> None:
    for body, status, code, field in [
        ({**HAARLEM, "time_zone": "Mars/Olympus"}, 422, "invalid_value", "/time_zone"),
        ({**HAARLEM, "open_time": "20:00", "close_time": "08:00"}, 422, "invalid_value",
         "/close_time"),
        ({**HAARLEM, "lat": 91}, 422, "invalid_value", "/lat"),
        ({"name": "x"}, 422, "missing_field", "/lat"),
        ({**HAARLEM, "name": "AMS"}, 409, "depot_name_taken", None),
    ]:  # fmt: skip
        got, _, err = api.call("POST", "/depots", json=body)
        assert (got, err["error"]["code"]) == (status, code), body
        if field is not None:
            assert field in [d["field"] for d in err["error"]["details"]]
    assert api.call("PATCH", "/depots/999", json={"name": "n"})[0] == 404
    assert api.call("POST", "/depots", role=Role.SUPERVISOR, json=HAARLEM)[0] == 403
    assert [d["name"] for d in api.call("GET", "/depots")[2]["depots"]] == ["AMS"]


def test_a_depot_made_through_the_api_plans_its_day(api: Api) -> None:
    """Depot, stock, vehicle, driver, assignment and orders through the API, then a plan."""
    depot = api.call("POST", "/depots", json={**HAARLEM, "time_zone": "Europe/Amsterdam"})[2]
    d = depot["id"]
    assert api.call("PUT", f"/stock/{d}/A", json={"on_hand": 50})[0] == 200
    assert api.call("PUT", f"/stock/{d}/B", json={"on_hand": 50})[0] == 200
    van = {"plate": "HL-1", "capacity_kg": "100", "capacity_m3": "1", "depot_id": d}
    vid = api.call("POST", "/vehicles", json=van)[2]["id"]
    did = api.call("POST", "/drivers", json={"name": "Hana"})[2]["id"]
    assignment = {"driver_id": did, "vehicle_id": vid, "day": "2026-06-02"}
    assert api.call("POST", "/assignments", json=assignment)[0] == 201
    ids = []
    for k in (1, 2):
        where = {"lat": LAT + 0.01 * k, "lon": LON}
        status, _, order = api.call(
            "POST", "/orders", json=order_body(api.world, depot_id=d, **where)
        )
        assert status == 201
        assert api.call("POST", f"/orders/{order['id']}/verify")[2]["verified"] is True
        assert api.call("POST", f"/orders/{order['id']}/reserve")[2]["state"] == "reserved"
        ids.append(order["id"])

    status, _, plan = api.call("POST", "/plans", json={"date": "2026-06-02", "depot_id": d})
    assert status == 201
    assert sorted(plan["scheduled"]) == ids
    (trip,) = plan["trips"]
    assert (trip["depot_id"], trip["vehicle_id"], trip["driver_id"]) == (d, vid, did)
    assert trip["route_geometry"][0] == [LON, LAT]
