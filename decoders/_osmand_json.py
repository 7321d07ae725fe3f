"""The background-geolocation SDK JSON of Traccar Client 9+ (``osmand`` decodes it).

``{"location": {"timestamp", "coords": {…}, "battery", "activity", "extras", …},
"device_id"}``; ``location`` may be a list (the SDK's batch sync), each element its own
fix or reject. Speed is m/s; the SDK's -1 means unknown (speed, heading, battery level).
"""

from __future__ import annotations

import json
import math
from typing import Any

from decoders import _osmand_fields as osm
from decoders import attributes as attr


def parse(body: bytes) -> tuple[str, osm.Elements]:
    """The device and, per location, its row or reject; ``Invalid`` if nothing is usable."""
    try:
        doc = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise osm.Invalid("bad_json", f"not JSON: {exc}"[:200]) from exc
    if not isinstance(doc, dict):
        raise osm.Invalid("bad_json", "expected an object")
    ident = doc.get("device_id")
    if isinstance(ident, int) and not isinstance(ident, bool):
        ident = str(ident)
    if ident is not None and not isinstance(ident, str):
        raise osm.Invalid("bad_identity", "device_id must be a string")
    ident = osm.identity(ident)
    location = doc.get("location")
    if not (isinstance(location, list) and location):
        return ident, [osm.attempt(_json_row, location, b"")]
    return ident, [osm.attempt(_json_row, el, _dump(el)) for el in location]


def _dump(element: object) -> bytes:
    return json.dumps(element, ensure_ascii=False).encode("utf-8", "backslashreplace")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _json_row(loc: object) -> osm.Row:
    if not isinstance(loc, dict):
        raise osm.Invalid("no_fix", "no location object")
    coords = loc.get("coords")
    if not isinstance(coords, dict) or "latitude" not in coords or "longitude" not in coords:
        raise osm.Invalid("no_fix", "location has no coords")
    cols: dict[str, Any] = {"valid": True}
    osm.set_coordinates(
        cols, _jnum("latitude", coords["latitude"]), _jnum("longitude", coords["longitude"])
    )
    if loc.get("timestamp") is None:
        raise osm.Invalid("no_time", "location has no timestamp")
    cols["fix_time_us"] = osm.time_us(loc["timestamp"])
    attrs: dict[str, Any] = {}
    osm.put(cols, "speed_kmh", _jopt("speed", coords.get("speed"), osm.KMH_PER_MPS), osm.SPEED_KMH)
    osm.put(cols, "course_deg", _jopt("heading", coords.get("heading")), osm.COURSE)
    osm.put(cols, "altitude_m", _jopt("altitude", coords.get("altitude")), osm.ALTITUDE)
    osm.put(cols, "odometer_m", _jopt("odometer", loc.get("odometer")), osm.ODOMETER)
    osm.put(attrs, attr.ACCURACY_M, _jopt("accuracy", coords.get("accuracy")), osm.POSITIVE)
    if isinstance(loc.get("is_moving"), bool):
        attrs[attr.MOTION] = loc["is_moving"]
    battery = loc.get("battery")
    if isinstance(battery, dict):
        level = _jopt("battery.level", battery.get("level"), 100.0)
        osm.put(attrs, attr.BATTERY_LEVEL_PCT, None if level is None else round(level, 2), osm.PCT)
        if isinstance(battery.get("is_charging"), bool):
            attrs[attr.CHARGING] = battery["is_charging"]
    activity = loc.get("activity")
    if isinstance(activity, dict) and osm.storable_text(activity.get("type")):
        attrs["activity"] = activity["type"]
    for key in ("event", "mock"):
        value = loc.get(key)
        if isinstance(value, bool) or osm.storable_text(value):
            attrs["event_name" if key == "event" else key] = value
    extras = loc.get("extras")
    extra: dict[str, Any] = {}
    alarm = loc.get("alarm", extras.get("alarm") if isinstance(extras, dict) else None)
    if osm.storable_text(alarm):
        attrs.update(osm.alarm(alarm))
    if isinstance(extras, dict):
        for key, value in extras.items():
            if key != "alarm" and (isinstance(value, bool | int | str) or osm.finite_float(value)):
                osm.put_extra(extra, key, value)
    return cols, extra | attrs


def _jnum(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise osm.Invalid("bad_number", f"{name} must be a number")
    try:
        number = float(value)
    except OverflowError as exc:
        raise osm.Invalid("bad_number", f"{name} is too large") from exc
    if not math.isfinite(number):
        raise osm.Invalid("bad_number", f"{name} is not finite")
    return number


def _jopt(name: str, value: object, scale: float = 1.0) -> float | None:
    """An optional JSON reading times ``scale``: None when absent, null or negative (the
    SDK's -1 for unknown; altitude may be negative)."""
    if value is None:
        return None
    number = _jnum(name, value)
    return number * scale if number >= 0 or name == "altitude" else None
