"""What OsmAnd query strings and SDK JSON share: limits, units, ranges, value checks.

Kept apart from ``osmand`` (framing, query strings) and ``_osmand_json`` so each stays
small; every helper raises ``Invalid`` (a reject code and detail) for a value that
cannot be used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

from decoders import attributes as attr
from decoders.model import valid_device_id

KMH_PER_KNOT = 1.852
KMH_PER_MPS = 3.6
MAX_FIELDS = 200  # parameters in one query string
MAX_EXTRA = 32  # unknown parameters / JSON extras kept per fix
MAX_KEY = 64
MAX_TEXT = 256

_INT_MAX = 2**31 - 1  # Java's Integer.MAX_VALUE: Traccar's seconds/milliseconds boundary
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST, _END = datetime(1980, 1, 6, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)  # GPS epoch
# The numbers "\d+\.?\d*" accepts, written so a digit run matches one way only: that
# form tries every split of the run between its two quantifiers (quadratic: seconds for
# an 8,000-digit query value that fails at its end).
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?")
INTEGER = re.compile(r"[+-]?\d{1,19}")
# A date and time without the ISO "T" (Traccar's yyyy-MM-dd HH:mm:ss; some add .SSS).
_SPACED, _SPACED_MS = "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"
# Physical ranges of optional readings; outside them a reading is unknown.
SPEED_KMH, COURSE, ALTITUDE = (0.0, 2000.0), (0.0, 360.0), (-1000.0, 100_000.0)
HDOP, ODOMETER, PCT = (0.0, 999.0), (0.0, 1e12), (0.0, 100.0)
SATS, POSITIVE = (0, 999), (0.0, math.inf)
_VOCABULARY = frozenset(v for k, v in vars(attr).items() if k.isupper() and isinstance(v, str))
_FLAGS = {"true": True, "1": True, "on": True, "false": False, "0": False, "off": False}

Row = tuple[dict[str, Any], dict[str, Any]]  # FIX_DTYPE column values, attributes


class Invalid(Exception):
    """One frame (or JSON element) cannot be a fix: reject ``code`` with ``detail``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


Elements = list[tuple[Row | Invalid, bytes]]  # per fix: the row or its reject, raw element


def attempt(parse: Callable[[Any], Row], arg: Any, raw: bytes) -> tuple[Row | Invalid, bytes]:
    """``parse(arg)``, or the reject it raised, with the raw bytes of that element."""
    try:
        return parse(arg), raw
    except Invalid as exc:
        return exc, raw


def identity(ident: str | None) -> str:
    """The request's device id; ``Invalid`` when missing or not storable."""
    if ident is None or ident == "":
        raise Invalid("no_identity", "no device id (id, deviceid or device_id)")
    if not valid_device_id(ident):
        raise Invalid("bad_identity", "device id must be 1-64 printable ASCII characters")
    return ident


def parse_number(name: str, value: str) -> float:
    if not NUMBER.fullmatch(value):
        raise Invalid("bad_number", f"{name}={value[:40]!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise Invalid("bad_number", f"{name}={value[:40]!r} is not finite")
    return number


def parse_integer(name: str, value: str) -> int:
    if not INTEGER.fullmatch(value):
        raise Invalid("bad_number", f"{name}={value[:40]!r} is not an integer")
    return int(value)


def parse_flag(name: str, value: str) -> bool:
    """true/false, 1/0 or on/off in any case (trackers send ``ignition=OFF``)."""
    flag = _FLAGS.get(value.lower())
    if flag is None:
        raise Invalid("bad_number", f"{name}={value[:40]!r} is not true/false/1/0/on/off")
    return flag


def finite_float(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def put(
    target: dict[str, Any], name: str, value: float | None, bounds: tuple[float, float]
) -> None:
    """Store ``value`` when known and inside ``bounds``; otherwise leave it unknown."""
    if value is not None and bounds[0] <= value <= bounds[1]:
        target[name] = value


def set_coordinates(cols: dict[str, Any], lat: float, lon: float) -> None:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise Invalid("bad_coordinates", f"lat={lat} lon={lon} out of range")
    cols["lat"], cols["lon"] = lat, lon


def time_us(value: object) -> int:
    """Traccar's timestamp forms: unix seconds or milliseconds, ISO 8601, or
    ``yyyy-MM-dd HH:mm:ss`` (also with ``.SSS``, which Traccar's lenient parse accepted);
    times without an offset are UTC."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Invalid("bad_date", "timestamp must be a string or an integer")
    try:
        if INTEGER.fullmatch(value):
            n = int(value)
            us = n * 1_000_000 if n < _INT_MAX else n * 1000
            t = _EPOCH + timedelta(microseconds=us)
        elif "T" in value:
            t = datetime.fromisoformat(value)
        else:
            t = datetime.strptime(value, _SPACED_MS if "." in value else _SPACED)
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        known = _FIRST <= t < _END
    except (ValueError, OverflowError) as exc:
        raise Invalid("bad_date", f"timestamp {value[:40]!r} is not a time") from exc
    if not known:
        raise Invalid("bad_date", f"timestamp {value[:40]!r} before 1980-01-06 or after 2099")
    return (t - _EPOCH) // timedelta(microseconds=1)


def alarm(value: str) -> dict[str, str]:
    """``alarm`` from ``ALARMS`` (Traccar's camelCase names mapped), else ``other`` + code."""
    name = re.sub(r"(?<!^)([A-Z])", r"_\1", value).lower()
    if name in attr.ALARMS:
        return {attr.ALARM: name}
    return {attr.ALARM: "other", attr.ALARM_CODE: value[:MAX_TEXT]}


def storable_text(value: object) -> TypeGuard[str]:
    """A string PostgreSQL's jsonb accepts (no NUL, no lone surrogate), of bounded length."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_TEXT
        and "\x00" not in value
        and not any("\ud800" <= c <= "\udfff" for c in value)
    )


def put_extra(extra: dict[str, Any], key: str, value: float | bool | str) -> None:
    """Keep an unknown parameter within the caps; vocabulary names are not guessed at."""
    if not key or len(key) > MAX_KEY or key in _VOCABULARY or not storable_text(key):
        return
    if isinstance(value, str) and not storable_text(value):
        return
    if key in extra or len(extra) < MAX_EXTRA:
        extra[key] = value
