"""H02 binary ``$`` frames: BCD fields at fixed offsets, hemispheres in a flags nibble.

Layout (H02 protocol document, "GPRS agreement" table; Traccar ``decodeBinary``), in
nibbles after the ``$``: device id (10 BCD digits, or 16 of which the first 15 are the
IMEI in the 42-byte variant), hhmmss UTC, ddmmyy, latitude DDMMmmmm, one battery byte,
longitude DDDMMmmmm, a flags nibble (bit 1 fix valid, bit 2 north, bit 3 east), speed
(3 digits, knots), course (3 digits, degrees), then the 32-bit status word. What follows
(user alarm flag, reserve, record number, variant extras) is not decoded.
"""

from __future__ import annotations

from decoders import attributes as attr
from decoders._h02_fields import apply_status, utc_us
from decoders._text_frames import KMH_PER_KNOT, Position, check_range
from decoders.errors import DecodeError

SHORT = 32  # the standard frame
LONG_ID = 42  # the variant with an 8-byte id
_SHORT_ID_NIBBLES = 10
_LONG_ID_NIBBLES = 16
_BODY_NIBBLES = 56 - _SHORT_ID_NIBBLES  # time .. status


def _digits(text: str, what: str) -> int:
    if not text.isdigit():
        raise DecodeError("malformed", f"{what} {text!r} is not BCD")
    return int(text)


def _battery_pct(value: int) -> float | None:
    """The battery byte's scales, as Traccar reads them (levels 1-6, percent, 0xF1-0xF6)."""
    if value == 0:
        return None
    if value <= 3:
        return float((value - 1) * 10)
    if value <= 6:
        return float((value - 1) * 20)
    if value <= 100:
        return float(value)
    if 0xF1 <= value <= 0xF6:
        return float(value - 0xF0)
    return None


def decode(frame: bytes) -> Position:
    """The position in one ``$`` frame; DecodeError for anything that cannot be one."""
    long_id = len(frame) == LONG_ID
    nibbles = frame[1:].hex()
    id_len = _LONG_ID_NIBBLES if long_id else _SHORT_ID_NIBBLES
    if len(nibbles) < id_len + _BODY_NIBBLES:
        raise DecodeError("bad_length", f"{len(frame)} bytes is shorter than a position")
    device_id = nibbles[:15] if long_id else nibbles[:id_len]
    _digits(device_id, "device id")
    b = nibbles[id_len:]
    hh, mi, ss = (_digits(b[i : i + 2], "time") for i in (0, 2, 4))
    dd, mo, yy = (_digits(b[i : i + 2], "date") for i in (6, 8, 10))
    time_us = utc_us(2000 + yy, mo, dd, hh, mi, ss)
    lat = _digits(b[12:14], "latitude") + _minutes(b[14:20]) / 60.0
    battery = int(b[20:22], 16)
    lon = _digits(b[22:25], "longitude") + _minutes(b[25:31]) / 60.0
    flags = int(b[31], 16)
    lat = lat if flags & 0x04 else -lat
    lon = lon if flags & 0x08 else -lon
    check_range(lat, lon)
    speed_knots = _digits(b[32:35], "speed")
    course = float(_digits(b[35:38], "course"))
    pos = Position(
        device_id=device_id,
        time_us=time_us,
        lat=lat,
        lon=lon,
        speed_kmh=speed_knots * KMH_PER_KNOT,
        course_deg=course if course <= 360.0 else float("nan"),
        valid=bool(flags & 0x02),
    )
    pct = _battery_pct(battery)
    if pct is not None:
        pos.attributes[attr.BATTERY_LEVEL_PCT] = pct
    apply_status(pos, int(b[38:46], 16))
    return pos


def _minutes(text: str) -> float:
    value = _digits(text, "minutes") / 10_000.0
    if value >= 60.0:
        raise DecodeError("bad_coordinates", f"{value} minutes of arc")
    return value
