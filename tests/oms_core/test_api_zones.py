"""Zones through the API (real sockets and database): create, read, list with keyset
pages and filters, delete (deactivate), import with a report per feature, the roles,
and ``load_zones`` as the rule worker reads it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from geofence import ZoneIndex
from oms_core.api import Role
from oms_core.api.zones import load_zones
from tests.oms_core import DEPOT_LAT, DEPOT_LON
from tests.oms_core.test_api import Api, api_for

pytestmark = pytest.mark.db


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


def square(lat: float = DEPOT_LAT, lon: float = DEPOT_LON, d: float = 0.01) -> dict[str, Any]:
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def feature(geometry: Any, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def test_create_read_and_delete(api: Api) -> None:
    body = {"name": "school", "kind": "speed", "geometry": square(), "speed_limit_kmh": 30}
    status, headers, zone = api.call("POST", "/zones", json=body)
    assert status == 201
    assert headers["Location"].endswith(f"/zones/{zone['id']}")
    fields = ("name", "kind", "speed_limit_kmh", "depot_id", "active")
    assert [zone[k] for k in fields] == ["school", "speed", 30.0, None, True]
    assert zone["geometry"] == {
        "type": "Polygon",
        "coordinates": [[[float(x), float(y)] for x, y in square()["coordinates"][0]]],
    }
    assert api.call("GET", f"/zones/{zone['id']}", role=Role.SUPERVISOR)[2] == zone
    status, _, gone = api.call("DELETE", f"/zones/{zone['id']}")
    assert (status, gone["active"]) == (200, False)
    assert api.call("DELETE", f"/zones/{zone['id']}")[2] == gone  # idempotent
    status, _, err = api.call("GET", f"/zones/{zone['id'] + 1}")
    assert (status, err["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"kind": "speed"}, "missing_speed_limit", "/speed_limit_kmh"),
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[4.9, 52.3], [5.0, 52.3], [5.0, 52.4], [4.9, 52.3]]],
                }
            },
            None,
            None,
        ),
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[4.9, 52.3], [5.0, 52.3], [5.0, 52.4], [4.9, 52.4]]],
                }
            },
            "unclosed_ring",
            "/geometry/coordinates/0",
        ),
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[52.3, 4.9], [52.3, 95.0], [52.4, 5.0], [52.3, 4.9]]],
                }
            },
            "out_of_range",
            "/geometry/coordinates/0/1",
        ),
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
                }
            },
            "invalid_polygon",
            "/geometry/coordinates",
        ),
        (
            {"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}},
            "too_few_positions",
            "/geometry/coordinates/0",
        ),
        (
            {"geometry": {"type": "Point", "coordinates": [[0, 0]]}},
            "invalid_value",
            "/geometry/type",
        ),
        ({"name": "   "}, "bad_property", "/name"),
        ({"depot_id": 999_999}, "invalid_value", "/depot_id"),
    ],
)
def test_bad_zones_are_refused_with_stable_codes(
    api: Api, changes: dict[str, Any], code: str | None, field: str | None
) -> None:
    status, _, out = api.call(
        "POST", "/zones", json={"name": "z", "kind": "area", "geometry": square(), **changes}
    )
    if code is None:  # a closed triangle is fine
        assert status == 201
        return
    assert (status, out["error"]["code"]) == (422, code)
    assert out["error"]["details"][0]["field"] == field


def test_roles(api: Api) -> None:
    body = {"name": "z", "kind": "area", "geometry": square()}
    status, _, err = api.call("POST", "/zones", role=Role.SUPERVISOR, json=body)
    assert (status, err["error"]["code"]) == (403, "forbidden")
    assert api.call("GET", "/zones", role=None)[0] == 401
    assert api.call("GET", "/zones", role=Role.SUPERVISOR)[0] == 200


def test_list_pages_and_filters(api: Api) -> None:
    d = api.world.depot_id
    ids = []
    for i in range(5):
        body: dict[str, Any] = {
            "name": f"z{i}",
            "kind": "restricted" if i % 2 else "area",
            "geometry": square(d=0.001 * (i + 1)),
        }
        if i == 4:
            body["depot_id"] = d
        ids.append(api.call("POST", "/zones", json=body)[2]["id"])
    api.call("DELETE", f"/zones/{ids[0]}")

    seen, cursor = [], None
    while True:
        path = "/zones?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, _, page = api.call("GET", path, role=Role.SUPERVISOR)
        assert status == 200 and len(page["zones"]) <= 2
        seen += [z["id"] for z in page["zones"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]  # newest first, nothing repeated or skipped

    def names(query: str) -> list[str]:
        return [z["name"] for z in api.call("GET", "/zones?" + query)[2]["zones"]]

    assert names("kind=restricted") == ["z3", "z1"]
    assert names("active=false") == ["z0"]
    assert names("active=true&kind=area") == ["z4", "z2"]
    assert names(f"depot_id={d}") == ["z4"]
    assert names("cursor=99999999999999999999") == ["z4", "z3", "z2", "z1", "z0"]
    status, _, err = api.call("GET", "/zones?active=maybe")
    assert (status, err["error"]["code"]) == (422, "invalid_value")


def test_import_stores_good_features_and_refuses_bad_ones_alone(api: Api) -> None:
    d = api.world.depot_id
    doc = {
        "type": "FeatureCollection",
        "name": "from a map tool",
        "features": [
            feature(square(), name="yard", depot_id=d),
            feature(square(d=0.002), name="slow", kind="speed"),  # no limit
            feature(square(d=0.003), name="slow 30", kind="speed", speed_limit_kmh=30),
            feature(
                {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
                name="bow tie",
            ),
            "not a feature",
            feature(square(), name="lost", depot_id=d + 100),
        ],
    }
    status, _, report = api.call("POST", "/zones/import", json=doc)
    assert status == 200
    assert (report["created"], report["refused"]) == (2, 4)
    rows = report["features"]
    assert [(r["feature"], r["ok"], r["name"]) for r in rows] == [
        (0, True, "yard"), (1, False, "slow"), (2, True, "slow 30"),
        (3, False, "bow tie"), (4, False, None), (5, False, "lost"),
    ]  # fmt: skip
    assert [r["error"]["code"] for r in rows if not r["ok"]] == [
        "missing_speed_limit", "invalid_polygon", "wrong_type", "invalid_value",
    ]  # fmt: skip
    assert rows[3]["error"]["details"][0]["field"] == "/features/3/geometry/coordinates"
    assert "Self-intersection" in rows[3]["error"]["message"]
    yard = api.call("GET", f"/zones/{rows[0]['zone_id']}")[2]
    assert (yard["name"], yard["depot_id"]) == ("yard", d)
    assert len(api.call("GET", "/zones")[2]["zones"]) == 2

    status, _, err = api.call("POST", "/zones/import", json={"type": "Feature", "features": []})
    assert (status, err["error"]["code"]) == (422, "invalid_value")
    status, _, err = api.call("POST", "/zones/import", role=Role.SUPERVISOR, json=doc)
    assert status == 403


def test_load_zones_reads_the_active_zones_for_the_rules(api: Api) -> None:
    body = {"name": "school", "kind": "speed", "geometry": square(), "speed_limit_kmh": 30}
    keep = api.call("POST", "/zones", json=body)[2]["id"]
    drop = api.call("POST", "/zones", json={"name": "old", "kind": "area", "geometry": square()})[
        2
    ]["id"]
    api.call("DELETE", f"/zones/{drop}")
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO zones (name, kind, geometry) VALUES ('broken', 'area', %s)",
            ('{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}',),
        )  # written around the API: left out, not fatal
        zones = load_zones(conn)
    assert [(z.id, z.name, z.kind, z.speed_limit_kmh) for z in zones] == [
        (str(keep), "school", "speed", 30.0)
    ]
    index = ZoneIndex(zones)
    assert index.members_of(DEPOT_LAT, DEPOT_LON) == frozenset({str(keep)})
    assert index.members_of(DEPOT_LAT + 0.02, DEPOT_LON) == frozenset()
