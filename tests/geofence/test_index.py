"""ZoneIndex against brute-force shapely: the h3 prefilter never drops a point shapely says
is inside, and never adds one it says is outside, for small, large and concave zones and
for points right next to their edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely import MultiPolygon, Polygon

from geofence import UnknownZone, Zone, ZoneIndex

LAT0, LON0 = 52.37, 4.90  # a city


def star(lat: float, lon: float, radii: list[float], turn: float) -> Polygon:
    """A star-shaped (often concave) polygon: one vertex per radius, angles evenly spread."""
    n = len(radii)
    pts = [
        (lon + r * math.cos(turn + 2 * math.pi * i / n) / math.cos(math.radians(lat)),
         lat + r * math.sin(turn + 2 * math.pi * i / n))
        for i, r in enumerate(radii)
    ]  # fmt: skip
    return Polygon(pts)


SIZE = st.sampled_from([2e-6, 2e-5, 3e-4, 3e-3, 2e-2])  # degrees: 0.2 m (far below a cell) to 2 km
POLYGON = st.builds(
    lambda dlat, dlon, size, radii, turn: star(
        LAT0 + dlat, LON0 + dlon, [size * r for r in radii], turn
    ),
    st.floats(-0.02, 0.02),
    st.floats(-0.02, 0.02),
    SIZE,
    st.lists(st.floats(0.2, 1.0), min_size=3, max_size=12),
    st.floats(0, math.pi),
)


def brute(zones: list[Zone], lat: np.ndarray, lon: np.ndarray) -> list[frozenset[str]]:
    found: list[set[str]] = [set() for _ in range(lat.size)]
    for z in zones:
        for i in np.flatnonzero(shapely.contains_xy(z.geometry, lon, lat)):
            found[i].add(z.id)
    return [frozenset(s) for s in found]


def near_edges(
    geoms: list[Polygon], rng: np.random.Generator, per_edge: int
) -> tuple[np.ndarray, np.ndarray]:
    """Points a hair (1e-9 to 1e-5 degrees) either side of random spots on every edge."""
    lats, lons = [], []
    for g in geoms:
        xy = np.asarray(g.exterior.coords)
        a, b = xy[:-1], xy[1:]
        t = rng.uniform(0, 1, (per_edge, len(a), 1))
        p = a + t * (b - a)
        normal = np.stack([-(b - a)[:, 1], (b - a)[:, 0]], axis=1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        off = rng.choice([-1, 1], (per_edge, len(a), 1)) * 10.0 ** rng.uniform(
            -9, -5, (per_edge, len(a), 1)
        )
        q = (p + off * normal).reshape(-1, 2)
        lons.append(q[:, 0])
        lats.append(q[:, 1])
        lons.append(xy[:, 0])  # the vertices themselves (on the outline: outside)
        lats.append(xy[:, 1])
    return np.concatenate(lats), np.concatenate(lons)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(POLYGON, min_size=1, max_size=6),
    st.sampled_from([7, 8, 9, 10]),
    st.integers(0, 2**32 - 1),
)
def test_the_index_agrees_with_shapely(polys: list[Polygon], resolution: int, seed: int) -> None:
    polys = [p for p in polys if p.is_valid]
    zones = [Zone(f"z{i}", f"zone {i}", "area", p) for i, p in enumerate(polys)]
    index = ZoneIndex(zones, resolution)
    rng = np.random.default_rng(seed)
    lat_e, lon_e = near_edges(polys, rng, 3)
    lat = np.concatenate([lat_e, rng.uniform(LAT0 - 0.05, LAT0 + 0.05, 500)])
    lon = np.concatenate([lon_e, rng.uniform(LON0 - 0.05, LON0 + 0.05, 500)])
    want = brute(zones, lat, lon)
    assert index.members(lat, lon) == want
    some = rng.choice(lat.size, 40)
    assert [index.members_of(lat[i], lon[i]) for i in some] == [want[i] for i in some]


def test_holes_multipolygons_and_overlaps() -> None:
    outer = star(LAT0, LON0, [0.01] * 40, 0.0)
    ring = Polygon(outer.exterior.coords, [star(LAT0, LON0, [0.004] * 40, 0.0).exterior.coords])
    two = MultiPolygon(
        [star(LAT0, LON0 + 0.03, [0.002] * 8, 0.1), star(LAT0, LON0 - 0.03, [0.002] * 8, 0.1)]
    )
    zones = [
        Zone("ring", "r", "area", ring),
        Zone("disc", "d", "speed", outer, 30.0),
        Zone("two", "t", "restricted", two),
    ]
    index = ZoneIndex(zones)
    rng = np.random.default_rng(7)
    lat = rng.uniform(LAT0 - 0.02, LAT0 + 0.02, 20_000)
    lon = rng.uniform(LON0 - 0.04, LON0 + 0.04, 20_000)
    got = index.members(lat, lon)
    assert got == brute(zones, lat, lon)
    assert frozenset({"ring", "disc"}) in got and frozenset({"disc"}) in got  # hole: disc only
    assert index.members_of(LAT0, LON0) == frozenset({"disc"})
    assert index.members_of(LAT0, LON0 + 0.03) == frozenset({"two"})
    assert index.members_of(LAT0 + 0.007, LON0) == frozenset({"ring", "disc"})


def test_a_cell_crossed_by_more_zones_than_a_mask_holds() -> None:
    # 80 thin overlapping slivers through one spot: the slow path must agree too.
    zones = [
        Zone(
            f"s{i}",
            "s",
            "area",
            shapely.box(LON0 - 0.001 * (i + 1) / 80, LAT0 - 0.001, LON0 + 0.0005, LAT0 + 0.001),
        )
        for i in range(80)
    ]
    index = ZoneIndex(zones)
    rng = np.random.default_rng(3)
    lat = rng.uniform(LAT0 - 0.002, LAT0 + 0.002, 5_000)
    lon = rng.uniform(LON0 - 0.002, LON0 + 0.002, 5_000)
    want = brute(zones, lat, lon)
    assert index.members(lat, lon) == want
    assert [index.members_of(lat[i], lon[i]) for i in range(200)] == want[:200]


def test_bad_positions_and_lookups() -> None:
    index = ZoneIndex([Zone("a", "a", "area", shapely.box(4.8, 52.3, 5.0, 52.4))])
    got = index.members([math.nan, 52.35, 95.0, 52.35], [4.9, math.inf, 4.9, 4.9])
    assert got == [frozenset(), frozenset(), frozenset(), frozenset({"a"})]
    assert index.members(np.array([]), np.array([])) == []
    assert index.members_of(math.nan, 4.9) == frozenset()
    assert ZoneIndex([]).members_of(LAT0, LON0) == frozenset()
    assert index.zone("a").name == "a"
    with pytest.raises(UnknownZone):
        index.zone("b")
    with pytest.raises(ValueError, match="unique"):
        ZoneIndex([index.zone("a"), index.zone("a")])
    with pytest.raises(ValueError, match="pairs"):
        index.members([1.0, 2.0], [1.0])
