"""Errors of the geofence package: one root, each with a stable ``code`` for programs.

Messages are for a person and say what to fix; ``path`` points (JSON-pointer style) at
the part of the input that is wrong, so an import report can name the feature and ring.
"""

from __future__ import annotations

__all__ = [
    "BAD_PROPERTY",
    "INVALID_POLYGON",
    "MISSING_SPEED_LIMIT",
    "OUT_OF_RANGE",
    "TOO_FEW_POSITIONS",
    "TOO_MANY_FEATURES",
    "TOO_MANY_VERTICES",
    "UNCLOSED_RING",
    "UNKNOWN_ZONE",
    "WRONG_TYPE",
    "GeofenceError",
    "InvalidGeoJSON",
    "UnknownZone",
]

WRONG_TYPE = "wrong_type"
UNCLOSED_RING = "unclosed_ring"
TOO_FEW_POSITIONS = "too_few_positions"
OUT_OF_RANGE = "out_of_range"
INVALID_POLYGON = "invalid_polygon"
TOO_MANY_VERTICES = "too_many_vertices"
TOO_MANY_FEATURES = "too_many_features"
MISSING_SPEED_LIMIT = "missing_speed_limit"
BAD_PROPERTY = "bad_property"
UNKNOWN_ZONE = "unknown_zone"


class GeofenceError(Exception):
    """Root of every error the geofence package raises on purpose."""

    def __init__(self, code: str, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.code, self.message, self.path = code, message, path


class InvalidGeoJSON(GeofenceError):
    """GeoJSON that cannot become a zone; ``code`` says why, ``path`` where."""


class UnknownZone(GeofenceError):
    """A zone id the index does not hold."""
