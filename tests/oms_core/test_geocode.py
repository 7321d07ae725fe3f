"""The geocoder client and the API's use of it, against a real local HTTP server.

Nominatim itself (PostgreSQL + an OSM import of gigabytes) cannot be installed on this
machine, so the server is a stand-in: a small aiohttp app that speaks Nominatim's
``/search?format=jsonv2`` answer format (a JSON array of places whose lat and lon are
strings), knows a handful of addresses, and can be told to fail or hang.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from oms_core.api import Role
from oms_core.geocode import AddressNotFound, GeocodeError, Geocoder, GeocoderUnavailable
from tests.oms_core.test_api import Api, api_for, order_body, serve, stop

PLACES = {
    "Damrak 1, Amsterdam": (52.3760, 4.8970),
    "Dam 1, Amsterdam": (52.3730, 4.8930),
}


@dataclass
class Nominatim:
    """The stand-in's state: what it was asked, and whether to fail or hang."""

    url: str = ""
    asked: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    hang: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends a hang


def nominatim_app(state: Nominatim) -> web.Application:
    """GET /search as Nominatim answers it (jsonv2, limit honoured)."""

    async def search(request: web.Request) -> web.Response:
        state.asked.append({**request.query, "user_agent": request.headers["User-Agent"]})
        if state.hang:
            await state.release.wait()
        if state.status != 200:
            return web.json_response({"error": "internal"}, status=state.status)
        found = PLACES.get(request.query["q"])
        hits = [] if found is None else [
            {
                "place_id": 1,
                "licence": "Data © OpenStreetMap contributors, ODbL 1.0",
                "osm_type": "node",
                "lat": f"{found[0]:.7f}",
                "lon": f"{found[1]:.7f}",
                "category": "place",
                "type": "house",
                "place_rank": 30,
                "importance": 0.1,
                "display_name": request.query["q"],
                "boundingbox": ["52.0", "53.0", "4.0", "5.0"],
            }
        ]  # fmt: skip
        return web.json_response(hits[: int(request.query.get("limit", "10"))])

    app = web.Application()
    app.router.add_get("/search", search)
    return app


@pytest.fixture
def nominatim() -> Iterator[Nominatim]:
    state = Nominatim()
    served = serve(nominatim_app(state))
    state.url = served.url
    try:
        yield state
    finally:
        served.loop.call_soon_threadsafe(state.release.set)
        stop(served)


def test_an_address_is_found_with_a_named_client(nominatim: Nominatim) -> None:
    assert (
        Geocoder(nominatim.url + "/").geocode("Damrak 1, Amsterdam")
        == PLACES["Damrak 1, Amsterdam"]
    )
    (asked,) = nominatim.asked
    assert {k: asked[k] for k in ("q", "format", "limit")} == {
        "q": "Damrak 1, Amsterdam",
        "format": "jsonv2",
        "limit": "1",
    }
    assert asked["user_agent"].startswith("Menara")


def test_no_place_is_a_clear_refusal(nominatim: Nominatim) -> None:
    with pytest.raises(AddressNotFound, match=r"no place for 'Nowhere 9'.*give lat and lon"):
        Geocoder(nominatim.url).geocode("Nowhere 9")


def test_a_failing_slow_or_absent_geocoder_is_unavailable(nominatim: Nominatim) -> None:
    nominatim.status = 502
    with pytest.raises(GeocoderUnavailable, match=r"HTTP 502.*give lat and lon") as err:
        Geocoder(nominatim.url).geocode("Dam 1, Amsterdam")
    assert err.value.code == "geocoder_unavailable"
    nominatim.status, nominatim.hang = 200, True
    with pytest.raises(GeocoderUnavailable, match="no answer"):
        Geocoder(nominatim.url, timeout_s=0.2).geocode("Dam 1, Amsterdam")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(GeocoderUnavailable, match="no answer"):
        Geocoder(f"http://127.0.0.1:{port}").geocode("Dam 1, Amsterdam")
    with pytest.raises(ValueError, match="http"):
        Geocoder("nominatim:8080")


@given(st.binary(max_size=200))
def test_any_answer_is_coordinates_or_a_geocode_error(body: bytes) -> None:
    try:
        lat, lon = Geocoder("http://x").parse(body, "a")
    except GeocodeError:
        return
    assert -90 <= lat <= 90 and -180 <= lon <= 180


@pytest.fixture
def api(clean_db: str, nominatim: Nominatim) -> Iterator[Api]:
    yield from api_for(clean_db, geocoder=Geocoder(nominatim.url, timeout_s=2))


@pytest.mark.db
def test_orders_without_coordinates_are_geocoded(api: Api, nominatim: Nominatim) -> None:
    body = order_body(api.world, lat=None, lon=None, address_text="Dam 1, Amsterdam")
    status, _, order = api.call("POST", "/orders", json=body)
    assert (status, (order["lat"], order["lon"])) == (201, PLACES["Dam 1, Amsterdam"])
    status, _, order = api.call("POST", "/orders", json={**body, "lat": 52.0, "lon": 4.0})
    assert (status, order["lat"], len(nominatim.asked)) == (201, 52.0, 1)  # not asked

    status, _, err = api.call("POST", "/orders", json={**body, "address_text": "Nowhere 9"})
    assert (status, err["error"]["code"]) == (422, "address_not_found")
    assert err["error"]["details"][0]["field"] == "/address_text"
    nominatim.status = 500
    status, _, err = api.call("POST", "/orders", json=body)
    assert (status, err["error"]["code"]) == (503, "geocoder_unavailable")
    assert "give lat and lon" in err["error"]["message"]
    assert api.call("GET", "/orders", role=Role.SUPERVISOR)[2]["next_cursor"] is None
    assert len(api.call("GET", "/orders")[2]["orders"]) == 2  # refusals stored nothing


@pytest.mark.db
def test_import_rows_are_geocoded_or_refused(api: Api, nominatim: Nominatim) -> None:
    rows: list[dict[str, Any]] = [
        order_body(api.world, lat=None, lon=None, address_text=text)
        for text in ("Damrak 1, Amsterdam", "Nowhere 9", "Damrak 1, Amsterdam")
    ]
    status, _, report = api.call("POST", "/orders/import", json=rows)
    assert (status, report["created"], report["refused_rows"]) == (200, 2, 1)
    assert report["rows"][1]["error"]["code"] == "address_not_found"
    order = api.call("GET", f"/orders/{report['rows'][0]['order_id']}")[2]
    assert (order["lat"], order["lon"]) == PLACES["Damrak 1, Amsterdam"]
    assert [a["q"] for a in nominatim.asked] == ["Damrak 1, Amsterdam", "Nowhere 9"]  # once each
