"""JSON Schemas of the zones endpoints, merged into ``schemas.SCHEMAS`` (issue 6).

The geometry schema only fixes the outer shape; rings, positions and validity are
checked by ``geofence.geojson``, whose refusals carry their own stable codes (422).
The small helpers are repeated from ``schemas_fleet`` because ``schemas.py`` imports
this module, so this one cannot import it back.
"""

from __future__ import annotations

from typing import Any

from geofence.geojson import MAX_FEATURES, MAX_NAME_CHARS, MAX_SPEED_KMH
from geofence.zones import KINDS
from oms_core.api.schema_parts import obj, ref

__all__ = ["ZONES_SCHEMAS"]

MAX_ID = 2**63 - 1


_KIND = {"enum": list(KINDS), "description": "restricted | speed (needs a limit) | area"}
_LIMIT = {
    "type": ["number", "null"],
    "minimum": 1,
    "maximum": MAX_SPEED_KMH,
    "description": "km/h; required for a speed zone",
}

ZONES_SCHEMAS: dict[str, dict[str, Any]] = {
    "ZoneGeometry": {
        **obj(
            {
                "type": {"enum": ["Polygon", "MultiPolygon"]},
                "coordinates": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "array"},
                    "description": "GeoJSON rings of [lon, lat]: closed, ≥ 4 positions each,"
                    " not self-intersecting, ≤ 10,000 positions in all",
                },
                "bbox": {"type": "array", "items": {"type": "number"}},
            },
            ["type", "coordinates"],
        ),
        "description": "a GeoJSON (RFC 7946) Polygon or MultiPolygon in lon/lat",
    },
    "ZoneCreate": obj(
        {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_NAME_CHARS,
                "pattern": "^[^\\x00]*$",
            },
            "kind": _KIND,
            "geometry": ref("ZoneGeometry"),
            "speed_limit_kmh": _LIMIT,
            "depot_id": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID},
        },
        ["name", "kind", "geometry"],
    ),
    "Zone": obj(
        {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "kind": _KIND,
            "geometry": ref("ZoneGeometry"),
            "speed_limit_kmh": {"type": ["number", "null"]},
            "depot_id": {"type": ["integer", "null"]},
            "active": {"type": "boolean", "description": "false once deleted"},
            "created_at": {"type": "string", "format": "date-time"},
        }
    ),
    "ZonePage": obj(
        {
            "zones": {"type": "array", "items": ref("Zone")},
            "next_cursor": {"type": ["string", "null"], "description": "null on the last page"},
        }
    ),
    "ZoneImport": {
        "type": "object",
        "properties": {
            "type": {"enum": ["FeatureCollection"]},
            "features": {
                "type": "array",
                "maxItems": MAX_FEATURES,
                "items": {"description": "a Feature; checked alone, refused in the report"},
            },
        },
        "required": ["type", "features"],
        "description": "a GeoJSON FeatureCollection; each feature's properties give name,"
        " kind (default area), speed_limit_kmh and depot_id",
    },
    "ZoneImportRow": obj(
        {
            "feature": {"type": "integer", "description": "0-based index in features"},
            "ok": {"type": "boolean"},
            "zone_id": {"type": ["integer", "null"]},
            "name": {"type": ["string", "null"]},
            "error": {"type": ["object", "null"], "description": "{code, message, details}"},
        }
    ),
    "ZoneImportReport": obj(
        {
            "created": {"type": "integer"},
            "refused": {"type": "integer"},
            "features": {"type": "array", "items": ref("ZoneImportRow")},
        }
    ),
}
