"""JSON Schemas of the alerts endpoints, merged into ``schemas.SCHEMAS`` (issue 6).

The two small helpers are repeated from ``schemas.py``, which imports this module.
"""

from __future__ import annotations

from typing import Any

from oms_core.api.schema_parts import obj, ref

__all__ = ["ALERTS_SCHEMAS", "ALERT_STATES", "SEVERITIES"]

ALERT_STATES = ["open", "acknowledged", "escalated", "resolved"]
SEVERITIES = ["info", "warning", "critical"]
_INT = {"type": "integer"}
_OPT_INT = {"type": ["integer", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}


_ALERT: dict[str, Any] = {
    "id": _INT,
    "type": {"type": "string", "description": "route_deviation, overspeed, ..."},
    "severity": {"enum": SEVERITIES},
    "state": {"enum": ALERT_STATES},
    "dedupe_key": {"type": "string", "description": "kind:vehicle:trip:key of the incident"},
    "vehicle_id": _OPT_INT,
    "device_id": {"type": ["string", "null"]},
    "trip_id": _OPT_INT,
    "stop_id": _OPT_INT,
    "depot_id": _OPT_INT,
    "order_ids": {"type": "array", "items": _INT, "description": "orders it puts at risk"},
    "message": {"type": "string", "description": "what happened and what to do"},
    "details": {"type": "object", "description": "the rule's latest figures"},
    "opened_at": {**_TIME, "description": "fix time the incident began"},
    "last_seen_at": _TIME,
    "cleared_at": {**_OPT_TIME, "description": "when the condition ended (null: still on)"},
    "acknowledged_at": _OPT_TIME,
    "escalated_at": _OPT_TIME,
    "resolved_at": _OPT_TIME,
    "created_at": {**_TIME, "description": "server time it was raised"},
    "time_to_ack_s": {
        "type": ["number", "null"],
        "description": "acknowledged_at - created_at in seconds; null until acknowledged",
    },
}
_COMMENT = {"type": "string", "maxLength": 2000, "pattern": "^[^\\x00]*$"}

ALERTS_SCHEMAS: dict[str, dict[str, Any]] = {
    "Alert": obj(_ALERT),
    "AlertPage": obj(
        {
            "alerts": {"type": "array", "items": ref("Alert")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "pass as cursor for the next page; null on the last",
            },
        }
    ),
    "AlertActionRecord": obj(
        {
            "action": {
                "enum": ["open", "update", "clear", "acknowledge", "escalate", "resolve", "comment"]
            },
            "actor": {"type": "string", "description": "'rules', 'system' or a token's name"},
            "at": _TIME,
            "comment": {"type": "string"},
        }
    ),
    "AlertDetail": obj(
        {
            **_ALERT,
            "evidence": {
                "type": "array",
                "items": {"type": "object"},
                "description": "the fixes that triggered it (the first and the latest)",
            },
            "actions": {"type": "array", "items": ref("AlertActionRecord")},
        }
    ),
    "AlertMove": obj({"comment": _COMMENT}, []),
    "AlertComment": obj({"comment": {**_COMMENT, "minLength": 1}}),
}
