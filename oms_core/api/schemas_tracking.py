"""JSON Schemas of the customer's tracking answer and of complaints, merged into
``schemas.SCHEMAS`` (issue 12).

The tracking answer holds only what the link's holder may see: their own order, never
an internal id, another customer's stop or address. Labels are in the customer's
language; the codes beside them are for programs.
"""

from __future__ import annotations

from typing import Any

from oms_core.api.schema_parts import obj, ref
from oms_core.states import OrderState, PaymentState

__all__ = ["CATEGORIES", "COMPLAINT_FORM", "COMPLAINT_TEXT_MAX", "STEPS", "TRACKING_SCHEMAS"]

# As the complaints table's CHECK lists them.
CATEGORIES = (
    "late", "damaged", "missing_items", "wrong_items", "driver_conduct", "billing", "other",
)  # fmt: skip
COMPLAINT_TEXT_MAX = 2000
STEPS = (
    "received", "confirmed", "scheduled", "out_for_delivery", "arrived", "departed",
    "delivered", "partially_delivered", "failed", "cancelled",
)  # fmt: skip
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
_CATEGORY = {"enum": list(CATEGORIES), "description": "what the complaint is about"}
_COMPLAINT_TEXT = {
    "type": "string",
    "minLength": 1,
    "maxLength": COMPLAINT_TEXT_MAX,
    "pattern": "^[^\\x00]*$",
    "description": "what happened, in the customer's words",
}


def _nullable(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {**schema, "type": ["object", "null"], "description": description}


_ETA = obj(
    {
        "at": {**_TIME, "description": "the control tower's live ETA, else the plan"},
        "window_start": _TIME,
        "window_end": _TIME,
        "live": {"type": "boolean", "description": "false: the planned time"},
    }
)
_VEHICLE = obj(
    {
        "lat": {"type": "number"},
        "lon": {"type": "number"},
        "at": {**_TIME, "description": "when the van was there"},
        "distance_m": {"type": ["number", "null"], "description": "to the address"},
        "map_url": {**_STR, "description": "that point on openstreetmap.org"},
    }
)
_EPOD = obj(
    {
        "outcome": {"enum": ["delivered", "partially_delivered", "failed"]},
        "label": _STR,
        "recipient_name": _STR,
        "at": _TIME,
        "reason_code": _OPT_STR,
        "reason_label": _OPT_STR,
        "lines": {"type": "array", "items": ref("TrackingEpodLine")},
        "signature_url": {**_OPT_STR, "description": "/t/<token>/files/<sha256>"},
        "photo_urls": {"type": "array", "items": _STR},
    }
)


TRACKING_SCHEMAS: dict[str, dict[str, Any]] = {
    "TrackingPage": obj(
        {
            "tracking_number": _STR,
            "state": {"enum": [s.value for s in OrderState]},
            "state_label": {**_STR, "description": "where the order is, for the customer"},
            "language": {"enum": ["id", "en"], "description": "the language of the labels"},
            "time_zone": {**_STR, "description": "IANA zone the times are shown in"},
            "window_start": _TIME,
            "window_end": _TIME,
            "address_text": _STR,
            "total_amount": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
            "payment_state": {"enum": [s.value for s in PaymentState]},
            "payment_label": _STR,
            "notice": {**_OPT_STR, "description": "a sentence the page shows under the state"},
            "stop": _nullable(
                obj(
                    {
                        "planned_arrival": _TIME,
                        "planned_departure": _TIME,
                        "actual_arrival": _OPT_TIME,
                        "actual_departure": _OPT_TIME,
                    }
                ),
                "the planned visit, once the order is scheduled",
            ),
            "timeline": {"type": "array", "items": ref("TrackingStep")},
            "eta": _nullable(
                _ETA,
                "the arrival window, while the order is loaded or on its way",
            ),
            "vehicle": _nullable(
                _VEHICLE,
                "the van, only while this order's stop is its next one",
            ),
            "stops_before": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "stops the van serves before this one (while on its way)",
            },
            "epod": _nullable(_EPOD, "the proof, once delivered or failed"),
            "complaints": {"type": "array", "items": ref("TrackingComplaint")},
            "complaints_left": {**_COUNT, "description": "complaints this order may still get"},
        }
    ),
    "TrackingStep": obj(
        {
            "step": {"enum": list(STEPS)},
            "label": _STR,
            "at": {**_OPT_TIME, "description": "null: not reached yet"},
            "done": {"type": "boolean"},
        }
    ),
    "TrackingEpodLine": obj({"sku": _STR, "name": _STR, "qty": _COUNT, "delivered_qty": _COUNT}),
    "TrackingComplaint": obj(
        {
            "category": _CATEGORY,
            "category_label": _STR,
            "text": _STR,
            "state": {"enum": ["open", "closed"]},
            "state_label": _STR,
            "created_at": _TIME,
            "photo_url": _OPT_STR,
        }
    ),
    "ComplaintCreate": obj({"category": _CATEGORY, "text": _COMPLAINT_TEXT}),
    "ComplaintReceipt": obj({"complaint": ref("TrackingComplaint"), "complaints_left": _COUNT}),
    "Complaint": obj(
        {
            "id": {"type": "integer"},
            "order_id": {"type": "integer"},
            "tracking_number": _STR,
            "category": _CATEGORY,
            "text": _STR,
            "photo_sha256": {**_OPT_STR, "description": "the customer's photo, if any"},
            "state": {"enum": ["open", "closed"]},
            "created_at": _TIME,
        }
    ),
    "ComplaintList": obj({"complaints": {"type": "array", "items": ref("Complaint")}}),
    "ComplaintPage": obj(
        {
            "complaints": {"type": "array", "items": ref("Complaint")},
            "next_cursor": {"type": ["string", "null"], "description": "null on the last page"},
        }
    ),
}
# The multipart form the tracking page posts (the JSON body plus an optional photo).
COMPLAINT_FORM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "category": _CATEGORY,
        "text": _COMPLAINT_TEXT,
        "photo": {"type": "string", "contentMediaType": "image/png"},
    },
    "required": ["category", "text"],
}
