"""GeoJSON (RFC 7946) Polygon / MultiPolygon geometries, Features and FeatureCollections
parsed into zone specs, refusing what would make a wrong zone rather than repairing it.

Zones are drawn by people in map tools, so the typical faults are named with stable
codes: an unclosed ring, a ring of fewer than 4 positions, lat/lon swapped out of range,
a bow-tie (self-intersection, refused with the reason GEOS gives), a vertex count far
beyond any hand-drawn area, and a speed zone without its limit. Any input, however
hostile, raises only ``InvalidGeoJSON``. Rings crossing the antimeridian are not
supported (no delivery city needs them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import shapely
from shapely import MultiPolygon, Polygon
from shapely.errors import ShapelyError

from geofence.errors import (
    BAD_PROPERTY,
    INVALID_POLYGON,
    MISSING_SPEED_LIMIT,
    OUT_OF_RANGE,
    TOO_FEW_POSITIONS,
    TOO_MANY_FEATURES,
    TOO_MANY_VERTICES,
    UNCLOSED_RING,
    WRONG_TYPE,
    InvalidGeoJSON,
)
from geofence.zones import KINDS

__all__ = [
    "MAX_FEATURES",
    "MAX_NAME_CHARS",
    "MAX_SPEED_KMH",
    "MAX_VERTICES",
    "ZoneSpec",
    "features_of",
    "parse_feature",
    "parse_geometry",
    "parse_zones",
]

MAX_VERTICES = 10_000  # per zone: a hand-drawn area has tens; more is a pasted coastline
MAX_FEATURES = 1_000  # per import call
MAX_NAME_CHARS = 200
MAX_SPEED_KMH = 300.0

Coords = list[list[list[float]]]  # one polygon: rings of [lon, lat]


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    """A zone to store: ``geojson`` is the cleaned geometry (2-D, floats) to keep."""

    name: str
    kind: str
    geometry: Polygon | MultiPolygon
    geojson: dict[str, Any]
    speed_limit_kmh: float | None = None


def _fail(code: str, message: str, path: str) -> InvalidGeoJSON:
    return InvalidGeoJSON(code, message, path or "/")


def _show(v: float) -> str:
    """A coordinate for a message (a 5,000-digit integer cannot even be printed)."""
    return f"{v:g}" if isinstance(v, float) else str(v) if abs(v) < 10**15 else "a huge number"


def _position(value: Any, path: str) -> list[float]:
    if not isinstance(value, list | tuple) or not 2 <= len(value) <= 3:
        raise _fail(WRONG_TYPE, "a position is [lon, lat] (or [lon, lat, alt])", path)
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _fail(WRONG_TYPE, "position values must be numbers", path)
    lon, lat = value[0], value[1]
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):  # also false for NaN
        raise _fail(
            OUT_OF_RANGE,
            f"lon {_show(lon)} / lat {_show(lat)} out of range: is it [lat, lon]? use [lon, lat]",
            path,
        )
    return [float(lon), float(lat)]


def _ring(value: Any, path: str, budget: list[int]) -> list[list[float]]:
    if not isinstance(value, list | tuple):
        raise _fail(WRONG_TYPE, "a ring is an array of positions", path)
    budget[0] -= len(value)
    if budget[0] < 0:
        raise _fail(TOO_MANY_VERTICES, f"more than {MAX_VERTICES} positions: simplify it", path)
    if len(value) < 4:
        raise _fail(TOO_FEW_POSITIONS, f"a ring needs ≥ 4 positions, it has {len(value)}", path)
    ring = [_position(p, f"{path}/{i}") for i, p in enumerate(value)]
    if ring[0] != ring[-1]:
        raise _fail(UNCLOSED_RING, "the last position must repeat the first", path)
    return ring


def _polygon(value: Any, path: str, budget: list[int]) -> Coords:
    if not isinstance(value, list | tuple) or not value:
        raise _fail(WRONG_TYPE, "a polygon is a non-empty array of rings", path)
    return [_ring(r, f"{path}/{i}", budget) for i, r in enumerate(value)]


def parse_geometry(obj: Any, path: str = "") -> tuple[Polygon | MultiPolygon, dict[str, Any]]:
    """(shapely geometry, cleaned GeoJSON) of a Polygon or MultiPolygon geometry object."""
    if not isinstance(obj, dict) or obj.get("type") not in ("Polygon", "MultiPolygon"):
        raise _fail(WRONG_TYPE, "the geometry must be a GeoJSON Polygon or MultiPolygon", path)
    coords, budget = obj.get("coordinates"), [MAX_VERTICES]
    at = f"{path}/coordinates"
    try:
        if obj["type"] == "Polygon":
            rings = _polygon(coords, at, budget)
            geom: Polygon | MultiPolygon = Polygon(rings[0], rings[1:])
            clean: Any = rings
        else:
            if not isinstance(coords, list | tuple) or not coords:
                raise _fail(WRONG_TYPE, "a MultiPolygon is a non-empty array of polygons", at)
            polys = [_polygon(p, f"{at}/{i}", budget) for i, p in enumerate(coords)]
            geom = MultiPolygon([(p[0], p[1:]) for p in polys])
            clean = polys
        reason = shapely.is_valid_reason(geom)
    except (ShapelyError, ValueError) as exc:
        raise _fail(INVALID_POLYGON, f"shapely refused it: {exc}", at) from exc
    if reason != "Valid Geometry":
        raise _fail(INVALID_POLYGON, f"{reason}: fix the outline (it is not repaired)", at)
    return geom, {"type": obj["type"], "coordinates": clean}


def _name(props: dict[str, Any], default: str | None, path: str) -> str:
    name = props.get("name", default)
    if name is None:
        raise _fail(BAD_PROPERTY, "give the zone a name (properties.name)", path)
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise _fail(BAD_PROPERTY, "name must be non-empty text", path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: no database can store it
        raise _fail(BAD_PROPERTY, "name is not valid Unicode text", path) from exc
    if len(name) > MAX_NAME_CHARS:
        raise _fail(BAD_PROPERTY, f"name allows ≤ {MAX_NAME_CHARS} chars", path)
    return name


def _limit(value: Any, kind: str, path: str) -> float | None:
    if value is None:
        if kind == "speed":
            raise _fail(MISSING_SPEED_LIMIT, "a speed zone needs speed_limit_kmh", path)
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(BAD_PROPERTY, "speed_limit_kmh must be a number", path)
    if not 0 < value <= MAX_SPEED_KMH or math.isnan(value):
        raise _fail(BAD_PROPERTY, f"speed_limit_kmh must be in (0, {MAX_SPEED_KMH:g}]", path)
    return float(value)


def parse_feature(
    obj: Any, path: str = "", *, name: str | None = None, kind: str = "area"
) -> ZoneSpec:
    """A Feature (or a bare geometry) as a zone; ``name``/``kind`` are used where the
    feature's properties give none."""
    if not isinstance(obj, dict):
        raise _fail(WRONG_TYPE, "a zone is a GeoJSON Feature or geometry object", path)
    if obj.get("type") == "Feature":
        props = obj.get("properties")
        if props is None:
            props = {}
        if not isinstance(props, dict):
            raise _fail(WRONG_TYPE, "properties must be an object or null", f"{path}/properties")
        geometry, gpath = obj.get("geometry"), f"{path}/geometry"
    else:
        props, geometry, gpath = {}, obj, path
    at = f"{path}/properties"
    zone_name = _name(props, name, f"{at}/name")
    zone_kind = props.get("kind", kind)
    if zone_kind not in KINDS:
        raise _fail(BAD_PROPERTY, f"kind must be one of: {', '.join(KINDS)}", f"{at}/kind")
    limit = _limit(props.get("speed_limit_kmh"), zone_kind, f"{at}/speed_limit_kmh")
    geom, clean = parse_geometry(geometry, gpath)
    return ZoneSpec(zone_name, zone_kind, geom, clean, limit)


def features_of(obj: Any) -> list[Any]:
    """The features of a FeatureCollection, or ``[obj]`` for a Feature or geometry."""
    if isinstance(obj, dict) and obj.get("type") == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list):
            raise _fail(WRONG_TYPE, "features must be an array", "/features")
        if len(features) > MAX_FEATURES:
            raise _fail(
                TOO_MANY_FEATURES, f"{len(features)} features; ≤ {MAX_FEATURES} a call", "/features"
            )
        return features
    return [obj]


def parse_zones(obj: Any, *, name: str | None = None, kind: str = "area") -> list[ZoneSpec]:
    """Every zone of a geometry, Feature or FeatureCollection; the first fault raises."""
    if isinstance(obj, dict) and obj.get("type") == "FeatureCollection":
        return [
            parse_feature(f, f"/features/{i}", name=name, kind=kind)
            for i, f in enumerate(features_of(obj))
        ]
    return [parse_feature(obj, name=name, kind=kind)]
