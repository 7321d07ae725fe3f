"""Routes: sane lengths, positions on the line, clean turn-rounds, helpful file errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simulators.errors import RouteError
from simulators.routes import JAKARTA_ROUTES, Route, haversine_m, load_geojson

# 0.01 degree of longitude on the equator, in metres (2 pi R / 36000).
EQ_001_M = 1111.95


def test_equator_route_has_round_numbers() -> None:
    r = Route("eq", ((0.0, 0.0), (0.01, 0.0)))
    assert r.length_m == pytest.approx(EQ_001_M, abs=0.01)
    lat, lon, course = r.position_at(r.length_m / 2)
    assert (lat, lon, course) == pytest.approx((0.0, 0.005, 90.0))
    # Bouncing: 100 m past the end is 100 m before it, heading west.
    lat, lon, course = r.position_at(r.length_m + 100)
    assert lon == pytest.approx(0.01 * (EQ_001_M - 100) / EQ_001_M)
    assert course == pytest.approx(270.0)


def test_loop_closes_back_to_the_start() -> None:
    square = Route("sq", ((0.0, 0.0), (0.01, 0.0), (0.01, 0.01), (0.0, 0.01)), "loop")
    assert square.length_m == pytest.approx(4 * EQ_001_M, rel=1e-4)
    assert square.position_at(square.length_m) == pytest.approx(square.position_at(0))
    assert square.position_at(3.5 * EQ_001_M)[2] == pytest.approx(180.0)


@pytest.mark.parametrize("route", JAKARTA_ROUTES, ids=lambda r: r.name)
def test_builtin_routes_are_jakarta_streets(route: Route) -> None:
    assert 10 <= len(route.coords) <= 40
    assert 3_000 < route.length_m < 30_000
    for lon, lat in route.coords:
        assert -6.40 < lat < -6.05 and 106.70 < lon < 107.00


@pytest.mark.parametrize("route", JAKARTA_ROUTES, ids=lambda r: r.name)
def test_positions_lie_on_the_route_and_move_smoothly(route: Route) -> None:
    step = 10.0
    prev = route.position_at(0.0)
    for d in np.arange(step, 2.5 * route.cycle_m, step):
        lat, lon, course = route.position_at(float(d))
        assert route.distance_to_m(lat, lon) < 0.01
        assert 0.0 <= course < 360.0
        # Never a jump: at most the distance driven (less only across a corner).
        assert haversine_m(prev[0], prev[1], lat, lon) <= step + 1e-3
        prev = (lat, lon, course)


def test_bounce_returns_on_the_same_track_reversed() -> None:
    r = JAKARTA_ROUTES[0]
    there = r.position_at(r.length_m - 250)
    back = r.position_at(r.length_m + 250)
    assert back[:2] == pytest.approx(there[:2])
    assert (back[2] - there[2]) % 360 == pytest.approx(180.0)


def test_routes_are_distinct_by_name() -> None:
    assert len({r.name for r in JAKARTA_ROUTES}) == len(JAKARTA_ROUTES) >= 6


def _write(tmp_path: Path, doc: object, name: str = "routes.geojson") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def test_load_geojson_lines_and_multilines(tmp_path: Path) -> None:
    line = {"type": "LineString", "coordinates": [[106.80, -6.20], [106.81, -6.20]]}
    multi = {
        "type": "MultiLineString",
        "coordinates": [[[106.8, -6.2], [106.8, -6.21]], [[106.9, -6.1], [106.91, -6.1]]],
    }
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": line, "properties": {"name": "a", "end": "loop"}},
            {"type": "Feature", "geometry": multi, "properties": {}},
        ],
    }
    routes = load_geojson(_write(tmp_path, doc, "depot.geojson"))
    assert [(r.name, r.end) for r in routes] == [
        ("a", "loop"),
        ("depot-1#0", "bounce"),
        ("depot-1#1", "bounce"),
    ]
    assert routes[1].length_m == pytest.approx(haversine_m(-6.2, 106.8, -6.21, 106.8))
    # A bare geometry is accepted too.
    assert len(load_geojson(_write(tmp_path, line))) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a GeoJSON object"),
        ('{"type": "FeatureCollection", "features": []}', "no LineString"),
        ('{"type": "Point", "coordinates": [106.8, -6.2]}', "got 'Point'"),
        ('{"type": "LineString", "coordinates": [[106.8, -6.2]]}', "two distinct vertices"),
        ('{"type": "LineString", "coordinates": [[-6.2, 106.8], [-6.3, 106.8]]}', "lon/lat"),
        ('{"type": "LineString", "coordinates": [["a"], [1, 2]]}', "number pairs"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "bad.geojson"
    p.write_text(content)
    with pytest.raises(RouteError, match=message) as info:
        load_geojson(p)
    assert str(p) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RouteError, match="cannot read"):
        load_geojson(tmp_path / "nope.geojson")
