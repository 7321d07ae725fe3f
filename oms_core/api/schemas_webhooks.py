"""JSON Schemas of the webhooks, deliveries and depot contacts endpoints, merged into
``schemas.SCHEMAS`` (issue 6). URLs and email addresses are only shaped here; the
handlers check them and refuse with ``invalid_url`` / ``invalid_email``. The small
helpers are repeated from ``schemas_fleet`` because ``schemas.py`` imports this module.
"""

from __future__ import annotations

from typing import Any

from oms_core.api.schema_parts import obj, ref

__all__ = ["DELIVERY_STATES", "WEBHOOKS_SCHEMAS"]

MAX_ID = 2**63 - 1
DELIVERY_STATES = ("pending", "delivered", "failed")
_TEXT = "^[^\\x00]*$"
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
_INT = {"type": "integer"}
_OPT_INT = {"type": ["integer", "null"]}
_TYPE = {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"}


_WEBHOOK = {
    "id": _INT,
    "url": {"type": "string"},
    "depot_id": {**_OPT_INT, "description": "null: alerts of every depot"},
    "types": {
        "type": ["array", "null"],
        "items": {"type": "string"},
        "description": "null: every alert type",
    },
    "active": {"type": "boolean", "description": "false once deleted or answered 410 Gone"},
    "created_at": _TIME,
}
_PAGE_CURSOR = {
    "type": ["string", "null"],
    "description": "pass as cursor for the next page; null on the last",
}

WEBHOOKS_SCHEMAS: dict[str, dict[str, Any]] = {
    "WebhookCreate": obj(
        {
            "url": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2000,
                "pattern": _TEXT,
                "description": "http:// or https:// URL that receives signed POSTs",
            },
            "depot_id": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID},
            "types": {
                "type": ["array", "null"],
                "items": _TYPE,
                "minItems": 1,
                "maxItems": 50,
                "description": "alert types to send (default: all)",
            },
            "secret": {
                "type": "string",
                "minLength": 16,
                "maxLength": 200,
                "pattern": "^[\\x21-\\x7e]+$",
                "description": "HMAC key (default: 32 random bytes, URL-safe base64)",
            },
        },
        ["url"],
    ),
    "Webhook": obj(_WEBHOOK),
    "WebhookCreated": obj(
        {
            **_WEBHOOK,
            "secret": {
                "type": "string",
                "description": "the HMAC-SHA256 key: shown only in this response, keep it",
            },
        }
    ),
    "WebhookList": obj({"webhooks": {"type": "array", "items": ref("Webhook")}}),
    "Delivery": obj(
        {
            "id": _INT,
            "alert_id": _INT,
            "event": {"type": "string"},
            "channel": {"enum": ["webhook", "email"]},
            "webhook_id": _OPT_INT,
            "email": {"type": ["string", "null"]},
            "state": {"enum": list(DELIVERY_STATES)},
            "attempts": _INT,
            "next_attempt_at": _TIME,
            "last_error": {"type": "string", "description": "why the last attempt failed"},
            "delivered_at": _OPT_TIME,
            "created_at": _TIME,
        }
    ),
    "DeliveryPage": obj(
        {
            "deliveries": {"type": "array", "items": ref("Delivery")},
            "next_cursor": _PAGE_CURSOR,
        }
    ),
    "ContactCreate": obj(
        {
            "name": {"type": "string", "maxLength": 200, "pattern": _TEXT},
            "email": {"type": "string", "minLength": 3, "maxLength": 254, "pattern": _TEXT},
            "role": {
                "enum": ["supervisor", "dispatcher"],
                "description": "supervisors get alert email (default supervisor)",
            },
        },
        ["email"],
    ),
    "Contact": obj(
        {
            "id": _INT,
            "depot_id": _INT,
            "name": {"type": "string"},
            "email": {"type": "string"},
            "role": {"enum": ["supervisor", "dispatcher"]},
        }
    ),
    "ContactList": obj({"contacts": {"type": "array", "items": ref("Contact")}}),
}
