"""Menara JSON: the payload of MQTT topic ``menara/v1/<device>/json``.

The payload is one object or an array of objects; each object is one fix::

    {
      "fix_time": "2026-11-25T14:03:07.250Z",   required, ISO 8601 with "Z" or an offset
      "lat": 52.3731,                            required, -90..90 (WGS84, south negative)
      "lon": 4.8922,                             required, -180..180 (west negative)
      "speed_kmh": 42.5,                         >= 0 and < 2000
      "course_deg": 270.0,                       0..360
      "altitude_m": 3.0,                         -1000..100000 (above mean sea level)
      "satellites": 9,                           integer 0..999
      "hdop": 0.9,                               >= 0 and <= 999
      "valid": true,                             default true
      "ignition": true,
      "odometer_m": 123456.0,                    >= 0
      "attributes": {"fuel_pct": 71}             any JSON object, kept with the fix
    }

Optional fields may be omitted or ``null`` (unknown). Validation is strict, per element:
a bad element is rejected with its own code and the others are kept. Codes: ``bad_json``
(not UTF-8 JSON), ``not_object``, ``missing_field``, ``unknown_field`` (a top-level key
not listed above: typos must not pass silently), ``bad_type`` (booleans are not numbers,
integers are accepted for floats), ``out_of_range`` (also NaN/Infinity), ``bad_time``
(not ISO 8601, no UTC offset, or a year outside 1980..2099), ``bad_attributes`` (a NUL,
an unpaired surrogate, NaN or Infinity anywhere inside: PostgreSQL's jsonb refuses them).
A rejected element of an array carries its own re-serialised JSON as raw bytes. The
device id is the topic's, from ``session.device_id``. Devices get no reply over MQTT,
so ``replies`` is empty.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from decoders.model import Decoded, Reject, Session, empty_fixes

NAME = "menara-json"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_YEAR, _LAST_YEAR = 1980, 2099  # GPS epoch .. a sanity bound (no clock here)

# name -> (kind, low, high); bounds are inclusive unless noted in the docstring.
_NUMBERS: dict[str, tuple[type, float, float]] = {
    "lat": (float, -90.0, 90.0),
    "lon": (float, -180.0, 180.0),
    "speed_kmh": (float, 0.0, 1999.999),
    "course_deg": (float, 0.0, 360.0),
    "altitude_m": (float, -1000.0, 100_000.0),
    "satellites": (int, 0, 999),
    "hdop": (float, 0.0, 999.0),
    "odometer_m": (float, 0.0, 1e12),
}
_BOOLS = ("valid", "ignition")
_REQUIRED = ("fix_time", "lat", "lon")
_KNOWN = frozenset(_NUMBERS) | frozenset(_BOOLS) | {"fix_time", "attributes"}


class _Invalid(Exception):
    """One element failed validation: ``code`` and detail."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """An MQTT message is already one frame."""
    return ([buf] if buf else []), b""


def decode(frame: bytes, *, session: Session) -> Decoded:
    """Decode one payload."""
    return decode_frames([frame], session=session)


def decode_frames(frames: Sequence[bytes], *, session: Session) -> Decoded:
    """Decode payloads; every valid element becomes one fix."""
    rows: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    for frame in frames:
        try:
            doc = json.loads(frame)
        except (UnicodeDecodeError, ValueError) as exc:
            rejects.append(Reject("bad_json", str(exc), frame))
            continue
        elements = doc if isinstance(doc, list) else [doc]
        for i, el in enumerate(elements):
            try:
                rows.append(_validate(el))
            except _Invalid as exc:
                raw = frame if len(elements) == 1 else json.dumps(el).encode()
                detail = exc.detail if len(elements) == 1 else f"element {i}: {exc.detail}"
                rejects.append(Reject(exc.code, detail, raw))
    fixes = empty_fixes(len(rows))
    for i, row in enumerate(rows):
        for name, value in row.items():
            if name != "attributes" and value is not None:
                fixes[name][i] = value
    attributes = tuple(row["attributes"] for row in rows)
    return Decoded(
        fixes=fixes,
        session=session,
        attributes=attributes if any(attributes) else (),
        rejects=tuple(rejects),
    )


def _validate(el: object) -> dict[str, Any]:
    """Checked element as FIX_DTYPE column values (None = unknown) plus ``attributes``."""
    if not isinstance(el, dict):
        raise _Invalid("not_object", f"expected an object, got {type(el).__name__}")
    unknown = sorted(set(el) - _KNOWN)
    if unknown:
        raise _Invalid("unknown_field", f"unknown field(s): {', '.join(unknown)}")
    for name in _REQUIRED:
        if el.get(name) is None:
            raise _Invalid("missing_field", f"{name} is required")
    row: dict[str, Any] = {"fix_time_us": _time_us(el["fix_time"])}
    for name, (kind, low, high) in _NUMBERS.items():
        row[name] = _number(name, el.get(name), kind, low, high)
    for name in _BOOLS:
        value = el.get(name)
        if value is not None and not isinstance(value, bool):
            raise _Invalid("bad_type", f"{name} must be true or false")
        row[name] = value
    if row["valid"] is None:
        row["valid"] = True
    attrs = el.get("attributes")
    if attrs is not None and not isinstance(attrs, dict):
        raise _Invalid("bad_type", "attributes must be an object")
    if attrs and not _storable(attrs):
        raise _Invalid("bad_attributes", "attributes hold NUL, a lone surrogate, NaN or Infinity")
    row["attributes"] = attrs or {}
    return row


def _storable(value: object) -> bool:
    """True when PostgreSQL's jsonb accepts ``value``: it refuses U+0000, unpaired
    surrogates and non-finite numbers, and one refused row would hold up its batch."""
    if isinstance(value, str):
        return "\x00" not in value and not any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def _number(name: str, value: object, kind: type, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid("bad_type", f"{name} must be a number")
    if kind is int and not isinstance(value, int):
        raise _Invalid("bad_type", f"{name} must be an integer")
    if not (math.isfinite(value) and low <= value <= high):
        raise _Invalid("out_of_range", f"{name}={value} outside {low}..{high}")
    return value


def _time_us(value: object) -> int:
    if not isinstance(value, str):
        raise _Invalid("bad_type", "fix_time must be an ISO 8601 string")
    try:
        t = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _Invalid("bad_time", f"fix_time {value!r} is not ISO 8601") from exc
    if t.utcoffset() is None:
        raise _Invalid("bad_time", "fix_time needs 'Z' or a UTC offset")
    if not _FIRST_YEAR <= t.astimezone(UTC).year <= _LAST_YEAR:
        raise _Invalid("bad_time", f"fix_time outside {_FIRST_YEAR}..{_LAST_YEAR}")
    return (t - _EPOCH) // timedelta(microseconds=1)
