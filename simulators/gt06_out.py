"""Exact GT06 packets as a Concox tracker sends them, and the acks a server owes.

Layouts follow the GT06 protocol V1.8 (§5.1 login, §5.2 location 0x12, §5.3 status
0x13, §5.4 alarm 0x16) and the JM-VL01 layout for 0x22 (and its 4G twin 0xA0). Times
are UTC truncated to the second; coordinates are written in the protocol's 1/30000
minute, so decoding gives back the input to within 0.3 micro-degrees (3 cm).
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime

from decoders import _gt06_body as body
from decoders import _gt06_frame as frame
from simulators.errors import EncodeError

__all__ = ["ALARM_CODES", "alarm", "heartbeat", "location", "login", "server_ack"]

# The first protocol code of every alarm name the decoder knows.
ALARM_CODES: dict[str, int] = {}
for _code, _name in sorted(body.ALARM_NAMES.items()):
    ALARM_CODES.setdefault(_name, _code)

_GPS = struct.Struct(">6BBIIBH")
_LOCATION_PROTOS = (0x12, 0x22, 0xA0)
_ALARM_PROTOS = (0x16, 0x26)
# A fixed cell: Amsterdam, KPN (MCC 204, MNC 8).
_CELL = struct.pack(">HBH", 204, 8, 0x1A2B) + (0x00C0FE).to_bytes(3, "big")
_CELL_4G = struct.pack(">HBI", 204, 8, 0x1A2B) + (0x00C0FE).to_bytes(8, "big")


def login(imei: str, serial: int) -> bytes:
    """Login (0x01): the IMEI as 8 bytes of BCD with a leading 0 digit."""
    if len(imei) != 15 or not (imei.isascii() and imei.isdigit()):
        raise EncodeError(f"IMEI {imei!r} must be 15 decimal digits")
    return frame.build(0x01, bytes.fromhex("0" + imei), _serial(serial))


def heartbeat(
    serial: int, *, acc: bool = False, voltage_level: int = 4, gsm_signal: int = 4
) -> bytes:
    """Status information (0x13): terminal info, voltage level, GSM signal, alarm/language."""
    if not (0 <= voltage_level <= 6 and 0 <= gsm_signal <= 4):
        raise EncodeError(f"voltage level {voltage_level} (0-6) or GSM {gsm_signal} (0-4)")
    info = 0x40 | (0x02 if acc else 0)  # GPS tracking on
    content = bytes((info, voltage_level, gsm_signal, 0x00, 0x02))  # no alarm, English
    return frame.build(0x13, content, _serial(serial))


def location(
    *,
    time: datetime,
    lat: float,
    lon: float,
    speed_kmh: int,
    course_deg: int,
    satellites: int,
    valid: bool,
    serial: int,
    proto: int = 0x12,
    acc: bool | None = None,
) -> bytes:
    """Location packet 0x12 (GPS + LBS), 0x22 or 0xA0 (GPS + LBS + ACC tail).

    0x12 carries ``acc`` in course/status bits 14-15 (as newer firmware does); 0x22 and
    0xA0 carry it in their ACC byte, and leave the tail out when ``acc`` is None.
    """
    if proto not in _LOCATION_PROTOS:
        raise EncodeError(f"location protocol 0x{proto:02X} not one of 0x12, 0x22, 0xA0")
    in_flags = proto == 0x12 and acc is not None
    gps = _gps(time, lat, lon, speed_kmh, course_deg, satellites, valid, acc if in_flags else None)
    if proto == 0x12:
        return frame.build(proto, gps + _CELL, _serial(serial))
    tail = b"" if acc is None else bytes((int(acc), 0x00, 0x00))  # timed upload, real time
    cell = _CELL_4G if proto == 0xA0 else _CELL
    return frame.build(proto, gps + cell + tail, _serial(serial))


def alarm(
    *,
    time: datetime,
    lat: float,
    lon: float,
    speed_kmh: int,
    course_deg: int,
    satellites: int,
    valid: bool,
    alarm: str,
    serial: int,
    proto: int = 0x16,
    acc: bool = False,
) -> bytes:
    """Alarm packet (0x16 or 0x26): GPS, LBS with its length, terminal info, alarm/language."""
    if proto not in _ALARM_PROTOS:
        raise EncodeError(f"alarm protocol 0x{proto:02X} not one of 0x16, 0x26")
    if alarm not in ALARM_CODES:
        raise EncodeError(f"alarm {alarm!r} has no GT06 code; known: {sorted(ALARM_CODES)}")
    gps = _gps(time, lat, lon, speed_kmh, course_deg, satellites, valid, None)
    info = 0x40 | (0x02 if acc else 0)
    status = bytes((info, 4, 4, ALARM_CODES[alarm], 0x02))
    return frame.build(proto, gps + bytes((len(_CELL) + 1,)) + _CELL + status, _serial(serial))


def server_ack(proto: int, serial: int) -> bytes:
    """The reply a server owes a login, status or alarm packet: ``78 78 05 proto serial``."""
    if not 0 <= proto <= 0xFF:
        raise EncodeError(f"protocol number {proto} is not a byte")
    return frame.build(proto, b"", _serial(serial))


def _serial(serial: int) -> int:
    if not 0 <= serial <= 0xFFFF:
        raise EncodeError(f"serial {serial} outside 0-65535")
    return serial


def _gps(
    time: datetime,
    lat: float,
    lon: float,
    speed_kmh: int,
    course_deg: int,
    satellites: int,
    valid: bool,
    acc: bool | None,
) -> bytes:
    if time.tzinfo is None:
        raise EncodeError("fix time must be timezone-aware (UTC)")
    t = time.astimezone(UTC)
    if not 2000 <= t.year <= 2099:
        raise EncodeError(f"year {t.year} outside 2000-2099 (two digits on the wire)")
    for name, value, limit in (("lat", lat, 90.0), ("lon", lon, 180.0)):
        if not (math.isfinite(value) and -limit <= value <= limit):
            raise EncodeError(f"{name} {value!r} outside ±{limit}")
    if not (0 <= speed_kmh <= 255 and 0 <= course_deg <= 360 and 0 <= satellites <= 15):
        raise EncodeError(f"speed {speed_kmh}, course {course_deg} or satellites {satellites}")
    flags = course_deg | (0x1000 if valid else 0) | (0x0400 if lat >= 0 else 0)
    flags |= 0x0800 if lon < 0 else 0
    if acc is not None:
        flags |= 0x4000 | (0x8000 if acc else 0)
    return _GPS.pack(
        t.year - 2000,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        0xC0 | satellites,  # 12 bytes of GPS information
        round(abs(lat) * body.UNITS_PER_DEGREE),
        round(abs(lon) * body.UNITS_PER_DEGREE),
        speed_kmh,
        flags,
    )
