"""The API's JSON schemas, once: the OpenAPI document publishes them and the handlers
validate request bodies against them (``schema_check.problems_in``).

Money and measured totals are decimal strings ("12.50"): JSON numbers are binary
floats and would round cents. Times are RFC 3339 with an offset.
"""

from __future__ import annotations

from typing import Any

from oms_core.api.schema_parts import MAX_ID, obj, ref
from oms_core.api.schemas_alerts import ALERTS_SCHEMAS
from oms_core.api.schemas_driver import DRIVER_SCHEMAS
from oms_core.api.schemas_fleet import FLEET_SCHEMAS
from oms_core.api.schemas_setup import SETUP_SCHEMAS
from oms_core.api.schemas_tracking import TRACKING_SCHEMAS
from oms_core.api.schemas_webhooks import WEBHOOKS_SCHEMAS
from oms_core.api.schemas_zones import ZONES_SCHEMAS
from oms_core.states import OrderState, PaymentMethod, PaymentState

__all__ = ["MAX_ID", "SCHEMAS", "ref"]

_TEXT = "^[^\\x00]*$"  # PostgreSQL text cannot hold NUL


def _id(description: str, *, nullable: bool = False) -> dict[str, Any]:
    return {
        "type": ["integer", "null"] if nullable else "integer",
        "minimum": 1,
        "maximum": MAX_ID,
        "description": description,
    }


def _text(max_length: int, *, min_length: int = 0, nullable: bool = False) -> dict[str, Any]:
    return {
        "type": ["string", "null"] if nullable else "string",
        "minLength": min_length,
        "maxLength": max_length,
        "pattern": _TEXT,
    }


def _decimal(description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$", "description": description}


_TIME = {"type": "string", "format": "date-time"}
_STATES = [s.value for s in OrderState]


SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": obj(
        {
            "code": {"type": "string", "description": "stable, for programs"},
            "message": {"type": "string", "description": "for a person"},
            "field": {"type": "string", "description": "JSON pointer into the request"},
        },
        ["code", "message"],
    ),
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": {"type": "object"}},
                }
            )
        }
    ),
    "LineCreate": obj(
        {
            "sku": _text(64, min_length=1),
            "qty": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "unit_price": {
                "type": "string",
                "pattern": "^[0-9]{1,10}(\\.[0-9]{1,2})?$",
                "description": "decimal string, at most 2 decimals",
            },
        }
    ),
    "OrderCreate": obj(
        {
            "customer_id": _id("the ordering customer"),
            "depot_id": _id("the depot the goods leave from"),
            "address_text": _text(500, min_length=1),
            "lat": {"type": ["number", "null"], "minimum": -90, "maximum": 90},
            "lon": {"type": ["number", "null"], "minimum": -180, "maximum": 180},
            "address_id": _id("a stored address of the customer", nullable=True),
            "window_start": _TIME,
            "window_end": _TIME,
            "lines": {"type": "array", "minItems": 1, "maxItems": 500, "items": ref("LineCreate")},
            "payment_method": {"enum": [m.value for m in PaymentMethod]},
            "instructions": _text(2000),
            "invoice_number": _text(64, min_length=1, nullable=True),
        },
        ["customer_id", "depot_id", "address_text", "window_start", "window_end", "lines"],
    ),
    "CancelRequest": obj({"reason": _text(500, min_length=1)}),
    "Line": obj(
        {
            "line_no": {"type": "integer"},
            "sku": {"type": "string"},
            "qty": {"type": "integer"},
            "unit_price": _decimal("per unit"),
            "delivered_qty": {"type": ["integer", "null"]},
        }
    ),
    "Order": obj(
        {
            "id": {"type": "integer"},
            "customer_id": {"type": "integer"},
            "address_id": {"type": ["integer", "null"]},
            "address_text": {"type": "string"},
            "lat": {"type": ["number", "null"]},
            "lon": {"type": ["number", "null"]},
            "depot_id": {"type": "integer"},
            "window_start": _TIME,
            "window_end": _TIME,
            "instructions": {"type": "string"},
            "payment_method": {"enum": [m.value for m in PaymentMethod]},
            "payment_state": {"enum": [s.value for s in PaymentState]},
            "invoice_number": {"type": ["string", "null"]},
            "total_amount": _decimal("sum of the lines"),
            "total_weight_kg": _decimal("kg"),
            "total_volume_m3": _decimal("m³"),
            "state": {"enum": _STATES},
            "tracking_number": {"type": "string"},
            "public_token": {"type": "string", "description": "secret of the tracking page"},
            "created_at": _TIME,
            "updated_at": _TIME,
            "lines": {"type": "array", "items": ref("Line")},
        }
    ),
    "OrderPage": obj(
        {
            "orders": {"type": "array", "items": ref("Order")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "pass as cursor for the next page; null on the last",
            },
        }
    ),
    "VerifyResult": obj(
        {
            "verified": {"type": "boolean"},
            "problems": {"type": "array", "items": ref("Problem")},
            "order": ref("Order"),
        }
    ),
    "OrderEvent": obj(
        {
            "id": {"type": "integer"},
            "at": _TIME,
            "actor": {"type": "string"},
            "kind": {"enum": ["state", "payment"]},
            "from_state": {"type": ["string", "null"]},
            "to_state": {"type": "string"},
            "reason": {"type": "string"},
        }
    ),
    "EventList": obj({"events": {"type": "array", "items": ref("OrderEvent")}}),
    "OrderImport": {
        "type": "array",
        "items": {"description": "an OrderCreate; checked per row, refused in the report"},
        "description": "orders as in POST /orders; each item is checked and stored alone",
    },
    "ImportRow": obj(
        {
            "row": {"type": "integer", "description": "JSON: 0-based index; CSV: line number"},
            "ok": {"type": "boolean"},
            "order_id": {"type": ["integer", "null"]},
            "external_ref": {"type": ["string", "null"]},
            "error": {"type": ["object", "null"], "description": "{code, message, details}"},
        }
    ),
    "ImportReport": obj(
        {
            "created": {"type": "integer", "description": "orders stored"},
            "refused_rows": {"type": "integer"},
            "rows": {"type": "array", "items": ref("ImportRow")},
        }
    ),
    "PaymentUpdate": obj(
        {
            "state": {"enum": [s.value for s in PaymentState], "description": "the new state"},
            "reason": _text(500),
        },
        ["state"],
    ),
    **FLEET_SCHEMAS,
    **ZONES_SCHEMAS,
    **ALERTS_SCHEMAS,
    **WEBHOOKS_SCHEMAS,
    **DRIVER_SCHEMAS,
    **TRACKING_SCHEMAS,
    **SETUP_SCHEMAS,
}
