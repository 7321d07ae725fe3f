"""Depots, stock, vehicles, drivers and assignments through the API (real sockets and
database): happy paths, conflicts, and what each role may do."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from oms_core import orders
from oms_core.api import Role
from tests.oms_core import DEPOT_LAT, DEPOT_LON, stock_of
from tests.oms_core.test_api import Api, api_for, order_body

pytestmark = pytest.mark.db


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


def test_depots_list_and_read(api: Api) -> None:
    status, _, body = api.call("GET", "/depots", role=Role.SUPERVISOR)
    depot = {
        "id": api.world.depot_id,
        "name": "AMS",
        "lat": DEPOT_LAT,
        "lon": DEPOT_LON,
        "open_time": "06:00:00",
        "close_time": "22:00:00",
        "time_zone": "Europe/Amsterdam",
    }
    assert (status, body) == (200, {"depots": [depot]})
    assert api.call("GET", f"/depots/{api.world.depot_id}")[2] == depot
    status, _, err = api.call("GET", f"/depots/{api.world.depot_id + 1}")
    assert (status, err["error"]["code"]) == (404, "not_found")


def test_stock_read_filter_and_set(api: Api) -> None:
    d = api.world.depot_id
    status, _, body = api.call("GET", "/stock", role=Role.SUPERVISOR)
    assert status == 200
    assert [(s["sku"], s["on_hand"], s["available"]) for s in body["stock"]] == [
        ("A", 10, 10),
        ("B", 5, 5),
    ]
    _, _, body = api.call("GET", f"/stock?depot_id={d}&sku=B")
    assert body == {
        "stock": [{"depot_id": d, "sku": "B", "on_hand": 5, "reserved": 0, "available": 5}]
    }

    status, _, level = api.call("PUT", f"/stock/{d}/A", json={"on_hand": 40})
    assert (status, level["on_hand"], level["available"]) == (200, 40, 40)
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        assert stock_of(conn, d)["A"] == (40, 0)
        conn.execute(
            "INSERT INTO products (sku, unit_weight_kg, unit_volume_m3) VALUES ('C', 1, 0.001)"
        )
    status, _, level = api.call("PUT", f"/stock/{d}/C", json={"on_hand": 7})
    assert (status, level["on_hand"]) == (200, 7)  # a first count creates the row

    assert api.call("PUT", f"/stock/{d}/NOPE", json={"on_hand": 1})[0] == 404
    assert api.call("PUT", f"/stock/{d + 1}/A", json={"on_hand": 1})[0] == 404
    status, _, err = api.call("PUT", f"/stock/{d}/A", json={"on_hand": -1})
    assert (status, err["error"]["code"]) == (422, "invalid_value")
    status, _, err = api.call("PUT", f"/stock/{d}/A", role=Role.SUPERVISOR, json={"on_hand": 1})
    assert (status, err["error"]["code"]) == (403, "forbidden")


def test_stock_cannot_drop_below_what_orders_reserved(api: Api) -> None:
    d = api.world.depot_id
    oid = api.call("POST", "/orders", json=order_body(api.world))[2]["id"]
    api.call("POST", f"/orders/{oid}/verify")
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        orders.transition(conn, oid, "reserved", actor="test")  # holds 3 A
        status, _, err = api.call("PUT", f"/stock/{d}/A", json={"on_hand": 2})
        assert (status, err["error"]["code"]) == (409, "below_reserved")
        assert err["error"]["details"] == [{"sku": "A", "depot_id": d, "reserved": 3}]
        assert stock_of(conn, d)["A"] == (10, 3)
        assert api.call("PUT", f"/stock/{d}/A", json={"on_hand": 3})[2]["available"] == 0


def test_vehicles_create_list_read_and_conflicts(api: Api) -> None:
    body = {
        "plate": "AB-123-C",
        "capacity_kg": "800",
        "capacity_m3": "6.5",
        "tracker_device_id": "imei-1",
        "max_speed_kmh": 100,
        "depot_id": api.world.depot_id,
    }
    status, headers, van = api.call("POST", "/vehicles", json=body)
    assert status == 201
    assert headers["Location"] == f"/api/v1/vehicles/{van['id']}"
    assert van == {
        **body,
        "id": van["id"],
        "type": "van",
        "capacity_kg": "800.00",
        "capacity_m3": "6.500",
        "max_speed_kmh": 100.0,
    }
    bike = api.call(
        "POST",
        "/vehicles",
        json={"plate": "BIKE-1", "type": "cargo bike", "capacity_kg": "80", "capacity_m3": "0.3"},
    )[2]
    assert bike["depot_id"] is None and bike["tracker_device_id"] is None
    _, _, listed = api.call("GET", "/vehicles", role=Role.SUPERVISOR)
    assert [v["plate"] for v in listed["vehicles"]] == ["AB-123-C", "BIKE-1"]
    _, _, listed = api.call("GET", f"/vehicles?depot_id={api.world.depot_id}")
    assert listed == {"vehicles": [van], "next_cursor": None}
    _, _, page = api.call("GET", "/vehicles?limit=1")
    assert (page["vehicles"], page["next_cursor"]) == ([van], str(van["id"]))
    _, _, page = api.call("GET", f"/vehicles?limit=1&cursor={page['next_cursor']}")
    assert page == {"vehicles": [bike], "next_cursor": None}
    status, _, err = api.call("GET", "/vehicles?cursor=x1")
    assert (status, err["error"]["details"][0]["field"]) == (422, "cursor")
    assert api.call("GET", f"/vehicles/{van['id']}")[2] == van

    status, _, err = api.call("POST", "/vehicles", json={**body, "tracker_device_id": None})
    assert (status, err["error"]["code"]) == (409, "fleet_conflict")
    status, _, err = api.call("POST", "/vehicles", json={**body, "plate": "Z", "capacity_kg": "0"})
    assert (status, err["error"]["details"][0]["field"]) == (422, "/capacity_kg")
    status, _, err = api.call("POST", "/vehicles", json={**body, "plate": "Z", "depot_id": 999})
    assert (status, err["error"]["details"][0]["field"]) == (422, "/depot_id")
    assert api.call("GET", f"/vehicles/{bike['id'] + 5}")[0] == 404
    assert api.call("POST", "/vehicles", role=Role.SUPERVISOR, json=body)[0] == 403


def test_drivers_create_list_read_and_shift_rules(api: Api) -> None:
    status, headers, ann = api.call(
        "POST",
        "/drivers",
        json={
            "name": "Ann",
            "shift_start": "07:30",
            "shift_end": "15:30",
            "phone": "+31 6 1",
            "phone_device_id": "phone-1",
        },
    )
    assert status == 201
    assert headers["Location"] == f"/api/v1/drivers/{ann['id']}"
    assert (ann["shift_start"], ann["shift_end"], ann["phone"]) == (
        "07:30:00",
        "15:30:00",
        "+31 6 1",
    )
    bob = api.call("POST", "/drivers", json={"name": "Bob"})[2]
    assert (bob["shift_start"], bob["shift_end"]) == ("08:00:00", "17:00:00")
    _, _, listed = api.call("GET", "/drivers", role=Role.SUPERVISOR)
    assert [d["name"] for d in listed["drivers"]] == ["Dee", "Ann", "Bob"]  # Dee: the token's
    _, _, page = api.call("GET", "/drivers?limit=2")
    assert [d["name"] for d in page["drivers"]] == ["Dee", "Ann"]
    _, _, page = api.call("GET", f"/drivers?limit=2&cursor={page['next_cursor']}")
    assert page == {"drivers": [bob], "next_cursor": None}
    assert api.call("GET", f"/drivers/{ann['id']}")[2] == ann

    status, _, err = api.call("POST", "/drivers", json={"name": "C", "shift_start": "18:00"})
    assert (status, err["error"]["details"][0]["field"]) == (422, "/shift_end")
    status, _, err = api.call("POST", "/drivers", json={"name": "C", "phone_device_id": "phone-1"})
    assert (status, err["error"]["code"]) == (409, "fleet_conflict")
    status, _, err = api.call("POST", "/drivers", json={"name": "C", "shift_start": "25:00"})
    assert (status, err["error"]["code"]) == (422, "invalid_value")


def test_assignments(api: Api) -> None:
    van = api.call(
        "POST", "/vehicles", json={"plate": "V1", "capacity_kg": "500", "capacity_m3": "4"}
    )[2]
    ann = api.call("POST", "/drivers", json={"name": "Ann"})[2]
    bob = api.call("POST", "/drivers", json={"name": "Bob"})[2]
    body = {"driver_id": ann["id"], "vehicle_id": van["id"], "day": "2026-06-02"}
    status, _, made = api.call("POST", "/assignments", json=body)
    assert (status, made) == (201, body)
    status, _, err = api.call("POST", "/assignments", json={**body, "driver_id": bob["id"]})
    assert (status, err["error"]["code"]) == (409, "fleet_conflict")
    assert api.call("POST", "/assignments", json={**body, "day": "2026-06-03"})[0] == 201
    status, _, err = api.call("POST", "/assignments", json={**body, "vehicle_id": van["id"] + 9})
    assert (status, err["error"]["code"]) == (404, "not_found")
    status, _, err = api.call("POST", "/assignments", json={**body, "day": "2026-02-30"})
    assert (status, err["error"]["code"]) == (422, "invalid_value")


def test_driver_and_customer_tokens_reach_no_fleet_endpoint(api: Api) -> None:
    d = api.world.depot_id
    for role in (Role.DRIVER, Role.CUSTOMER):
        for method, path in [
            ("GET", "/depots"),
            ("GET", f"/depots/{d}"),
            ("GET", "/stock"),
            ("GET", "/vehicles"),
            ("GET", "/drivers"),
        ]:
            status, _, err = api.call(method, path, role=role)
            assert (status, err["error"]["code"]) == (403, "forbidden"), (role, path)
