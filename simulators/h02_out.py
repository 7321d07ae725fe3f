"""H02 frames as a Sinotrack tracker sends them: text ``*HQ,...,V1,...#`` and binary ``$``.

Per the H02 protocol document: UTC time to the second, coordinates as degrees and
minutes with four decimals (about 0.2 m), speed in knots (two decimals in text, whole
knots in binary), course in whole degrees, a 32-bit status word in negative logic
(``0xFFFFFBFF``: no alarm, ACC off). The binary frame is the standard 32-byte record
with a 10-digit BCD id and no battery reading.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from simulators.errors import EncodeError

KMH_PER_KNOT = 1.852
NO_ALARM_ACC_OFF = 0xFFFFFBFF
_MINUTE_SCALE = 10_000  # four decimals of arc minutes

__all__ = ["KMH_PER_KNOT", "NO_ALARM_ACC_OFF", "binary_position", "dm_digits", "position"]


def _utc_s(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise EncodeError("fix time must be timezone-aware (UTC)")
    u = (t.astimezone(UTC) + timedelta(microseconds=500_000)).replace(microsecond=0)
    if not 2000 <= u.year <= 2099:
        raise EncodeError(f"year {u.year} does not fit the protocol's two digits")
    return u


def dm_digits(value: float, limit: float, deg_digits: int) -> str:
    """``DDMMmmmm`` / ``DDDMMmmmm`` digits of ``|value|`` (minutes times 10,000).

    GPS103 writes its coordinates to the same four decimals of a minute, so it uses this too.
    """
    if not (math.isfinite(value) and -limit <= value <= limit):
        raise EncodeError(f"coordinate {value!r} outside ±{limit}")
    deg, rest = divmod(round(abs(value) * 60 * _MINUTE_SCALE), 60 * _MINUTE_SCALE)
    return f"{deg:0{deg_digits}d}{rest:06d}"


def _knots(speed_kmh: float) -> float:
    if not (math.isfinite(speed_kmh) and speed_kmh >= 0):
        raise EncodeError(f"speed_kmh must be a finite non-negative number, not {speed_kmh!r}")
    return speed_kmh / KMH_PER_KNOT


def _course(course_deg: float) -> int:
    if not math.isfinite(course_deg):
        raise EncodeError(f"course_deg must be finite, not {course_deg!r}")
    return round(course_deg) % 360


def _status(status: int) -> int:
    if not 0 <= status <= 0xFFFFFFFF:
        raise EncodeError(f"status {status!r} is not a 32-bit word")
    return status


def position(
    device_id: str,
    *,
    time: datetime,
    lat: float,
    lon: float,
    speed_kmh: float,
    course_deg: float,
    valid: bool,
    status: int = NO_ALARM_ACC_OFF,
) -> bytes:
    """A text V1 frame."""
    if not (device_id.isascii() and device_id.isdigit() and len(device_id) <= 20):
        raise EncodeError(f"device id {device_id!r} must be 1-20 decimal digits")
    u = _utc_s(time)
    knots = _knots(speed_kmh)
    if knots >= 1000:
        raise EncodeError(f"{knots:.2f} knots does not fit 000.00-999.99")
    la, lo = dm_digits(lat, 90.0, 2), dm_digits(lon, 180.0, 3)
    fields = [
        "*HQ",
        device_id,
        "V1",
        f"{u:%H%M%S}",
        "A" if valid else "V",
        f"{la[:-4]}.{la[-4:]}",
        "S" if lat < 0 else "N",
        f"{lo[:-4]}.{lo[-4:]}",
        "W" if lon < 0 else "E",
        f"{knots:06.2f}",
        f"{_course(course_deg):03d}",
        f"{u:%d%m%y}",
        f"{_status(status):08X}",
    ]
    return (",".join(fields) + "#").encode("ascii")


def binary_position(
    device_id: str,
    *,
    time: datetime,
    lat: float,
    lon: float,
    speed_kmh: float,
    course_deg: float,
    valid: bool,
    status: int = NO_ALARM_ACC_OFF,
) -> bytes:
    """A 32-byte binary ``$`` record (``device_id`` must be 10 digits: 5 BCD bytes)."""
    if not (device_id.isascii() and device_id.isdigit() and len(device_id) == 10):
        raise EncodeError(f"device id {device_id!r} must be 10 decimal digits")
    u = _utc_s(time)
    knots = round(_knots(speed_kmh))
    if knots > 999:
        raise EncodeError(f"{knots} knots does not fit three BCD digits")
    flags = (0x02 if valid else 0) | (0x04 if lat >= 0 else 0) | (0x08 if lon >= 0 else 0)
    la, lo = dm_digits(lat, 90.0, 2), dm_digits(lon, 180.0, 3)
    digits = (
        f"{device_id}{u:%H%M%S}{u:%d%m%y}{la}00{lo}{flags:X}"
        f"{knots:03d}{_course(course_deg):03d}{_status(status):08X}FF0000"
    )
    return b"$" + bytes.fromhex(digits)
