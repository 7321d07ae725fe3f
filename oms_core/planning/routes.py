"""The geometry a trip is driven along, stored for the deviation rules to compare with.

Without a road network a trip is its straight legs (depot, stops, depot). With an OSRM
server it is the road geometry OSRM's route service returns through the same points, so
the corridor rule follows the roads a driver really takes.

    matrix, routes = road_providers("http://osrm:5000")
    line = routes.geometry([(4.90, 52.37), (4.91, 52.38), (4.90, 52.37)])  # [[lon, lat], ...]
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Protocol

from oms_core.planning.matrix import HaversineMatrix, MatrixProvider, OsrmMatrix, RoutingUnavailable

__all__ = ["OsrmRoutes", "RouteProvider", "StraightLegs", "road_providers"]

Point = tuple[float, float]  # (lon, lat), as GeoJSON and trips.route_geometry have it


class RouteProvider(Protocol):
    """Gives the line driven through ``points`` in order, as [[lon, lat], ...]."""

    def geometry(self, points: Sequence[Point]) -> list[list[float]]: ...


class StraightLegs:
    """The points themselves: straight legs between consecutive stops."""

    def geometry(self, points: Sequence[Point]) -> list[list[float]]:
        return [[lon, lat] for lon, lat in points]


class OsrmRoutes:
    """``GET {url}/route/v1/{profile}/{lon,lat;...}?overview=full&geometries=geojson``."""

    def __init__(self, url: str, *, profile: str = "driving", timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.profile = profile
        self.timeout_s = timeout_s

    def request_url(self, points: Sequence[Point]) -> str:
        """The route request through ``points`` in order."""
        coords = ";".join(f"{lon:.6f},{lat:.6f}" for lon, lat in points)
        return f"{self.url}/route/v1/{self.profile}/{coords}?overview=full&geometries=geojson"

    @staticmethod
    def parse(body: bytes) -> list[list[float]]:
        """The first route's GeoJSON LineString coordinates."""
        doc = json.loads(body)
        if doc.get("code") != "Ok" or not doc.get("routes"):
            raise ValueError(f"OSRM route failed: {doc.get('code')}: {doc.get('message')}")
        line = doc["routes"][0]["geometry"]
        if line.get("type") != "LineString" or len(line.get("coordinates", ())) < 2:
            raise ValueError("OSRM route geometry is not a LineString of two or more points")
        out = [[float(p[0]), float(p[1])] for p in line["coordinates"]]
        if not all(math.isfinite(v) for p in out for v in p):
            raise ValueError("OSRM route geometry has non-finite coordinates")
        return out

    def geometry(self, points: Sequence[Point]) -> list[list[float]]:
        try:
            with urllib.request.urlopen(self.request_url(points), timeout=self.timeout_s) as r:
                body: bytes = r.read()
            return self.parse(body)
        except urllib.error.HTTPError as exc:
            with exc:  # closes the socket the error holds
                why = f"HTTP {exc.code}: {exc.read()[:200]!r}"
            raise RoutingUnavailable(f"OSRM route at {self.url}: {why}") from exc
        except (OSError, TimeoutError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise RoutingUnavailable(f"OSRM route at {self.url}: {exc}") from exc


def road_providers(
    osrm_url: str = "", *, road_factor: float = 1.3, avg_speed_kmh: float = 30.0
) -> tuple[MatrixProvider, RouteProvider]:
    """Travel times and trip geometry: OSRM's table and route services when ``osrm_url``
    is set, else haversine × ``road_factor`` at ``avg_speed_kmh`` and straight legs."""
    if osrm_url:
        return OsrmMatrix(osrm_url), OsrmRoutes(osrm_url)
    return HaversineMatrix(road_factor, avg_speed_kmh), StraightLegs()
