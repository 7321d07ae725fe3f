"""JSON Schemas of the webhooks, deliveries (alerts' and customer notifications') and
depot contacts endpoints, merged into ``schemas.SCHEMAS`` (issues 6 and 12). URLs and
email addresses are only shaped here; the handlers check them and refuse with
``invalid_url`` / ``invalid_email``. The small
helpers are repeated from ``schemas_fleet`` because ``schemas.py`` imports this module.
"""

from __future__ import annotations

from typing import Any

from oms_core.api.schema_parts import obj, ref
from oms_core.notify import EVENTS, MEDIA

__all__ = ["DELIVERY_STATES", "PURPOSES", "WEBHOOKS_SCHEMAS"]

MAX_ID = 2**63 - 1
DELIVERY_STATES = ("pending", "delivered", "failed")
PURPOSES = ("alerts", "customer_messages")
_TEXT = "^[^\\x00]*$"
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
_INT = {"type": "integer"}
_OPT_INT = {"type": ["integer", "null"]}
_TYPE = {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"}


_WEBHOOK = {
    "id": _INT,
    "url": {"type": "string"},
    "purpose": {"enum": list(PURPOSES)},
    "depot_id": {**_OPT_INT, "description": "null: alerts of every depot"},
    "types": {
        "type": ["array", "null"],
        "items": {"type": "string"},
        "description": "null: every alert type (customer_messages: every event)",
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
                "description": "http:// or https:// URL that receives signed POSTs; its"
                " host must be a public address (unless webhook_allow_private)",
            },
            "purpose": {
                "enum": list(PURPOSES),
                "description": "alerts (default): alert events for the control room's"
                " systems; customer_messages: an SMS / WhatsApp gateway that gets each"
                " customer notification to send (body: event, medium, to, language, text,"
                " tracking_number, tracking_url)",
            },
            "depot_id": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID},
            "types": {
                "type": ["array", "null"],
                "items": _TYPE,
                "minItems": 1,
                "maxItems": 50,
                "description": "alert types to send (default: all); for customer_messages"
                f" the events to send, of: {', '.join(EVENTS)}",
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
            "alert_id": {**_OPT_INT, "description": "the alert's (null: a customer's)"},
            "order_id": {**_OPT_INT, "description": "the customer notification's order"},
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
    "Notification": obj(
        {
            "id": _INT,
            "event": {"enum": list(EVENTS)},
            "medium": {"enum": list(MEDIA)},
            "to": {"type": "string", "description": "the email address or phone number"},
            "channel": {"enum": ["webhook", "email"]},
            "webhook_id": {**_OPT_INT, "description": "the gateway (sms and whatsapp)"},
            "state": {"enum": list(DELIVERY_STATES)},
            "attempts": _INT,
            "next_attempt_at": _TIME,
            "last_error": {"type": "string", "description": "why the last attempt failed"},
            "delivered_at": _OPT_TIME,
            "created_at": _TIME,
        }
    ),
    "NotificationList": obj(
        {"order_id": _INT, "notifications": {"type": "array", "items": ref("Notification")}}
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
