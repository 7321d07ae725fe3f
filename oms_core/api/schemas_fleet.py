"""JSON schemas of the customer, product, depot, stock, fleet, plan and trip endpoints.

Merged into ``schemas.SCHEMAS`` (the one registry the document and the validator read).
They live apart to keep ``schemas.py`` short; their helpers come from ``schema_parts``.
"""

from __future__ import annotations

from typing import Any

from oms_core.api.schema_parts import (
    CLOCK,
    OPT_TIME,
    TEXT_PATTERN,
    TIME,
    obj,
    page,
    ref,
    text_schema,
)
from oms_core.api.schema_parts import id_schema as _id

__all__ = ["FLEET_SCHEMAS", "LANGUAGES", "MAX_INT4", "NOTIFY_CHANNELS"]

MAX_INT4 = 2**31 - 1  # stock.on_hand is an integer column
_DAY = {"type": "string", "format": "date"}


def _list(key: str, item: str) -> dict[str, Any]:
    return obj({key: {"type": "array", "items": ref(item)}})


def _amount(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": "^[0-9]{1,7}(\\.[0-9]{1,3})?$",
        "description": description + " (decimal string, > 0)",
    }


_DECIMAL = {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}
_INT = {"type": "integer"}
_OPT_INT = {"type": ["integer", "null"]}
_OPT_STR = {"type": ["string", "null"]}

_LAT = {"type": ["number", "null"], "minimum": -90, "maximum": 90}
_LON = {"type": ["number", "null"], "minimum": -180, "maximum": 180}
NOTIFY_CHANNELS = ("email", "sms", "whatsapp")
LANGUAGES = ("id", "en")  # Bahasa Indonesia, English

FLEET_SCHEMAS: dict[str, dict[str, Any]] = {
    "NotifyPrefs": {
        **obj({c: {"type": "boolean"} for c in NOTIFY_CHANNELS}, []),
        "description": "channels the customer wants delivery news on (absent: off): email"
        " to their email, sms and whatsapp to their phone through the customer_messages"
        " webhooks (SMS / WhatsApp gateways)",
    },
    "AddressCreate": obj(
        {"text": text_schema(500), "lat": _LAT, "lon": _LON},
        ["text"],
    ),
    "Address": obj(
        {
            "id": _INT,
            "customer_id": _INT,
            "text": {"type": "string"},
            "lat": {"type": ["number", "null"]},
            "lon": {"type": ["number", "null"]},
        }
    ),
    "CustomerCreate": obj(
        {
            "name": text_schema(200),
            "email": {
                **text_schema(254, nullable=True),
                "pattern": "^[^@\\s\\x00]+@[^@\\s\\x00]+$",
            },
            "phone": text_schema(40, nullable=True),
            "notify_prefs": ref("NotifyPrefs"),
            "language": {
                "enum": list(LANGUAGES),
                "description": "language of their messages: id (Bahasa Indonesia, the"
                " default) or en (English)",
            },
            "addresses": {"type": "array", "maxItems": 20, "items": ref("AddressCreate")},
        },
        ["name"],
    ),
    "Customer": obj(
        {
            "id": _INT,
            "name": {"type": "string"},
            "email": _OPT_STR,
            "phone": _OPT_STR,
            "notify_prefs": ref("NotifyPrefs"),
            "language": {"enum": list(LANGUAGES)},
            "created_at": TIME,
            "addresses": {"type": "array", "items": ref("Address")},
        }
    ),
    "CustomerPage": page("customers", "Customer"),
    "ProductCreate": obj(
        {
            "sku": {
                "type": "string",
                "pattern": "^[A-Za-z0-9._-]{1,64}$",
                "description": "letters, digits, . _ - (it appears in URLs)",
            },
            "name": {"type": "string", "maxLength": 200, "pattern": TEXT_PATTERN},
            "unit_weight_kg": {"type": "string", "pattern": "^[0-9]{1,7}(\\.[0-9]{1,3})?$"},
            "unit_volume_m3": {"type": "string", "pattern": "^[0-9]{1,6}(\\.[0-9]{1,4})?$"},
            "active": {"type": "boolean", "description": "sold (default true)"},
        },
        ["sku", "unit_weight_kg", "unit_volume_m3"],
    ),
    "Product": obj(
        {
            "sku": {"type": "string"},
            "name": {"type": "string"},
            "unit_weight_kg": _DECIMAL,
            "unit_volume_m3": _DECIMAL,
            "active": {"type": "boolean"},
        }
    ),
    "ProductPage": page("products", "Product"),
    "Depot": obj(
        {
            "id": _INT,
            "name": {"type": "string"},
            "lat": {"type": "number"},
            "lon": {"type": "number"},
            "open_time": CLOCK,
            "close_time": CLOCK,
            "time_zone": {"type": "string", "description": "IANA zone of the opening hours"},
        }
    ),
    "DepotList": _list("depots", "Depot"),
    "StockLevel": obj(
        {
            "depot_id": _INT,
            "sku": {"type": "string"},
            "on_hand": _INT,
            "reserved": _INT,
            "available": {"type": "integer", "description": "on_hand - reserved"},
        }
    ),
    "StockList": _list("stock", "StockLevel"),
    "StockSet": obj({"on_hand": {"type": "integer", "minimum": 0, "maximum": MAX_INT4}}),
    "VehicleCreate": obj(
        {
            "plate": text_schema(32),
            "type": text_schema(32),
            "capacity_kg": _amount("load limit in kg"),
            "capacity_m3": _amount("load limit in m³"),
            "tracker_device_id": {
                **text_schema(64, nullable=True),
                "description": "registered as a device (linked to this vehicle) if new",
            },
            "tracker_protocol": ref("DeviceProtocol"),
            "max_speed_kmh": {"type": ["number", "null"], "minimum": 1, "maximum": 300},
            "depot_id": _id(nullable=True),
        },
        ["plate", "capacity_kg", "capacity_m3"],
    ),
    "Vehicle": obj(
        {
            "id": _INT,
            "plate": {"type": "string"},
            "type": {"type": "string"},
            "capacity_kg": _DECIMAL,
            "capacity_m3": _DECIMAL,
            "tracker_device_id": _OPT_STR,
            "max_speed_kmh": {"type": ["number", "null"]},
            "depot_id": _OPT_INT,
        }
    ),
    "VehicleList": page("vehicles", "Vehicle"),
    "DriverCreate": obj(
        {
            "name": text_schema(200),
            "phone": text_schema(40, nullable=True),
            "shift_start": CLOCK,
            "shift_end": CLOCK,
            "phone_device_id": text_schema(64, nullable=True),
        },
        ["name"],
    ),
    "Driver": obj(
        {
            "id": _INT,
            "name": {"type": "string"},
            "phone": _OPT_STR,
            "shift_start": CLOCK,
            "shift_end": CLOCK,
            "phone_device_id": _OPT_STR,
        }
    ),
    "DriverList": page("drivers", "Driver"),
    "Assignment": obj({"driver_id": _id(), "vehicle_id": _id(), "day": _DAY}),
    "PlanRequest": obj(
        {
            "date": _DAY,
            "depot_id": _id(nullable=True),
            "time_limit_s": {
                "type": "integer",
                "minimum": 1,
                "maximum": 60,
                "description": "search time per depot (default 10)",
            },
            "replace": {
                "type": "boolean",
                "description": "re-plan a day whose trips are all still planned: they are"
                " deleted and their orders planned again (default false)",
            },
        },
        ["date"],
    ),
    "TripStop": obj(
        {
            "id": _INT,
            "seq": _INT,
            "lat": {"type": "number"},
            "lon": {"type": "number"},
            "planned_arrival": TIME,
            "planned_departure": TIME,
            "service_time_s": _INT,
            "window_start": {"type": ["string", "null"]},
            "window_end": {"type": ["string", "null"]},
            "order_ids": {"type": "array", "items": _INT},
            "eta": {**OPT_TIME, "description": "live estimate; null until tracked"},
            "actual_arrival": OPT_TIME,
            "actual_departure": OPT_TIME,
            "arrival_method": {
                "enum": ["geofence", "driver", "dispatcher", None],
                "description": "which arrival came first (actual_arrival); null before any",
            },
            "geofence_arrival": {**OPT_TIME, "description": "the control tower's geofence"},
            "driver_arrival": {**OPT_TIME, "description": "the driver's tap in the app"},
            "radius_m": {
                "type": ["number", "null"],
                "description": "the stop's zone radius; null: the stop_radius_m setting",
            },
            "out_of_sequence": {"type": "boolean", "description": "visited out of plan order"},
            "unconfirmed_from": {
                **OPT_TIME,
                "description": "the tracker fell silent (last fix) before the vehicle passed"
                " this stop: its progress shows a visit no fix did; confirm it with the"
                " driver's ePOD or POST /stops/{id}/arrival",
            },
            "unconfirmed_to": {**OPT_TIME, "description": "the first fix after that silence"},
        }
    ),
    "StopArrival": obj(
        {
            "at": {
                **TIME,
                "description": "when the vehicle arrived (default: the end of the stop's"
                " unconfirmed silence, else now)",
            }
        },
        [],
    ),
    "Trip": obj(
        {
            "id": _INT,
            "vehicle_id": _INT,
            "driver_id": _OPT_INT,
            "depot_id": _INT,
            "day": _DAY,
            "planned_departure": TIME,
            "planned_return": TIME,
            "state": {"enum": ["planned", "dispatched", "in_progress", "completed", "cancelled"]},
            "loaded_at": {**OPT_TIME, "description": "the driver checked the load"},
            "actual_departure": {**OPT_TIME, "description": "left the depot (first seen)"},
            "actual_return": {**OPT_TIME, "description": "back at the depot, trip closed"},
            "route_geometry": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}},
                "description": "[[lon, lat], ...] from depot to depot",
            },
            "stops": {"type": "array", "items": ref("TripStop")},
        }
    ),
    "TripList": page("trips", "Trip"),
    "Unassigned": obj({"order_id": _INT, "reason": {"type": "string"}}),
    "IdleVehicle": obj({"vehicle_id": _INT, "reason": {"type": "string"}}),
    "PlanTotals": obj(
        {"trips": _INT, "orders": _INT, "distance_m": _INT, "duration_s": _INT},
    ),
    "PlanResult": obj(
        {
            "day": _DAY,
            "trips": {"type": "array", "items": ref("Trip")},
            "scheduled": {"type": "array", "items": _INT},
            "unassigned": {"type": "array", "items": ref("Unassigned")},
            "idle_vehicles": {"type": "array", "items": ref("IdleVehicle")},
            "totals": ref("PlanTotals"),
        }
    ),
}
