"""Requests as a phone running Traccar Client sends them: a query string or the SDK's JSON.

The query form carries speed in knots, as Traccar's OsmAnd decoder reads it, the time as
unix seconds (milliseconds when it has a fraction) and floats by their shortest repr, so
decoding gives the input back. The JSON form is the background-geolocation SDK's
(speed m/s, battery level 0..1, -1 for an unknown speed, heading or accuracy).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from simulators.errors import EncodeError

KMH_PER_KNOT = 1.852
KMH_PER_MPS = 3.6
_INT_MAX = 2**31 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

__all__ = ["json_body", "query"]


def query(
    device_id: str,
    *,
    time: datetime,
    lat: float,
    lon: float,
    speed_kmh: float | None = None,
    bearing: float | None = None,
    altitude_m: float | None = None,
    accuracy_m: float | None = None,
    batt_pct: float | None = None,
) -> str:
    """``id=…&lat=…&lon=…&timestamp=…`` plus the known optional readings."""
    _check(device_id, lat, lon)
    params: list[tuple[str, str]] = [
        ("id", device_id),
        ("lat", repr(float(lat))),
        ("lon", repr(float(lon))),
        ("timestamp", _unix(time)),
    ]
    optional = {
        "speed": None if speed_kmh is None else speed_kmh / KMH_PER_KNOT,
        "bearing": bearing,
        "altitude": altitude_m,
        "accuracy": accuracy_m,
        "batt": batt_pct,
    }
    for name, value in optional.items():
        if value is not None:
            params.append((name, repr(float(_finite(name, value)))))
    return urlencode(params)


def json_body(
    device_id: str,
    *,
    time: datetime,
    lat: float,
    lon: float,
    speed_kmh: float | None = None,
    bearing: float | None = None,
    altitude_m: float | None = None,
    accuracy_m: float | None = None,
    batt_pct: float | None = None,
) -> bytes:
    """The Traccar Client 9 JSON body for one location."""
    _check(device_id, lat, lon)
    coords: dict[str, Any] = {
        "latitude": float(lat),
        "longitude": float(lon),
        "accuracy": -1 if accuracy_m is None else _finite("accuracy", accuracy_m),
        "speed": -1 if speed_kmh is None else _finite("speed", speed_kmh) / KMH_PER_MPS,
        "heading": -1 if bearing is None else _finite("bearing", bearing),
    }
    if altitude_m is not None:
        coords["altitude"] = _finite("altitude", altitude_m)
    level = -1 if batt_pct is None else _finite("batt", batt_pct) / 100
    location = {
        "timestamp": _iso(time),
        "coords": coords,
        "is_moving": bool(speed_kmh),
        "event": "motionchange",
        "battery": {"level": level, "is_charging": False},
        "activity": {"type": "in_vehicle" if speed_kmh else "still"},
        "extras": {},
    }
    return json.dumps({"location": location, "device_id": device_id}).encode()


def _check(device_id: str, lat: float, lon: float) -> None:
    if not device_id or not device_id.isascii() or not device_id.isprintable():
        raise EncodeError(f"device id {device_id!r} is not printable ASCII")
    if not (math.isfinite(lat) and -90 <= lat <= 90 and math.isfinite(lon) and -180 <= lon <= 180):
        raise EncodeError(f"coordinates {lat!r}, {lon!r} out of range")


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise EncodeError(f"{name}={value!r} is not finite")
    return value


def _utc(time: datetime) -> datetime:
    if time.tzinfo is None:
        raise EncodeError("fix time must be timezone-aware (UTC)")
    return time.astimezone(UTC)


def _unix(time: datetime) -> str:
    """Whole seconds as the client sends them; milliseconds for a fraction, and from 2038 on
    (Traccar reads a value of 2^31-1 or more as milliseconds)."""
    ms = (_utc(time) - _EPOCH) // timedelta(milliseconds=1)
    return str(ms // 1000) if ms % 1000 == 0 and ms // 1000 < _INT_MAX else str(ms)


def _iso(time: datetime) -> str:
    t = _utc(time)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"
