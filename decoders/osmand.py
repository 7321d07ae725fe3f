"""OsmAnd / Traccar Client over HTTP: a tracking URL's query string or a phone app's JSON.

A frame is one request's data, as Traccar's ``OsmAndProtocolDecoder`` reads it: a query
string or form body (``id=…&lat=…&lon=…&timestamp=…``; a leading ``/?`` or URL is skipped)
or, when it starts with ``{``, the background-geolocation SDK JSON of Traccar Client 9+
(``{"location": {"timestamp", "coords", "battery", …}, "device_id"}``; ``location`` may be
a list, the SDK's batch sync). ``split_frames`` gives one frame per line (files); the HTTP
intake hands each request to ``decode_frames`` whole.

Query parameters, as Traccar: ``id``/``deviceid``; ``lat``+``lon`` or ``location=lat,lon``;
``timestamp`` (an integer below 2^31-1 is unix seconds, else milliseconds; with ``T`` ISO
8601; else ``yyyy-MM-dd HH:mm:ss``); ``speed`` in knots (Traccar's unit here; JSON speed is
m/s); ``bearing``/``heading``; ``altitude``; ``accuracy``; ``hdop``; ``batt`` (%);
``valid`` (``true``/``1``; default true); ``charge``; ``ignition``; ``odometer`` (metres);
``sat``; ``cell`` (the first ``mcc,mnc,lac,cid[,rssi]``); ``alarm``. Empty values are
skipped, a repeated parameter's last value wins. Other parameters become attributes typed
as Traccar types them (number, boolean, text): at most ``MAX_EXTRA``, keys up to
``MAX_KEY``, texts up to ``MAX_TEXT`` characters; vocabulary names and what jsonb cannot
store are dropped. An optional reading that is negative (a phone's -1) or outside its
physical range is left unknown rather than spoiling the position.

Where Traccar differs, because a decoder is pure (no clock, no last position): no
timestamp is ``no_time`` (Traccar uses the server time; phones always send one), no
coordinates is ``no_fix`` (Traccar copies the last position), and a time without an
offset is UTC (Traccar: the server's zone). Other rejects: ``no_identity``,
``bad_identity``, ``conflicting_identity`` (two ids in one request), ``identity_changed``
(not the session's device), ``bad_number``, ``bad_coordinates``, ``bad_date`` (also before
the GPS epoch 1980-01-06 or after 2099), ``bad_json``, ``too_many_fields``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard
from urllib.parse import parse_qsl

from decoders import attributes as attr
from decoders.model import Decoded, Reject, Session, empty_fixes, valid_device_id

NAME = "osmand"

KMH_PER_KNOT = 1.852
KMH_PER_MPS = 3.6
MAX_FIELDS = 200  # parameters in one query string
MAX_EXTRA = 32  # unknown parameters / JSON extras kept per fix
MAX_KEY = 64
MAX_TEXT = 256

_INT_MAX = 2**31 - 1  # Java's Integer.MAX_VALUE: Traccar's seconds/milliseconds boundary
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST, _END = datetime(1980, 1, 6, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)  # GPS epoch
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,4})?")
_INTEGER = re.compile(r"[+-]?\d{1,19}")
# Physical ranges of optional readings; outside them a reading is unknown.
_SPEED_KMH, _COURSE, _ALTITUDE = (0.0, 2000.0), (0.0, 360.0), (-1000.0, 100_000.0)
_HDOP, _ODOMETER, _PCT = (0.0, 999.0), (0.0, 1e12), (0.0, 100.0)
_SATS, _POSITIVE = (0, 999), (0.0, math.inf)
_VOCABULARY = frozenset(v for k, v in vars(attr).items() if k.isupper() and isinstance(v, str))

Row = tuple[dict[str, Any], dict[str, Any]]  # FIX_DTYPE column values, attributes


class _Invalid(Exception):
    """One frame (or JSON element) cannot be a fix: reject ``code`` with ``detail``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """One request per line (``\\r\\n`` or ``\\n``); the unterminated tail is the rest."""
    lines = buf.split(b"\n")
    rest = lines.pop()
    return [ln.removesuffix(b"\r") for ln in lines], rest


def decode(frame: bytes, *, session: Session) -> Decoded:
    """Decode one request."""
    return decode_frames([frame], session=session)


def decode_frames(frames: Sequence[bytes], *, session: Session) -> Decoded:
    """Decode requests in order; each names its device and must match the session's."""
    rows: list[Row] = []
    rejects: list[Reject] = []
    named: str | None = None
    for frame in frames:
        body = frame.strip()
        if not body:
            continue
        try:
            ident, elements = _json(body) if body[:1] == b"{" else _query(body)
        except _Invalid as exc:
            rejects.append(Reject(exc.code, exc.detail, frame))
            continue
        owner = session.device_id
        if owner is not None and owner != ident:
            rejects.append(Reject("identity_changed", f"connection belongs to {owner}", frame))
            continue
        if owner is None:
            session = replace(session, device_id=ident)
        named = named or ident
        for row, raw in elements:
            if isinstance(row, _Invalid):
                rejects.append(Reject(row.code, row.detail, raw or frame))
            else:
                rows.append(row)
    fixes = empty_fixes(len(rows))
    for i, (cols, _) in enumerate(rows):
        for name, value in cols.items():
            fixes[name][i] = value
    attributes = tuple(a for _, a in rows)
    return Decoded(
        fixes=fixes,
        session=session,
        attributes=attributes if any(attributes) else (),
        device_id=named,
        rejects=tuple(rejects),
    )


Elements = list[tuple[Row | _Invalid, bytes]]  # per fix: the row or its reject, raw element


# -- query strings -----------------------------------------------------------------


def _query(body: bytes) -> tuple[str, Elements]:
    text = body.decode("utf-8", "replace")
    head, sep, tail = text.partition("?")
    if sep and "=" not in head and "&" not in head:  # "/?id=…" or a whole URL
        text = tail
    try:
        pairs = parse_qsl(text, max_num_fields=MAX_FIELDS, errors="replace")
    except ValueError as exc:
        raise _Invalid("too_many_fields", f"more than {MAX_FIELDS} parameters") from exc
    ids = {value for key, value in pairs if key in ("id", "deviceid")}
    if len(ids) > 1:
        raise _Invalid("conflicting_identity", f"several device ids: {sorted(ids)!r}"[:200])
    return _identity(next(iter(ids), None)), [_attempt(_query_row, pairs, b"")]


def _attempt(parse: Callable[[Any], Row], arg: Any, raw: bytes) -> tuple[Row | _Invalid, bytes]:
    """``parse(arg)``, or the reject it raised, with the raw bytes of that element."""
    try:
        return parse(arg), raw
    except _Invalid as exc:
        return exc, raw


def _query_row(pairs: list[tuple[str, str]]) -> Row:
    cols: dict[str, Any] = {"valid": True}
    attrs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    lat = lon = None
    for key, value in pairs:
        match key:
            case "id" | "deviceid":
                pass
            case "lat":
                lat = _number(key, value)
            case "lon":
                lon = _number(key, value)
            case "location":
                parts = value.split(",")
                lat = _number("location", parts[0])
                lon = _number("location", parts[1] if len(parts) > 1 else "")
            case "timestamp":
                cols["fix_time_us"] = _time_us(value)
            case "valid":
                cols["valid"] = value.lower() == "true" or value == "1"
            case "speed":
                _put(cols, "speed_kmh", _number(key, value) * KMH_PER_KNOT, _SPEED_KMH)
            case "bearing" | "heading":
                _put(cols, "course_deg", _number(key, value), _COURSE)
            case "altitude":
                _put(cols, "altitude_m", _number(key, value), _ALTITUDE)
            case "hdop":
                _put(cols, "hdop", _number(key, value), _HDOP)
            case "odometer":
                _put(cols, "odometer_m", _number(key, value), _ODOMETER)
            case "sat":
                _put(cols, "satellites", _integer(key, value), _SATS)
            case "ignition":
                cols["ignition"] = int(_flag(key, value))
            case "accuracy":
                _put(attrs, attr.ACCURACY_M, _number(key, value), _POSITIVE)
            case "batt":
                _put(attrs, attr.BATTERY_LEVEL_PCT, _number(key, value), _PCT)
            case "charge":
                attrs[attr.CHARGING] = value.lower() == "true"
            case "motion":
                attrs[attr.MOTION] = _flag(key, value)
            case "cell":
                attrs.setdefault(attr.CELL, _cell(value))
            case "alarm":
                attrs.update(_alarm(value))
            case _:
                _extra(extra, key, _typed(value))
    if lat is None or lon is None:
        raise _Invalid("no_fix", "request carries no position")
    _coordinates(cols, lat, lon)
    if "fix_time_us" not in cols:
        raise _Invalid("no_time", "request carries no timestamp")
    return cols, extra | attrs


def _typed(value: str) -> float | bool | str:
    """A value as Traccar types an unknown parameter: number, boolean, else text."""
    if _NUMBER.fullmatch(value):
        number = float(value)
        if math.isfinite(number):
            return number
    return {"true": True, "false": False}.get(value, value)


def _cell(value: str) -> dict[str, int]:
    parts = value.split(",")
    if len(parts) < 4 or not all(_INTEGER.fullmatch(p) for p in parts[:4]):
        raise _Invalid("bad_number", f"cell {value[:40]!r} is not mcc,mnc,lac,cid")
    mcc, mnc, lac, cid = (int(p) for p in parts[:4])
    return {"mcc": mcc, "mnc": mnc, "lac": lac, "cid": cid}


# -- JSON (background-geolocation SDK) -------------------------------------------------


def _json(body: bytes) -> tuple[str, Elements]:
    try:
        doc = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise _Invalid("bad_json", f"not JSON: {exc}"[:200]) from exc
    if not isinstance(doc, dict):
        raise _Invalid("bad_json", "expected an object")
    ident = doc.get("device_id")
    if isinstance(ident, int) and not isinstance(ident, bool):
        ident = str(ident)
    if ident is not None and not isinstance(ident, str):
        raise _Invalid("bad_identity", "device_id must be a string")
    ident = _identity(ident)
    location = doc.get("location")
    if not (isinstance(location, list) and location):
        return ident, [_attempt(_json_row, location, b"")]
    return ident, [_attempt(_json_row, el, _dump(el)) for el in location]


def _dump(element: object) -> bytes:
    return json.dumps(element, ensure_ascii=False).encode("utf-8", "backslashreplace")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _json_row(loc: object) -> Row:
    if not isinstance(loc, dict):
        raise _Invalid("no_fix", "no location object")
    coords = loc.get("coords")
    if not isinstance(coords, dict) or "latitude" not in coords or "longitude" not in coords:
        raise _Invalid("no_fix", "location has no coords")
    cols: dict[str, Any] = {"valid": True}
    _coordinates(
        cols, _jnum("latitude", coords["latitude"]), _jnum("longitude", coords["longitude"])
    )
    if loc.get("timestamp") is None:
        raise _Invalid("no_time", "location has no timestamp")
    cols["fix_time_us"] = _time_us(loc["timestamp"])
    attrs: dict[str, Any] = {}
    _put(cols, "speed_kmh", _jopt("speed", coords.get("speed"), KMH_PER_MPS), _SPEED_KMH)
    _put(cols, "course_deg", _jopt("heading", coords.get("heading")), _COURSE)
    _put(cols, "altitude_m", _jopt("altitude", coords.get("altitude")), _ALTITUDE)
    _put(cols, "odometer_m", _jopt("odometer", loc.get("odometer")), _ODOMETER)
    _put(attrs, attr.ACCURACY_M, _jopt("accuracy", coords.get("accuracy")), _POSITIVE)
    if isinstance(loc.get("is_moving"), bool):
        attrs[attr.MOTION] = loc["is_moving"]
    battery = loc.get("battery")
    if isinstance(battery, dict):
        level = _jopt("battery.level", battery.get("level"), 100.0)
        _put(attrs, attr.BATTERY_LEVEL_PCT, None if level is None else round(level, 2), _PCT)
        if isinstance(battery.get("is_charging"), bool):
            attrs[attr.CHARGING] = battery["is_charging"]
    activity = loc.get("activity")
    if isinstance(activity, dict) and _storable_text(activity.get("type")):
        attrs["activity"] = activity["type"]
    for key in ("event", "mock"):
        value = loc.get(key)
        if isinstance(value, bool) or _storable_text(value):
            attrs["event_name" if key == "event" else key] = value
    extras = loc.get("extras")
    extra: dict[str, Any] = {}
    alarm = loc.get("alarm", extras.get("alarm") if isinstance(extras, dict) else None)
    if _storable_text(alarm):
        attrs.update(_alarm(alarm))
    if isinstance(extras, dict):
        for key, value in extras.items():
            if key != "alarm" and (isinstance(value, bool | int | str) or _finite_float(value)):
                _extra(extra, key, value)
    return cols, extra | attrs


def _jnum(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid("bad_number", f"{name} must be a number")
    try:
        number = float(value)
    except OverflowError as exc:
        raise _Invalid("bad_number", f"{name} is too large") from exc
    if not math.isfinite(number):
        raise _Invalid("bad_number", f"{name} is not finite")
    return number


def _jopt(name: str, value: object, scale: float = 1.0) -> float | None:
    """An optional JSON reading times ``scale``: None when absent, null or negative (the
    SDK's -1 for unknown; altitude may be negative)."""
    if value is None:
        return None
    number = _jnum(name, value)
    return number * scale if number >= 0 or name == "altitude" else None


# -- shared ------------------------------------------------------------------------


def _identity(ident: str | None) -> str:
    if ident is None or ident == "":
        raise _Invalid("no_identity", "no device id (id, deviceid or device_id)")
    if not valid_device_id(ident):
        raise _Invalid("bad_identity", "device id must be 1-64 printable ASCII characters")
    return ident


def _number(name: str, value: str) -> float:
    if not _NUMBER.fullmatch(value):
        raise _Invalid("bad_number", f"{name}={value[:40]!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise _Invalid("bad_number", f"{name}={value[:40]!r} is not finite")
    return number


def _integer(name: str, value: str) -> int:
    if not _INTEGER.fullmatch(value):
        raise _Invalid("bad_number", f"{name}={value[:40]!r} is not an integer")
    return int(value)


def _flag(name: str, value: str) -> bool:
    low = value.lower()
    if low not in ("true", "false", "1", "0"):
        raise _Invalid("bad_number", f"{name}={value[:40]!r} is not true/false/1/0")
    return low in ("true", "1")


def _finite_float(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _put(
    target: dict[str, Any], name: str, value: float | None, bounds: tuple[float, float]
) -> None:
    """Store ``value`` when known and inside ``bounds``; otherwise leave it unknown."""
    if value is not None and bounds[0] <= value <= bounds[1]:
        target[name] = value


def _coordinates(cols: dict[str, Any], lat: float, lon: float) -> None:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise _Invalid("bad_coordinates", f"lat={lat} lon={lon} out of range")
    cols["lat"], cols["lon"] = lat, lon


def _time_us(value: object) -> int:
    """Traccar's timestamp forms: unix seconds or milliseconds, ISO 8601, or
    ``yyyy-MM-dd HH:mm:ss``; times without an offset are UTC."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _Invalid("bad_date", "timestamp must be a string or an integer")
    try:
        if _INTEGER.fullmatch(value):
            n = int(value)
            us = n * 1_000_000 if n < _INT_MAX else n * 1000
            t = _EPOCH + timedelta(microseconds=us)
        elif "T" in value:
            t = datetime.fromisoformat(value)
        else:
            t = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        known = _FIRST <= t < _END
    except (ValueError, OverflowError) as exc:
        raise _Invalid("bad_date", f"timestamp {value[:40]!r} is not a time") from exc
    if not known:
        raise _Invalid("bad_date", f"timestamp {value[:40]!r} before 1980-01-06 or after 2099")
    return (t - _EPOCH) // timedelta(microseconds=1)


def _alarm(value: str) -> dict[str, str]:
    """``alarm`` from ``ALARMS`` (Traccar's camelCase names mapped), else ``other`` + code."""
    name = re.sub(r"(?<!^)([A-Z])", r"_\1", value).lower()
    if name in attr.ALARMS:
        return {attr.ALARM: name}
    return {attr.ALARM: "other", attr.ALARM_CODE: value[:MAX_TEXT]}


def _storable_text(value: object) -> TypeGuard[str]:
    """A string PostgreSQL's jsonb accepts (no NUL, no lone surrogate), of bounded length."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_TEXT
        and "\x00" not in value
        and not any("\ud800" <= c <= "\udfff" for c in value)
    )


def _extra(extra: dict[str, Any], key: str, value: float | bool | str) -> None:
    """Keep an unknown parameter within the caps; vocabulary names are not guessed at."""
    if not key or len(key) > MAX_KEY or key in _VOCABULARY or not _storable_text(key):
        return
    if isinstance(value, str) and not _storable_text(value):
        return
    if key in extra or len(extra) < MAX_EXTRA:
        extra[key] = value
