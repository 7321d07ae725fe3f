"""GeoJSON zones: good outlines parse, each typical fault has its code, and nothing a
hostile client sends escapes as anything but ``InvalidGeoJSON``."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence import InvalidGeoJSON, parse_feature, parse_geometry, parse_zones
from geofence.geojson import MAX_FEATURES, MAX_VERTICES, features_of

SQUARE = [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]
HOLE = [[0.2, 0.2], [0.2, 0.8], [0.8, 0.8], [0.8, 0.2], [0.2, 0.2]]


def poly(*rings: Any) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def feature(geometry: Any, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def code_of(obj: Any, **kw: Any) -> tuple[str, str]:
    with pytest.raises(InvalidGeoJSON) as info:
        parse_zones(obj, **kw)
    return info.value.code, info.value.path


def test_a_polygon_with_a_hole_and_altitudes() -> None:
    (spec,) = parse_zones(poly([[*p, 12.5] for p in SQUARE], HOLE), name="yard")
    assert (spec.name, spec.kind, spec.speed_limit_kmh) == ("yard", "area", None)
    assert spec.geometry.area == pytest.approx(1 - 0.36)
    assert spec.geojson["coordinates"][0][1] == [1.0, 0.0]  # altitude dropped, floats


def test_a_feature_collection_with_properties() -> None:
    multi = {
        "type": "MultiPolygon",
        "coordinates": [[SQUARE], [[[p[0] + 2, p[1]] for p in SQUARE]]],
    }
    doc = {
        "type": "FeatureCollection",
        "features": [
            feature(poly(SQUARE), name="school", kind="speed", speed_limit_kmh=30),
            feature(multi, name="parks", kind="restricted"),
        ],
    }
    school, parks = parse_zones(doc)
    assert (school.name, school.kind, school.speed_limit_kmh) == ("school", "speed", 30.0)
    assert (parks.kind, parks.geometry.geom_type, parks.geometry.area) == (
        "restricted", "MultiPolygon", 2.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("obj", "code", "path"),
    [
        ({"type": "Point", "coordinates": [0, 0]}, "wrong_type", "/"),
        ("Polygon", "wrong_type", "/"),
        (poly([*SQUARE[:-1], [0, 0.5]]), "unclosed_ring", "/coordinates/0"),
        (poly([[0, 0], [1, 0], [0, 0]]), "too_few_positions", "/coordinates/0"),
        (poly([[0, 0], [1, 0], [1, 91], [0, 0]]), "out_of_range", "/coordinates/0/2"),
        (poly([[0, 0], [181, 0], [1, 1], [0, 0]]), "out_of_range", "/coordinates/0/1"),
        (poly([[0, 0], [1, 0], [1, math.nan], [0, 0]]), "out_of_range", "/coordinates/0/2"),
        (poly([[0, 0], [1, 0], [1, True], [0, 0]]), "wrong_type", "/coordinates/0/2"),
        (poly([[0, 0], [1, 0], [1], [0, 0]]), "wrong_type", "/coordinates/0/2"),
        (poly([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]), "invalid_polygon", "/coordinates"),
        ({"type": "Polygon", "coordinates": []}, "wrong_type", "/coordinates"),
        ({"type": "MultiPolygon", "coordinates": 3}, "wrong_type", "/coordinates"),
    ],
)
def test_faults_have_stable_codes(obj: Any, code: str, path: str) -> None:
    assert code_of(obj, name="z") == (code, path)


def test_a_bow_tie_is_refused_with_the_reason_not_repaired() -> None:
    with pytest.raises(InvalidGeoJSON, match=r"Self-intersection\[0.5 0.5\]"):
        parse_geometry(poly([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]))


def test_a_hole_outside_its_shell_is_refused() -> None:
    far = [[5, 5], [5, 6], [6, 6], [6, 5], [5, 5]]
    assert code_of(poly(SQUARE, far), name="z")[0] == "invalid_polygon"


def test_too_many_vertices() -> None:
    n = MAX_VERTICES  # one more than allowed once the ring is closed
    ring = [[math.cos(2 * math.pi * i / n), math.sin(2 * math.pi * i / n)] for i in range(n)]
    assert code_of(poly([*ring, ring[0]]), name="z")[0] == "too_many_vertices"
    assert parse_zones(poly([*ring[:-1], ring[0]]), name="z")[0].geometry.is_valid


def test_properties_are_checked() -> None:
    assert code_of(feature(poly(SQUARE), kind="speed", name="s")) == (
        "missing_speed_limit", "/properties/speed_limit_kmh",
    )  # fmt: skip
    assert code_of(feature(poly(SQUARE), name="s", kind="depot"))[0] == "bad_property"
    assert code_of(feature(poly(SQUARE)))[0] == "bad_property"  # no name
    assert code_of(feature(poly(SQUARE), name=""))[0] == "bad_property"
    assert code_of(feature(poly(SQUARE), name="s", speed_limit_kmh=-5))[0] == "bad_property"
    assert code_of(feature(poly(SQUARE), name="s", speed_limit_kmh="50"))[0] == "bad_property"
    assert code_of(feature(poly(SQUARE), name="\ud800"))[0] == "bad_property"
    assert parse_feature(feature(poly(SQUARE)), name="default").name == "default"
    huge = poly([[0, 0], [10**5000, 0], [1, 1], [0, 0]])
    assert code_of(huge, name="z") == ("out_of_range", "/coordinates/0/1")


def test_too_many_features() -> None:
    doc = {"type": "FeatureCollection", "features": [{}] * (MAX_FEATURES + 1)}
    with pytest.raises(InvalidGeoJSON) as info:
        features_of(doc)
    assert info.value.code == "too_many_features"


JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=40,
)
COORD = st.one_of(st.floats(-200, 200), st.integers(-200, 200), st.just(math.inf))
RING = st.lists(st.lists(COORD, min_size=1, max_size=4), max_size=8)
SHAPED = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Polygon", "MultiPolygon", "Feature"]),
        "coordinates": st.lists(RING | JSON, max_size=3),
    }
)
FEATURE = st.fixed_dictionaries(
    {"type": st.just("Feature"), "properties": JSON, "geometry": SHAPED | JSON}
)


@settings(max_examples=400)
@given(
    st.one_of(
        JSON,
        SHAPED,
        FEATURE,
        st.builds(
            lambda f: {"type": "FeatureCollection", "features": f},
            st.lists(FEATURE | JSON, max_size=3),
        ),
    )
)
def test_hostile_input_raises_only_invalid_geojson(obj: Any) -> None:
    try:
        specs = parse_zones(obj, name="n")
    except InvalidGeoJSON as exc:
        assert exc.code and exc.message
        return
    assert all(s.geometry.is_valid and not s.geometry.is_empty for s in specs)
