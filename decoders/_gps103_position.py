"""GPS103 position lines, field by field (Coban GPRS protocol section 4, Traccar patterns)."""

from __future__ import annotations

import calendar
import math
import re
from typing import Any

from decoders import attributes as attr
from decoders._text_frames import KMH_PER_KNOT, Position, check_range
from decoders.errors import DecodeError

_MINUTES_PER_DAY = 1440

_LOCAL = re.compile(r"(\d\d)/?(\d\d)/?(\d\d) ?(\d\d):?(\d\d)(?:\d\d)?")
_UTC = re.compile(r"(\d\d)(\d\d)(\d\d)(?:\.(\d{1,6}))?")
_DDMM = re.compile(r"(\d+)(\d\d\.\d+)")
_UNSIGNED = re.compile(r"\d+(?:\.\d*)?")
_SIGNED = re.compile(r"-?\d+(?:\.\d*)?")
_DECIMAL_DEG = re.compile(r"-?\d+\.\d+")

ALARMS = {
    "help me": "sos",
    "low battery": "low_battery",
    "move": "movement",
    "speed": "overspeed",
    "stockade": "geofence",
    "ac alarm": "ac_alarm",
    "door alarm": "door",
    "accident alarm": "accident",
    "sensor alarm": "vibration",
    "acc on": "acc_on",
    "acc off": "acc_off",
}
_IGNITION = {"acc on": 1, "acc off": 0}


def regular(fields: list[str]) -> Position:
    """``imei:<imei>,<keyword>,<local time>,<phone>,F,<utc>,A|V,<lat>,N|S,<lon>,E|W,...``."""
    if len(fields) < 10 or fields[4] != "F" or fields[6] not in ("A", "V"):
        raise DecodeError("malformed", "not imei:,keyword,time,phone,F,utc,A|V,lat,..,lon")
    time_us = _time_us(fields[2], fields[5])
    lat, lon, i = _coordinates(fields, 7)
    pos = Position(time_us=time_us, lat=lat, lon=lon, valid=fields[6] == "A")
    rest = [*fields[i:], "", "", "", ""]
    pos.speed_kmh = _number(rest[0], _UNSIGNED, "speed") * KMH_PER_KNOT
    course = _number(rest[1], _UNSIGNED, "course")
    pos.course_deg = course if course <= 360.0 else math.nan
    pos.altitude_m = _number(rest[2], _SIGNED, "altitude")
    if rest[3] in ("0", "1"):
        pos.ignition = int(rest[3])
    keyword = fields[1]
    pos.ignition = _IGNITION.get(keyword, pos.ignition)
    pos.attributes.update(alarm_attributes(keyword))
    return pos


def alternative(fields: list[str]) -> Position:
    """``imei:<imei>,<name>,<event>,<sensor>,<volts>,hhmmss,ddmmyy,rssi,gps,lat,lon,...,*``."""
    if len(fields) < 19 or not all(
        re.fullmatch(rx, fields[i])
        for i, rx in ((5, r"\d{6}"), (6, r"\d{6}"), (8, r"\d"), (11, r"\d+"), (12, r"\d+"))
    ):
        raise DecodeError("malformed", "not the alternative GPS103 format")
    t, d = fields[5], fields[6]
    time_us = _utc_us(2000 + int(d[4:]), int(d[2:4]), int(d[:2]), int(t[:2]), int(t[2:4]))
    time_us += _seconds_us(t[4:], "")
    if not (_DECIMAL_DEG.fullmatch(fields[9]) and _DECIMAL_DEG.fullmatch(fields[10])):
        raise DecodeError("malformed", "latitude/longitude are not decimal degrees")
    lat, lon = float(fields[9]), float(fields[10])
    check_range(lat, lon)
    pos = Position(time_us=time_us, lat=lat, lon=lon, valid=int(fields[8]) > 0)
    pos.speed_kmh = float(fields[11])
    course = float(fields[12])
    pos.course_deg = course if course <= 360.0 else math.nan
    pos.altitude_m = _number(fields[13], _SIGNED, "altitude")
    pos.hdop = _number(fields[14], _UNSIGNED, "hdop")
    if fields[15].isdigit() and len(fields[15]) <= 3:
        pos.satellites = int(fields[15])
    if fields[16] in ("0", "1"):
        pos.ignition = int(fields[16])
    return pos


def alarm_attributes(keyword: str) -> dict[str, Any]:
    """``alarm`` (and ``alarm_code``) for a keyword; empty for routine ones (``tracker``)."""
    if keyword in ALARMS:
        return {attr.ALARM: ALARMS[keyword]}
    if keyword.endswith("alarm") or keyword == "DTC" or keyword.startswith(("oil", "T:")):
        return {attr.ALARM: "other", attr.ALARM_CODE: keyword[:64]}
    return {}


def _time_us(local: str, utc: str) -> int:
    """UTC date-time from the local date-time and the UTC time of day (Traccar's rule)."""
    lm = _LOCAL.fullmatch(local)
    if lm is None:
        raise DecodeError("bad_date", f"local time {local[:32]!r} is not yymmddHHMM")
    um = _UTC.fullmatch(utc)
    if um is None:
        raise DecodeError("no_time", f"{utc[:32]!r} is not a UTC hhmmss time of day")
    yy, mo, dd, lh, lmin = (int(g) for g in lm.groups())
    uh, umin = int(um.group(1)), int(um.group(2))
    if not (lh < 24 and lmin < 60 and uh < 24 and umin < 60):
        raise DecodeError("bad_time", f"{local!r} / {utc!r} is not a time of day")
    local_min = lh * 60 + lmin
    delta = local_min - (uh * 60 + umin)
    if delta <= -_MINUTES_PER_DAY // 2:
        delta += _MINUTES_PER_DAY
    elif delta > _MINUTES_PER_DAY // 2:
        delta -= _MINUTES_PER_DAY
    midnight = _utc_us(2000 + yy, mo, dd, 0, 0)
    return midnight + (local_min - delta) * 60_000_000 + _seconds_us(um.group(3), um.group(4))


def _seconds_us(seconds: str, fraction: str | None) -> int:
    if int(seconds) >= 60:
        raise DecodeError("bad_time", f"{seconds} seconds")
    return int(seconds) * 1_000_000 + (int(fraction.ljust(6, "0")) if fraction else 0)


def _utc_us(year: int, month: int, day: int, hour: int, minute: int) -> int:
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise DecodeError("bad_date", f"{year:04d}-{month:02d}-{day:02d} is not a date")
    if not (hour < 24 and minute < 60):
        raise DecodeError("bad_time", f"{hour:02d}:{minute:02d} is not a time of day")
    days = calendar.timegm((year, month, day, 0, 0, 0)) // 86400
    return ((days * 24 + hour) * 60 + minute) * 60_000_000


def _coordinates(fields: list[str], i: int) -> tuple[float, float, int]:
    """Latitude, longitude and the index after them; hemispheres before or after."""
    lat_pre = fields[i] if fields[i] in ("N", "S") else ""
    i += bool(lat_pre)
    lat_text, i = _at(fields, i), i + 1
    lat_post = _at(fields, i) if _at(fields, i) in ("N", "S") else ""
    i += bool(lat_post)
    lon_pre = _at(fields, i) if _at(fields, i) in ("E", "W") else ""
    i += bool(lon_pre)
    lon_text, i = _at(fields, i), i + 1
    if not lon_pre and _at(fields, i) in ("E", "W", ""):
        lon_post, i = _at(fields, i), i + 1
    else:
        lon_post = ""
    lat = _ddmm(lat_text, (lat_pre or lat_post) == "S")
    lon = _ddmm(lon_text, (lon_pre or lon_post) == "W")
    check_range(lat, lon)
    return lat, lon, i


def _at(fields: list[str], i: int) -> str:
    return fields[i] if i < len(fields) else ""


def _ddmm(text: str, negative: bool) -> float:
    m = _DDMM.fullmatch(text)
    if m is None:
        raise DecodeError("malformed", f"coordinate {text[:32]!r} is not DDMM.MMMM")
    minutes = float(m.group(2))
    if minutes >= 60.0:
        raise DecodeError("bad_coordinates", f"{minutes} minutes of arc")
    value = int(m.group(1)) + minutes / 60.0
    return -value if negative else value


def _number(text: str, rx: re.Pattern[str], what: str) -> float:
    """An optional numeric field: empty is unknown (NaN)."""
    if not text:
        return math.nan
    if not rx.fullmatch(text):
        raise DecodeError("malformed", f"{what} {text[:32]!r} is not a number")
    return float(text)
