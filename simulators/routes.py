"""Polylines that virtual vehicles drive, and where a vehicle is after ``d`` metres.

Routes are WGS84 (lon, lat) vertices, GeoJSON order. Distances are haversine metres on
the mean Earth radius; between vertices a vehicle moves linearly in lat/lon, which is
within millimetres of the great circle at city-street segment lengths.
A ``loop`` route drives the closing segment back to its first vertex; a ``bounce``
route turns round at each end, so vehicles never jump.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from simulators.errors import RouteError

EARTH_RADIUS_M = 6_371_008.8

End = Literal["loop", "bounce"]

__all__ = ["EARTH_RADIUS_M", "JAKARTA_ROUTES", "Route", "haversine_m", "load_geojson"]


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS84 points."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


@dataclass(frozen=True)
class Route:
    """A named polyline of (lon, lat) vertices with what happens at its end."""

    name: str
    coords: tuple[tuple[float, float], ...]
    end: End = "bounce"
    # Derived once. Plain tuples for position_at (bisect on a tuple is far faster than
    # numpy on one scalar); arrays for the vectorised distance_to_m.
    _cum: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _vertices: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)
    _course: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _lat: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)
    _lon: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.end not in ("loop", "bounce"):
            raise RouteError(f"route {self.name!r}: end must be 'loop' or 'bounce'")
        pts = [(float(lat), float(lon)) for lon, lat in self.coords]
        for y, x in pts:
            if not (-90.0 <= y <= 90.0 and -180.0 <= x <= 180.0):
                raise RouteError(f"route {self.name!r}: ({x}, {y}) is not a lon/lat pair")
        if self.end == "loop" and len(pts) > 1 and pts[0] != pts[-1]:
            pts.append(pts[0])
        # Drop repeated vertices: a zero-length segment has no course.
        pts = [p for i, p in enumerate(pts) if i == 0 or p != pts[i - 1]]
        if len(pts) < 2:
            raise RouteError(f"route {self.name!r}: needs at least two distinct vertices")
        legs = list(itertools.pairwise(pts))
        cum = [0.0]
        for a, b in legs:
            cum.append(cum[-1] + haversine_m(*a, *b))
        object.__setattr__(self, "_cum", tuple(cum))
        object.__setattr__(self, "_vertices", tuple(pts))
        object.__setattr__(self, "_course", tuple(_bearing_deg(*a, *b) for a, b in legs))
        object.__setattr__(self, "_lat", np.array([p[0] for p in pts]))
        object.__setattr__(self, "_lon", np.array([p[1] for p in pts]))

    @property
    def length_m(self) -> float:
        """Length of one pass (a loop includes its closing segment)."""
        return self._cum[-1]

    @property
    def cycle_m(self) -> float:
        """Distance after which a vehicle is back where it started, heading the same way."""
        return self.length_m * (2.0 if self.end == "bounce" else 1.0)

    def position_at(self, distance_m: float) -> tuple[float, float, float]:
        """(lat, lon, course_deg) after driving ``distance_m`` from the first vertex."""
        length = self.length_m
        d = distance_m % self.cycle_m
        backwards = d > length
        if backwards:
            d = 2.0 * length - d
        cum = self._cum
        i = min(max(bisect.bisect_right(cum, d) - 1, 0), len(cum) - 2)
        f = (d - cum[i]) / (cum[i + 1] - cum[i])
        (lat0, lon0), (lat1, lon1) = self._vertices[i], self._vertices[i + 1]
        course = self._course[i]
        return (
            lat0 + f * (lat1 - lat0),
            lon0 + f * (lon1 - lon0),
            (course + 180.0) % 360.0 if backwards else course,
        )

    def distance_to_m(self, lat: float, lon: float) -> float:
        """Distance from a point to the nearest point of the route (local flat projection)."""
        kx = math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(lat))
        ky = math.radians(1.0) * EARTH_RADIUS_M
        x, y = (self._lon - lon) * kx, (self._lat - lat) * ky
        ax, ay, bx, by = x[:-1], y[:-1], x[1:], y[1:]
        dx, dy = bx - ax, by - ay
        t = np.clip(-(ax * dx + ay * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        return float(np.min(np.hypot(ax + t * dx, ay + t * dy)))


def _route(name: str, end: End, latlon: list[tuple[float, float]]) -> Route:
    return Route(name, tuple((lon, lat) for lat, lon in latlon), end)


# Hand-traced from the street map along the arterial roads named; good to a few tens of
# metres, which is what a delivery simulation needs (written (lat, lon) for readability).
# fmt: off
JAKARTA_ROUTES: tuple[Route, ...] = (
    _route(
        "thamrin-sudirman",  # Patung Kuda (Monas) down Thamrin and Sudirman to Blok M
        "bounce",
        [
            (-6.1766, 106.8226), (-6.1808, 106.8228), (-6.1850, 106.8230), (-6.1876, 106.8233),
            (-6.1920, 106.8232), (-6.1950, 106.8229), (-6.1985, 106.8228), (-6.2015, 106.8227),
            (-6.2050, 106.8215), (-6.2085, 106.8200), (-6.2120, 106.8183), (-6.2155, 106.8165),
            (-6.2190, 106.8148), (-6.2215, 106.8110), (-6.2240, 106.8065), (-6.2268, 106.8022),
            (-6.2300, 106.8010), (-6.2340, 106.8003), (-6.2380, 106.7998), (-6.2420, 106.7993),
            (-6.2445, 106.7990),
        ],
    ),
    _route(
        "gatot-subroto-mt-haryono",  # Slipi, Semanggi, Kuningan, Pancoran to Cawang
        "bounce",
        [
            (-6.2000, 106.7975), (-6.2040, 106.8010), (-6.2080, 106.8045), (-6.2120, 106.8080),
            (-6.2160, 106.8115), (-6.2195, 106.8145), (-6.2235, 106.8180), (-6.2275, 106.8215),
            (-6.2310, 106.8250), (-6.2340, 106.8285), (-6.2362, 106.8310), (-6.2380, 106.8350),
            (-6.2395, 106.8390), (-6.2410, 106.8430), (-6.2425, 106.8465), (-6.2435, 106.8520),
            (-6.2445, 106.8580), (-6.2455, 106.8640), (-6.2465, 106.8700),
        ],
    ),
    _route(
        "rasuna-said",  # Kuningan (Gatot Subroto junction) north to Setiabudi / Menteng
        "bounce",
        [
            (-6.2362, 106.8310), (-6.2330, 106.8313), (-6.2295, 106.8318), (-6.2260, 106.8320),
            (-6.2225, 106.8322), (-6.2190, 106.8325), (-6.2155, 106.8328), (-6.2120, 106.8330),
            (-6.2085, 106.8333), (-6.2050, 106.8335), (-6.2020, 106.8332), (-6.1995, 106.8320),
            (-6.1975, 106.8300),
        ],
    ),
    _route(
        "tanjung-priok-pulogadung",  # port gate, Jl. Yos Sudarso, Jl. A. Yani, Pulogadung estate
        "bounce",
        [
            (-6.1045, 106.8825), (-6.1080, 106.8830), (-6.1115, 106.8815), (-6.1160, 106.8810),
            (-6.1210, 106.8815), (-6.1260, 106.8820), (-6.1310, 106.8815), (-6.1360, 106.8805),
            (-6.1410, 106.8795), (-6.1460, 106.8785), (-6.1510, 106.8778), (-6.1560, 106.8775),
            (-6.1620, 106.8778), (-6.1680, 106.8785), (-6.1740, 106.8800), (-6.1800, 106.8815),
            (-6.1850, 106.8840), (-6.1880, 106.8900), (-6.1900, 106.8960), (-6.1910, 106.9020),
            (-6.1915, 106.9080), (-6.1925, 106.9130),
        ],
    ),
    _route(
        "kemang-loop",  # Jl. Pangeran Antasari south, Jl. Ampera Raya, Jl. Kemang Raya north
        "loop",
        [
            (-6.2560, 106.8075), (-6.2600, 106.8072), (-6.2640, 106.8068), (-6.2680, 106.8063),
            (-6.2720, 106.8058), (-6.2760, 106.8055), (-6.2800, 106.8052), (-6.2835, 106.8050),
            (-6.2838, 106.8090), (-6.2840, 106.8130), (-6.2835, 106.8165), (-6.2800, 106.8155),
            (-6.2760, 106.8142), (-6.2720, 106.8136), (-6.2680, 106.8132), (-6.2640, 106.8128),
            (-6.2600, 106.8124), (-6.2570, 106.8120), (-6.2565, 106.8100),
        ],
    ),
    _route(
        "kelapa-gading-loop",  # Jl. Boulevard Raya east, Boulevard Timur, Perintis Kemerdekaan
        "loop",
        [
            (-6.1530, 106.8930), (-6.1545, 106.8970), (-6.1555, 106.9010), (-6.1565, 106.9050),
            (-6.1572, 106.9090), (-6.1580, 106.9130), (-6.1620, 106.9140), (-6.1660, 106.9148),
            (-6.1700, 106.9155), (-6.1705, 106.9110), (-6.1705, 106.9060), (-6.1700, 106.9010),
            (-6.1695, 106.8960), (-6.1690, 106.8920), (-6.1650, 106.8915), (-6.1610, 106.8918),
            (-6.1570, 106.8922),
        ],
    ),
)
# fmt: on


def _lines(geometry: Any, where: str) -> list[list[Any]]:
    if not isinstance(geometry, dict):
        raise RouteError(f"{where}: geometry is not an object")
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "LineString" and isinstance(coords, list):
        return [coords]
    if kind == "MultiLineString" and isinstance(coords, list):
        return list(coords)
    raise RouteError(
        f"{where}: want a LineString or MultiLineString with coordinates, got {kind!r}"
    )


def _pairs(coords: Any, where: str) -> tuple[tuple[float, float], ...]:
    try:
        return tuple((float(p[0]), float(p[1])) for p in coords)
    except (TypeError, ValueError, IndexError) as exc:
        raise RouteError(f"{where}: coordinates must be [lon, lat] number pairs") from exc


def load_geojson(path: str | Path) -> list[Route]:
    """Routes from a GeoJSON file: every LineString and each part of a MultiLineString.

    A feature's ``properties.name`` names the route (else ``<file stem>-<n>``) and
    ``properties.end`` ("loop" or "bounce", default "bounce") says what happens at its end.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RouteError(f"{p}: cannot read route file ({exc.strerror})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RouteError(f"{p}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise RouteError(f"{p}: expected a GeoJSON object, got {type(doc).__name__}")
    if doc.get("type") == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise RouteError(f"{p}: FeatureCollection without a 'features' list")
    elif doc.get("type") == "Feature":
        features = [doc]
    else:
        features = [{"type": "Feature", "geometry": doc, "properties": {}}]
    routes: list[Route] = []
    for i, feat in enumerate(features):
        where = f"{p}: feature {i}"
        if not isinstance(feat, dict):
            raise RouteError(f"{where}: not an object")
        props = feat.get("properties") or {}
        parts = _lines(feat.get("geometry"), where)
        base = str(props.get("name") or f"{p.stem}-{i}")
        end = props.get("end", "bounce")
        if end not in ("loop", "bounce"):
            raise RouteError(f"{where}: properties.end must be 'loop' or 'bounce', not {end!r}")
        for j, coords in enumerate(parts):
            name = base if len(parts) == 1 else f"{base}#{j}"
            try:
                routes.append(Route(name, _pairs(coords, where), end))
            except RouteError as exc:
                raise RouteError(f"{where}: {exc}") from exc
    if not routes:
        raise RouteError(f"{p}: no LineString or MultiLineString features")
    return routes
