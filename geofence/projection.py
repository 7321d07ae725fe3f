"""A local metric projection: metres east/north of a reference point.

Delivery trips span tens of kilometres, where an equirectangular projection about the
trip's own reference latitude is within 0.1 % of true ground distance (far below GPS
noise at corridor widths of hundreds of metres) and costs two multiplications, so the
rules can measure distances to route segments in plain Euclidean geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["EARTH_RADIUS_M", "LocalProjection"]

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius
_F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LocalProjection:
    """Equirectangular metres about (``lat0``, ``lon0``)."""

    lat0: float
    lon0: float

    @property
    def _kx(self) -> float:
        return math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(self.lat0))

    @property
    def _ky(self) -> float:
        return math.radians(1.0) * EARTH_RADIUS_M

    def to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        """(x_m, y_m) of one point."""
        return (lon - self.lon0) * self._kx, (lat - self.lat0) * self._ky

    def to_xy_arrays(self, lat: _F64, lon: _F64) -> tuple[_F64, _F64]:
        """(x_m, y_m) arrays of many points."""
        return (np.asarray(lon) - self.lon0) * self._kx, (np.asarray(lat) - self.lat0) * self._ky

    def to_latlon(self, x_m: float, y_m: float) -> tuple[float, float]:
        """(lat, lon) of a projected point (the inverse of ``to_xy``)."""
        return self.lat0 + y_m / self._ky, self.lon0 + x_m / self._kx
