"""GPS103 (TK103 / Coban) lines as a tracker sends them: login, heartbeat, positions.

Per the Coban GPRS protocol: ``##,imei:<imei>,A;`` logs in (the server answers
``LOAD``), ``<imei>;`` is the heartbeat (answered ``ON``), and a position line carries
the device's local date-time to the minute next to the UTC time of day to the
millisecond, coordinates as degrees and minutes with four decimals (about 0.2 m), speed
in knots and course in degrees with two decimals. ``utc_offset`` is the device's time
zone setting, within (-12 h, +12 h] as the decoder folds it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from simulators.errors import EncodeError
from simulators.h02_out import dm_digits

KMH_PER_KNOT = 1.852
LOGIN_REPLY = b"LOAD"
HEARTBEAT_REPLY = b"ON"

__all__ = ["HEARTBEAT_REPLY", "KMH_PER_KNOT", "LOGIN_REPLY", "heartbeat", "login", "position"]


def _imei(imei: str) -> str:
    if not (imei.isascii() and imei.isdigit() and len(imei) <= 20):
        raise EncodeError(f"IMEI {imei!r} must be 1-20 decimal digits")
    return imei


def login(imei: str) -> bytes:
    """The login line a tracker sends first on every connection."""
    return f"##,imei:{_imei(imei)},A;".encode("ascii")


def heartbeat(imei: str) -> bytes:
    """The heartbeat line: the bare IMEI."""
    return f"{_imei(imei)};".encode("ascii")


def _dm(value: float, limit: float, deg_digits: int, hemi: str) -> list[str]:
    digits = dm_digits(value, limit, deg_digits)
    return [f"{digits[:-4]}.{digits[-4:]}", hemi[1] if value < 0 else hemi[0]]


def position(
    imei: str,
    *,
    time: datetime,
    lat: float,
    lon: float,
    speed_kmh: float,
    course_deg: float,
    valid: bool,
    keyword: str = "tracker",
    utc_offset: timedelta = timedelta(0),
) -> bytes:
    """A GPS (``F``) position line with the given keyword (``tracker``, ``help me`` ...)."""
    if time.tzinfo is None:
        raise EncodeError("fix time must be timezone-aware (UTC)")
    if not keyword or any(c in keyword for c in ",;*\r\n") or not keyword.isprintable():
        raise EncodeError(f"keyword {keyword!r} must be printable text without , ; *")
    if not -timedelta(hours=12) < utc_offset <= timedelta(hours=12) or utc_offset % timedelta(
        minutes=1
    ):
        raise EncodeError(f"utc_offset {utc_offset} must be whole minutes in (-12 h, +12 h]")
    if not (math.isfinite(speed_kmh) and speed_kmh >= 0 and math.isfinite(course_deg)):
        raise EncodeError(f"speed {speed_kmh!r} / course {course_deg!r} out of range")
    u = time.astimezone(UTC) + timedelta(microseconds=500)
    u = u.replace(microsecond=u.microsecond // 1000 * 1000)
    local = u + utc_offset
    if not (2000 <= u.year <= 2099 and 2000 <= local.year <= 2099):
        raise EncodeError(f"year {u.year} does not fit the protocol's two digits")
    course = round(course_deg % 360.0, 2)
    fields = [
        f"imei:{_imei(imei)}",
        keyword,
        f"{local:%y%m%d%H%M}",
        "",
        "F",
        f"{u:%H%M%S}.{u.microsecond // 1000:03d}",
        "A" if valid else "V",
        *_dm(lat, 90.0, 2, "NS"),
        *_dm(lon, 180.0, 3, "EW"),
        f"{speed_kmh / KMH_PER_KNOT:.2f}",
        f"{0.0 if course >= 360.0 else course:.2f}",
    ]
    return (",".join(fields) + ";").encode("ascii")
