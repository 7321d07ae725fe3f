"""JSON Schemas of the driver app's endpoints and the ePOD reads, merged into
``schemas.SCHEMAS`` (issue 12).

Every driver action shares the same envelope (``_ACTION``): the phone's idempotency key,
when the driver tapped (``at``) and when the phone sent it (``sent_at``, its clock skew
tells), and where the phone was.
"""

from __future__ import annotations

from typing import Any

from oms_core.api.schema_parts import obj, ref
from oms_core.execution.reasons import REASONS

__all__ = ["DRIVER_SCHEMAS", "KEY_PATTERN", "SHA256"]

KEY_PATTERN = "^[A-Za-z0-9_-]{8,64}$"
SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "an uploaded file"}
_MAX_ID = 2**63 - 1
_ID = {"type": "integer", "minimum": 1, "maximum": _MAX_ID}
_QTY = {"type": "integer", "minimum": 0, "maximum": 1_000_000}
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
_NO_NUL = "^[^\\x00]*$"
_MONEY = {
    "type": ["string", "null"],
    "pattern": "^[0-9]{1,10}(\\.[0-9]{1,2})?$",
    "description": "decimal string, at most 2 decimals",
}
_POSITION = {
    **obj(
        {
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
            "accuracy_m": {"type": ["number", "null"], "minimum": 0, "maximum": 100_000},
        },
        ["lat", "lon"],
    ),
    "type": ["object", "null"],
    "description": "the phone's position when the driver tapped (null: unknown)",
}
_ACTION: dict[str, Any] = {
    "idempotency_key": {
        "type": "string",
        "pattern": KEY_PATTERN,
        "description": "made by the phone per action; a retry sends the same key",
    },
    "at": {**_TIME, "description": "when the driver tapped, by the phone's clock"},
    "sent_at": {**_TIME, "description": "when the phone sent this request, by its clock"},
    "position": _POSITION,
}
_BASE_REQUIRED = ["idempotency_key", "at"]


def _action(extra: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return obj({**_ACTION, **extra}, _BASE_REQUIRED + (required or []))


DRIVER_SCHEMAS: dict[str, dict[str, Any]] = {
    "DriverSignIn": obj({"code": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,128}$"}}),
    "DriverSession": obj(
        {
            "token": {"type": "string", "description": "a driver API token: keep it secret"},
            "driver_id": _ID,
            "name": {"type": "string"},
        }
    ),
    "SignInLink": obj(
        {
            "url": {"type": "string", "description": "open on the driver's phone; works once"},
            "expires_at": _TIME,
        }
    ),
    "DriverAction": _action({}),
    "DriverLoaded": _action(
        {
            "lines": {
                "type": "array",
                "maxItems": 5000,
                "items": obj({"order_id": _ID, "line_no": _ID, "loaded_qty": _QTY}),
                "description": "what was counted onto the van, per order line",
            }
        },
        ["lines"],
    ),
    "DriverDelivery": _action(
        {
            "outcome": {"enum": ["delivered", "partially_delivered", "failed"]},
            "lines": {
                "type": "array",
                "maxItems": 500,
                "items": obj(
                    {"line_no": _ID, "delivered_qty": _QTY, "damaged_qty": _QTY},
                    ["line_no", "delivered_qty"],
                ),
                "description": "per line; omitted lines are all delivered (delivered) or"
                " none (partial, failed)",
            },
            "recipient_name": {"type": "string", "maxLength": 200, "pattern": _NO_NUL},
            "signature": {**SHA256, "type": ["string", "null"]},
            "photos": {"type": "array", "maxItems": 10, "items": SHA256},
            "notes": {"type": "string", "maxLength": 2000, "pattern": _NO_NUL},
            "reason_code": {"enum": [*REASONS, None]},
            "cod_collected": _MONEY,
        },
        ["outcome"],
    ),
    "DriverReturned": _action({"cash_handed_in": _MONEY}),
    "DriverPositions": obj(
        {
            "positions": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": obj(
                    {
                        "at": _TIME,
                        "lat": {"type": "number", "minimum": -90, "maximum": 90},
                        "lon": {"type": "number", "minimum": -180, "maximum": 180},
                        "accuracy_m": {"type": ["number", "null"], "minimum": 0},
                        "speed_mps": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
                        "heading_deg": {"type": ["number", "null"], "minimum": 0, "maximum": 360},
                    },
                    ["at", "lat", "lon"],
                ),
            }
        }
    ),
    "ActionResult": {
        "type": "object",
        "description": "what the action did; a retry with the same key gets the same"
        " answer with replayed true",
        "properties": {"replayed": {"type": "boolean"}},
    },
    "StoredFile": obj(
        {
            "sha256": SHA256,
            "media_type": {"enum": ["image/png", "image/jpeg", "image/webp"]},
            "size_bytes": {"type": "integer"},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
        }
    ),
    "DriverToday": {
        "type": "object",
        "description": "the driver, the day and the current trip (null: none today) with"
        " its stops, orders and lines in order; the reason codes for the ePOD form",
        "properties": {
            "driver": obj({"id": _ID, "name": {"type": "string"}}),
            "trip": {"type": ["object", "null"]},
            "reasons": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Epod": {
        "type": "object",
        "description": "an order's proof of delivery with its checks and perfect-delivery row",
        "properties": {
            "order_id": _ID,
            "outcome": {"enum": ["delivered", "partially_delivered", "failed"]},
            "reason_code": {"type": ["string", "null"]},
            "needs_review": {"type": "boolean"},
            "checks": {"type": "object"},
            "at": _TIME,
            "perfect_delivery": {"type": ["object", "null"]},
            "lines": {"type": "array", "items": {"type": "object"}},
            "photos": {"type": "array", "items": ref("FileLink")},
            "signature": {"type": ["object", "null"]},
            "created_at": _OPT_TIME,
        },
    },
    "FileLink": obj({"sha256": SHA256, "url": {"type": "string"}}),
}
