"""Zones (restricted areas, speed zones, named areas) and which of them a vehicle is in.

``geojson`` turns drawn GeoJSON into zones, refusing bad outlines with stable codes;
``ZoneIndex`` answers membership for batches of positions (h3 cells narrow, shapely
decides, exactly); ``membership.step`` turns membership over time into enter / exit /
dwell events with hysteresis so GPS jitter at a border does not flap.
"""

from geofence.errors import GeofenceError, InvalidGeoJSON, UnknownZone
from geofence.geojson import ZoneSpec, parse_feature, parse_geometry, parse_zones
from geofence.index import ZoneIndex
from geofence.membership import ZoneParams, ZoneState, step
from geofence.zones import KINDS, Zone

__all__ = [
    "KINDS",
    "GeofenceError",
    "InvalidGeoJSON",
    "UnknownZone",
    "Zone",
    "ZoneIndex",
    "ZoneParams",
    "ZoneSpec",
    "ZoneState",
    "parse_feature",
    "parse_geometry",
    "parse_zones",
    "step",
]
