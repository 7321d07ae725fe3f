"""Zones (restricted areas, speed zones, named areas) and which of them a point is in:
geometry only, no rules.

``geojson`` turns drawn GeoJSON into zones, refusing bad outlines with stable codes;
``ZoneIndex`` answers membership for batches of positions (h3 cells narrow, shapely
decides, exactly); ``projection`` gives a trip metric coordinates. Turning membership
over time into enter / exit / dwell events is a rule: ``deviation.membership``.
"""

from geofence.errors import GeofenceError, InvalidGeoJSON, UnknownZone
from geofence.geojson import ZoneSpec, parse_feature, parse_geometry, parse_zones
from geofence.index import ZoneIndex
from geofence.zones import KINDS, Zone

__all__ = [
    "KINDS",
    "GeofenceError",
    "InvalidGeoJSON",
    "UnknownZone",
    "Zone",
    "ZoneIndex",
    "ZoneSpec",
    "parse_feature",
    "parse_geometry",
    "parse_zones",
]
