"""Plans on a road network: OSRM's table (travel times) and route (trip geometry) services.

No OSRM server with a road graph can be built on this machine, so the server is a
stand-in: a small aiohttp app answering ``/table/v1`` and ``/route/v1`` in OSRM's JSON
formats. Its table is great-circle distance driven at 10 m/s; its route geometry puts
one bend vertex (0.001° north of the midpoint) in every leg, so a stored road geometry
is told apart from straight legs. It refuses tables larger than its max table size the
way osrm-routed does (400 TooBig) and can be told to fail.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

import psycopg
import pytest
from aiohttp import web

from menara import plan_cmd
from menara.settings import Settings
from oms_core import dispatch, fleet, orders
from oms_core.api import Role
from oms_core.planning import HaversineMatrix, OsrmMatrix, Site
from oms_core.planning.matrix import RoutingUnavailable
from oms_core.planning.routes import OsrmRoutes, road_providers
from oms_core.states import OrderState
from tests.oms_core import DEPOT_LAT, DEPOT_LON, World, order_in, seed
from tests.oms_core.test_api import Api, api_for, serve, stop

DAY = date(2026, 6, 2)
BEND = 0.001
Point = tuple[float, float]


@dataclass
class Osrm:
    """The stand-in's state: the coordinate counts it was asked for, and failure switches."""

    url: str = ""
    table_sizes: list[int] = field(default_factory=list)
    routes: int = 0
    max_table_size: int = 100
    fail_table: bool = False
    fail_route: bool = False


def _coords(request: web.Request) -> list[Point]:
    return [
        (float(x), float(y)) for x, y in (p.split(",") for p in request.match_info["c"].split(";"))
    ]


def _indexes(request: web.Request, key: str, n: int) -> list[int]:
    text = request.query.get(key)
    return list(range(n)) if text is None else [int(i) for i in text.split(";")]


def bent(points: list[Point]) -> list[list[float]]:
    """The stand-in's road geometry through ``points``: a bend vertex in every leg."""
    line = [list(points[0])]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        line += [[(x0 + x1) / 2, (y0 + y1) / 2 + BEND], [x1, y1]]
    return line


def is_road(line: list[list[float]], points: list[Point]) -> bool:
    """``line`` is the stand-in's road geometry through ``points`` (to 1e-6°, the
    precision the request carries)."""
    want = bent(points)
    return len(line) == len(want) and all(
        p == pytest.approx(q, abs=1e-6) for p, q in zip(line, want, strict=True)
    )


def osrm_app(state: Osrm) -> web.Application:
    async def table(request: web.Request) -> web.Response:
        coords = _coords(request)
        state.table_sizes.append(len(coords))
        if state.fail_table:
            return web.json_response({"code": "InternalError", "message": "down"}, status=500)
        if len(coords) > state.max_table_size:
            body = {"code": "TooBig", "message": "Too many table coordinates"}
            return web.json_response(body, status=400)
        sites = [Site(str(i), lat, lon) for i, (lon, lat) in enumerate(coords)]
        dist, _ = HaversineMatrix(road_factor=1.0).matrices(sites)
        src = _indexes(request, "sources", len(coords))
        dst = _indexes(request, "destinations", len(coords))
        metres = [[float(dist[i, j]) for j in dst] for i in src]
        return web.json_response(
            {
                "code": "Ok",
                "distances": metres,
                "durations": [[m / 10.0 for m in row] for row in metres],
                "sources": [{"location": list(coords[i])} for i in src],
                "destinations": [{"location": list(coords[j])} for j in dst],
            }
        )

    async def route(request: web.Request) -> web.Response:
        state.routes += 1
        assert request.query["overview"] == "full" and request.query["geometries"] == "geojson"
        if state.fail_route:
            body = {"code": "NoRoute", "message": "Impossible route between points"}
            return web.json_response(body, status=400)
        line = bent(_coords(request))
        geometry = {"type": "LineString", "coordinates": line}
        return web.json_response(
            {"code": "Ok", "routes": [{"geometry": geometry, "legs": [], "distance": 1.0}]}
        )

    app = web.Application()
    app.router.add_get("/table/v1/driving/{c}", table)
    app.router.add_get("/route/v1/driving/{c}", route)
    return app


@pytest.fixture
def osrm() -> Iterator[Osrm]:
    state = Osrm()
    served = serve(osrm_app(state))
    state.url = served.url
    try:
        yield state
    finally:
        stop(served)


SITES = [Site(str(i), DEPOT_LAT + 0.01 * i, DEPOT_LON - 0.007 * i) for i in range(7)]


def test_the_table_is_read_whole_or_in_blocks(osrm: Osrm) -> None:
    dist, dur = OsrmMatrix(osrm.url).matrices(SITES)
    expected, _ = HaversineMatrix(road_factor=1.0).matrices(SITES)
    assert (dist == expected).all() and (dur == (expected / 10.0).round()).all()
    assert osrm.table_sizes == [7]

    osrm.max_table_size, osrm.table_sizes = 4, []
    with pytest.raises(RoutingUnavailable, match=r"TooBig.*clear osrm_url"):
        OsrmMatrix(osrm.url).matrices(SITES)
    osrm.table_sizes = []
    blocked = OsrmMatrix(osrm.url, max_table_size=4).matrices(SITES)
    assert (blocked[0] == dist).all() and (blocked[1] == dur).all()
    assert max(osrm.table_sizes) <= 4 and len(osrm.table_sizes) == 16  # 4 × 4 blocks


def test_route_geometry_follows_the_road(osrm: Osrm) -> None:
    points = [(4.9, 52.37), (4.91, 52.38), (4.9, 52.37)]
    assert is_road(OsrmRoutes(osrm.url).geometry(points), points)
    osrm.fail_route = True
    with pytest.raises(RoutingUnavailable, match="HTTP 400"):
        OsrmRoutes(osrm.url).geometry(points)
    assert isinstance(road_providers("")[0], HaversineMatrix)
    assert isinstance(road_providers(osrm.url)[0], OsrmMatrix)


def add_day(w: World) -> World:
    """Three reserved orders on the day and one van with its driver."""
    with psycopg.connect(w.dsn, autocommit=True) as conn:
        conn.execute("UPDATE stock SET on_hand = 1000")
        for k in range(3):
            o = orders.create_order(conn, order_in(w, lon=DEPOT_LON + 0.01 * (k + 1)))
            orders.transition(conn, o.id, OrderState.VERIFIED, actor="test")
            orders.transition(conn, o.id, OrderState.RESERVED, actor="test")
        van = fleet.add_vehicle(
            conn, plate="V1", capacity_kg=500, capacity_m3=5, depot_id=w.depot_id
        )
        driver = fleet.add_driver(conn, name="D", shift_end=time(19))
        fleet.assign(conn, driver.id, van.id, DAY)
    return w


@pytest.fixture
def world(clean_db: str) -> World:
    return add_day(seed(clean_db))


def stored_lines(dsn: str) -> list[tuple[list[list[float]], list[Point]]]:
    """(route_geometry, [depot, stops..., depot]) of every stored trip."""
    with psycopg.connect(dsn) as conn:
        out = []
        for trip_id, line in conn.execute("SELECT id, route_geometry FROM trips ORDER BY id"):
            stops = conn.execute(
                "SELECT lon, lat FROM stops WHERE trip_id = %s ORDER BY seq", (trip_id,)
            ).fetchall()
            depot = (DEPOT_LON, DEPOT_LAT)
            out.append((line, [depot, *((x, y) for x, y in stops), depot]))
    return out


def plan(dsn: str, **options: Any) -> dispatch.DayPlan:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return dispatch.plan_day(conn, DAY, time_limit_s=1, max_iterations=200, **options)


@pytest.mark.db
def test_trips_store_osrm_road_geometry(world: World, osrm: Osrm) -> None:
    matrix, routes = road_providers(osrm.url)
    made = plan(world.dsn, matrix=matrix, routes=routes)
    assert len(made.scheduled) == 3 and osrm.table_sizes == [4] and osrm.routes == 1
    ((line, points),) = stored_lines(world.dsn)
    assert is_road(line, points) and len(line) == 2 * (len(points) - 1) + 1


@pytest.mark.db
def test_a_failed_route_falls_back_to_straight_legs_with_a_warning(
    world: World, osrm: Osrm, caplog: pytest.LogCaptureFixture
) -> None:
    osrm.fail_route = True
    matrix, routes = road_providers(osrm.url)
    with caplog.at_level(logging.WARNING, logger="oms_core.dispatch"):
        made = plan(world.dsn, matrix=matrix, routes=routes)
    assert len(made.scheduled) == 3
    ((line, points),) = stored_lines(world.dsn)
    assert line == [list(p) for p in points]
    (record,) = caplog.records
    assert "straight legs" in record.getMessage() and "NoRoute" in record.getMessage()


@pytest.mark.db
def test_menara_plan_uses_osrm_when_configured(
    world: World, osrm: Osrm, capsys: pytest.CaptureFixture[str]
) -> None:
    osrm.fail_table = True
    cfg = Settings(db_dsn=world.dsn, osrm_url=osrm.url, plan_time_limit_s=1)
    assert plan_cmd.run(DAY, world.depot_id, cfg) == 1
    assert "HTTP 500" in capsys.readouterr().err
    assert stored_lines(world.dsn) == []
    osrm.fail_table = False
    assert plan_cmd.run(DAY, world.depot_id, cfg) == 0
    ((line, points),) = stored_lines(world.dsn)
    assert is_road(line, points)


@pytest.fixture
def api(clean_db: str, osrm: Osrm) -> Iterator[Api]:
    matrix, routes = road_providers(osrm.url)
    for api in api_for(clean_db, matrix=matrix, routes=routes):  # seeds the world
        add_day(api.world)
        yield api


@pytest.mark.db
def test_post_plans_uses_osrm(api: Api, osrm: Osrm) -> None:
    osrm.fail_table = True
    body = {"date": DAY.isoformat(), "time_limit_s": 1}
    status, _, err = api.call("POST", "/plans", json=body)
    assert (status, err["error"]["code"]) == (503, "routing_unavailable")
    assert "clear osrm_url" in err["error"]["message"]
    osrm.fail_table = False
    status, _, result = api.call("POST", "/plans", json=body)
    assert (status, len(result["scheduled"])) == (201, 3)
    ((line, points),) = stored_lines(api.world.dsn)
    assert result["trips"][0]["route_geometry"] == line and is_road(line, points)
    assert api.call("GET", "/trips", role=Role.SUPERVISOR)[2]["trips"] == result["trips"]
