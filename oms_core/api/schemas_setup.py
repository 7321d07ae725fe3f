"""JSON schemas of the setup endpoints (depots, devices, vehicle updates) and of trips
planned elsewhere (import, stop re-ordering); merged into ``schemas.SCHEMAS``."""

from __future__ import annotations

from typing import Any

from decoders import PROTOCOLS
from oms_core.api.schema_parts import CLOCK, OPT_TIME, TIME, obj, page, ref, text_schema
from oms_core.api.schema_parts import id_schema as _id

__all__ = ["DEVICE_ID_PATTERN", "MAX_IMPORT_STOPS", "SETUP_SCHEMAS"]

MAX_IMPORT_STOPS = 200
# What trackers send as their id (IMEI, serial, phone id): printable, no slash (it is a
# path segment), no spaces.
DEVICE_ID_PATTERN = "^[A-Za-z0-9._:@-]{1,64}$"
_ZONE = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_+/-]{1,64}$",
    "description": "IANA time zone of the opening hours, e.g. Asia/Jakarta (default UTC)",
}
_PROTOCOL = {
    "enum": sorted(PROTOCOLS),
    "description": "the decoder that reads the device's messages",
}


_DEPOT_FIELDS: dict[str, Any] = {
    "name": text_schema(200),
    "lat": {"type": "number", "minimum": -90, "maximum": 90},
    "lon": {"type": "number", "minimum": -180, "maximum": 180},
    "open_time": {**CLOCK, "description": "local opening time (default 06:00)"},
    "close_time": {**CLOCK, "description": "local closing time (default 22:00)"},
    "time_zone": _ZONE,
}
_DEVICE_ID = {
    "type": "string",
    "pattern": DEVICE_ID_PATTERN,
    "description": "the id the device sends (IMEI, serial): letters, digits, . _ : @ -",
}

SETUP_SCHEMAS: dict[str, dict[str, Any]] = {
    "DeviceProtocol": _PROTOCOL,
    "DepotCreate": obj(_DEPOT_FIELDS, ["name", "lat", "lon"]),
    "DepotUpdate": obj(_DEPOT_FIELDS, []),
    "DeviceCreate": obj(
        {
            "device_id": _DEVICE_ID,
            "protocol": _PROTOCOL,
            "label": text_schema(200, nullable=True),
            "vehicle_id": {
                **_id(nullable=True),
                "description": "make it this vehicle's tracker (replacing its previous one)",
            },
        },
        ["device_id", "protocol"],
    ),
    "Device": obj(
        {
            "device_id": {"type": "string"},
            "protocol": {
                "type": ["string", "null"],
                "description": "its data is accepted in this protocol only; null: bound to"
                " the protocol of its first stored fix",
            },
            "label": {"type": ["string", "null"]},
            "enabled": {"type": "boolean", "description": "false: its data is refused"},
            "vehicle_id": {"type": ["integer", "null"]},
            "created_at": TIME,
            "has_secret": {
                "type": "boolean",
                "description": "true: its OsmAnd requests must carry the secret (key)",
            },
            "last_fix_time": {**OPT_TIME, "description": "newest stored fix; null: none yet"},
        }
    ),
    "DeviceUpdate": obj(
        {
            "protocol": {
                **_PROTOCOL,
                "description": "the only protocol its data is accepted in from now on",
            }
        }
    ),
    "DeviceSecret": obj(
        {
            "device_id": {"type": "string"},
            "secret": {"type": "string", "description": "shown only now; only its hash is kept"},
        }
    ),
    "DevicePage": page("devices", "Device"),
    "VehicleUpdate": obj(
        {
            "tracker_device_id": {
                **text_schema(64, nullable=True),
                "description": "registers the device as this vehicle's tracker; null unlinks",
            },
            "tracker_protocol": {**_PROTOCOL, "description": "the tracker's protocol"},
            "depot_id": _id(nullable=True),
            "max_speed_kmh": {"type": ["number", "null"], "minimum": 1, "maximum": 300},
        },
        [],
    ),
    "TripImportStop": obj(
        {
            "order_ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": 50,
                "items": _id(),
                "description": "orders served at this stop (same delivery coordinates)",
            },
            "planned_arrival": TIME,
            "planned_departure": TIME,
        },
        ["order_ids"],
    ),
    "LineString": obj(
        {
            "type": {"enum": ["LineString"]},
            "coordinates": {
                "type": "array",
                "minItems": 2,
                "maxItems": 100_000,
                "items": {
                    "type": "array",
                    "minItems": 2,
                    "maxItems": 3,
                    "items": {"type": "number", "minimum": -180, "maximum": 180},
                },
                "description": "[[lon, lat], ...] (GeoJSON order)",
            },
        }
    ),
    "TripImport": obj(
        {
            "vehicle_id": _id(),
            "driver_id": {
                **_id(),
                "description": "default: the driver assigned to the vehicle that day",
            },
            "date": {"type": "string", "format": "date", "description": "the depot's local day"},
            "depot_id": {**_id(), "description": "default: the vehicle's depot"},
            "planned_departure": {**TIME, "description": "leaves the depot (with stop times)"},
            "planned_return": {**TIME, "description": "back at the depot (with stop times)"},
            "stops": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_IMPORT_STOPS,
                "items": ref("TripImportStop"),
            },
            "route_geometry": ref("LineString"),
        },
        ["vehicle_id", "date", "stops"],
    ),
    "StopOrder": obj(
        {
            "stop_ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_IMPORT_STOPS,
                "items": _id(),
                "description": "every stop of the trip, once, in the new visiting order",
            }
        }
    ),
}
