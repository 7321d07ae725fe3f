"""Customers (with delivery addresses and notification preferences) and products through
the API, over real sockets and the real database: pages, refusals and roles."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from oms_core.api import Role
from oms_core.geocode import Geocoder
from tests.oms_core.test_api import Api, api_for, order_body
from tests.oms_core.test_geocode import PLACES, Nominatim, nominatim  # noqa: F401 (fixture)

pytestmark = pytest.mark.db


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


def test_customers_create_read_and_page(api: Api) -> None:
    body = {
        "name": "Bea",
        "email": "bea@example.org",
        "phone": "+31 20 1",
        "notify_prefs": {"email": True, "sms": False},
        "addresses": [
            {"text": "Dam 1, Amsterdam", "lat": 52.373, "lon": 4.893},
            {"text": "Damrak 1, Amsterdam", "lat": 52.376, "lon": 4.897},
        ],
    }
    status, headers, bea = api.call("POST", "/customers", json=body)
    assert status == 201
    assert headers["Location"] == f"/api/v1/customers/{bea['id']}"
    assert {k: bea[k] for k in ("name", "email", "phone", "notify_prefs")} == {
        k: body[k] for k in ("name", "email", "phone", "notify_prefs")
    }
    assert [(a["text"], a["lat"], a["customer_id"]) for a in bea["addresses"]] == [
        ("Dam 1, Amsterdam", 52.373, bea["id"]),
        ("Damrak 1, Amsterdam", 52.376, bea["id"]),
    ]
    assert api.call("GET", f"/customers/{bea['id']}", role=Role.SUPERVISOR)[2] == bea
    cy = api.call("POST", "/customers", json={"name": "Cy"})[2]
    assert (cy["email"], cy["notify_prefs"], cy["addresses"]) == (None, {}, [])

    page = api.call("GET", "/customers?limit=2")[2]
    assert [c["name"] for c in page["customers"]] == ["Ada", "Bea"]  # Ada: the seed's
    page = api.call("GET", f"/customers?limit=2&cursor={page['next_cursor']}")[2]
    assert page == {"customers": [cy], "next_cursor": None}
    assert api.call("GET", f"/customers/{cy['id'] + 1}")[0] == 404


def test_customer_refusals_and_roles(api: Api) -> None:
    status, _, err = api.call("POST", "/customers", json={"name": "X", "email": "not-mail"})
    assert (status, err["error"]["details"][0]["field"]) == (422, "/email")
    status, _, err = api.call(
        "POST", "/customers", json={"name": "X", "notify_prefs": {"pigeon": True}}
    )
    assert (status, err["error"]["code"]) == (422, "unknown_field")
    assert api.call("POST", "/customers", role=Role.SUPERVISOR, json={"name": "X"})[0] == 403
    assert api.call("GET", "/customers", role=Role.DRIVER)[0] == 403
    assert api.call("GET", "/customers", role=Role.CUSTOMER)[0] == 403


def test_an_address_without_coordinates_is_refused_without_a_geocoder(api: Api) -> None:
    status, _, err = api.call(
        "POST", "/customers", json={"name": "Di", "addresses": [{"text": "Dam 1, Amsterdam"}]}
    )
    assert (status, err["error"]["code"]) == (422, "no_coordinates")
    assert err["error"]["details"][0]["field"] == "/addresses/0"
    assert "geocoder_url" in err["error"]["message"]
    assert len(api.call("GET", "/customers")[2]["customers"]) == 1  # Di was not stored

    cid = api.world.customer_id
    status, _, err = api.call("POST", f"/customers/{cid}/addresses", json={"text": "Dam 1"})
    assert (status, err["error"]["code"]) == (422, "no_coordinates")
    status, _, err = api.call(
        "POST", f"/customers/{cid}/addresses", json={"text": "Dam 1", "lat": 52.37}
    )
    assert (status, err["error"]["code"]) == (422, "bad_coordinates")
    place = {"text": "Dam 1", "lat": 52.373, "lon": 4.893}
    status, _, address = api.call("POST", f"/customers/{cid}/addresses", json=place)
    assert (status, address) == (201, {**place, "id": address["id"], "customer_id": cid})
    assert api.call("POST", f"/customers/{cid + 9}/addresses", json=place)[0] == 404
    assert api.call("GET", f"/customers/{cid}")[2]["addresses"] == [address]


@pytest.fixture
def geo_api(clean_db: str, nominatim: Nominatim) -> Iterator[Api]:  # noqa: F811 (fixture)
    yield from api_for(clean_db, geocoder=Geocoder(nominatim.url))


def test_addresses_are_geocoded_when_a_geocoder_is_set(
    geo_api: Api,
    nominatim: Nominatim,  # noqa: F811 (fixture)
) -> None:
    api, cid = geo_api, geo_api.world.customer_id
    status, _, address = api.call(
        "POST", f"/customers/{cid}/addresses", json={"text": "Damrak 1, Amsterdam"}
    )
    assert (status, (address["lat"], address["lon"])) == (201, PLACES["Damrak 1, Amsterdam"])
    status, _, err = api.call("POST", f"/customers/{cid}/addresses", json={"text": "Nowhere 9"})
    assert (status, err["error"]["code"]) == (422, "address_not_found")
    # An order to the stored address takes its coordinates from it, without asking.
    body = order_body(api.world, lat=None, lon=None, address_id=address["id"])
    order = api.call("POST", "/orders", json=body)[2]
    assert (order["lat"], order["lon"]) == PLACES["Damrak 1, Amsterdam"]
    assert len(nominatim.asked) == 2


def test_products_create_read_and_page(api: Api) -> None:
    body = {"sku": "C-1", "name": "Crate", "unit_weight_kg": "1.5", "unit_volume_m3": "0.02"}
    status, headers, crate = api.call("POST", "/products", json=body)
    assert (status, headers["Location"]) == (201, "/api/v1/products/C-1")
    assert crate == {
        "sku": "C-1",
        "name": "Crate",
        "unit_weight_kg": "1.500",
        "unit_volume_m3": "0.0200",
        "active": True,
    }
    assert api.call("GET", "/products/C-1", role=Role.SUPERVISOR)[2] == crate
    assert api.call("GET", "/products/NOPE")[0] == 404
    status, _, err = api.call("POST", "/products", json=body)
    assert (status, err["error"]["code"]) == (409, "product_exists")
    for bad in ({"unit_weight_kg": "-1"}, {"unit_volume_m3": "0.12345"}, {"sku": "a/b"}):
        status, _, err = api.call("POST", "/products", json={**body, "sku": "D", **bad})
        assert (status, err["error"]["code"]) == (422, "invalid_value"), bad
    assert api.call("POST", "/products", role=Role.SUPERVISOR, json=body)[0] == 403

    page = api.call("GET", "/products?limit=2")[2]
    assert ([p["sku"] for p in page["products"]], page["next_cursor"]) == (["A", "B"], "B")
    page = api.call("GET", f"/products?limit=2&cursor={page['next_cursor']}")[2]
    assert page == {"products": [crate], "next_cursor": None}
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT unit_weight_kg FROM products WHERE sku = 'C-1'").fetchone()
    assert row is not None and str(row[0]) == "1.500"
