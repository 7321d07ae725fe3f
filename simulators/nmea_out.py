"""Exact NMEA 0183 sentences (and the Menara JSON fix) as a tracker would send them.

Times are UTC, rounded to the centisecond NMEA carries (date and time from the same
rounded instant, so 23:59:59.996 becomes 00:00:00.00 of the next day). Coordinates carry
5 decimals of arc minutes (about 2 cm; PUBX carries 6), so decoding gives back the input
to well under 0.1 m. Every sentence ends with ``*hh\\r\\n``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.errors import EncodeError

KMH_PER_KNOT = 1.852

__all__ = [
    "KMH_PER_KNOT",
    "checksum",
    "gga",
    "json_fix",
    "pcpti",
    "pgid",
    "pubx00",
    "rmc",
    "sentence",
]


def checksum(body: str) -> str:
    """The two hex digits of the XOR of every character between ``$`` and ``*``."""
    x = 0
    for b in body.encode("ascii"):
        x ^= b
    return f"{x:02X}"


def sentence(body: str) -> bytes:
    """``$<body>*<checksum>\\r\\n`` as ASCII bytes."""
    if any(c in body for c in "$*\r\n") or not body.isascii():
        raise EncodeError(f"sentence body {body!r} has a reserved or non-ASCII character")
    return f"${body}*{checksum(body)}\r\n".encode("ascii")


def _utc_cs(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise EncodeError("fix time must be timezone-aware (UTC)")
    t = t.astimezone(UTC) + timedelta(microseconds=5000)
    return t.replace(microsecond=t.microsecond // 10000 * 10000)


def _hms(t: datetime) -> str:
    return f"{t:%H%M%S}.{t.microsecond // 10000:02d}"


def _coord(value: float, limit: float, deg_digits: int, hemi: str, decimals: int) -> list[str]:
    if not (math.isfinite(value) and -limit <= value <= limit):
        raise EncodeError(f"coordinate {value!r} outside ±{limit}")
    scale = 60 * 10**decimals
    deg, frac = divmod(round(abs(value) * scale), scale)
    minutes, rest = divmod(frac, 10**decimals)
    text = f"{deg:0{deg_digits}d}{minutes:02d}.{rest:0{decimals}d}"
    return [text, hemi[1] if value < 0 else hemi[0]]


def _latlon(lat: float, lon: float, decimals: int = 5) -> list[str]:
    return _coord(lat, 90.0, 2, "NS", decimals) + _coord(lon, 180.0, 3, "EW", decimals)


def _course(course_deg: float) -> str:
    c = round(course_deg % 360.0, 2)
    return f"{0.0 if c >= 360.0 else c:.2f}"


def _talker(talker: str) -> str:
    if len(talker) != 2 or not (talker.isascii() and talker.isalpha() and talker.isupper()):
        raise EncodeError(f"talker {talker!r} must be two upper-case letters")
    return talker


def _nonneg(name: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise EncodeError(f"{name} must be a finite non-negative number, not {value!r}")
    return value


def rmc(
    t: datetime,
    lat: float,
    lon: float,
    speed_kmh: float,
    course_deg: float,
    *,
    valid: bool = True,
    talker: str = "GP",
) -> bytes:
    """Recommended minimum fix (NMEA 2.3, with mode indicator): time, date, position, motion."""
    u = _utc_cs(t)
    knots = _nonneg("speed_kmh", speed_kmh) / KMH_PER_KNOT
    fields = [
        f"{_talker(talker)}RMC",
        _hms(u),
        "A" if valid else "V",
        *_latlon(lat, lon),
        f"{knots:.3f}",
        _course(course_deg),
        f"{u:%d%m%y}",
        "",
        "",
        "A" if valid else "N",
    ]
    return sentence(",".join(fields))


def gga(
    t: datetime,
    lat: float,
    lon: float,
    *,
    satellites: int,
    hdop: float,
    altitude_m: float,
    quality: int = 1,
    talker: str = "GP",
) -> bytes:
    """Fix data: time of day, position, quality, satellites used, HDOP, altitude (MSL)."""
    if not 0 <= satellites <= 99 or not 0 <= quality <= 8:
        raise EncodeError(f"satellites {satellites} or quality {quality} out of range")
    if not math.isfinite(altitude_m):
        raise EncodeError(f"altitude_m must be finite, not {altitude_m!r}")
    fields = [
        f"{_talker(talker)}GGA",
        _hms(_utc_cs(t)),
        *_latlon(lat, lon),
        str(quality),
        f"{satellites:02d}",
        f"{_nonneg('hdop', hdop):.2f}",
        f"{altitude_m:.1f}",
        "M",
        "",
        "M",
        "",
        "",
    ]
    return sentence(",".join(fields))


def pubx00(
    t: datetime,
    lat: float,
    lon: float,
    *,
    altitude_m: float,
    speed_kmh: float,
    course_deg: float,
    satellites: int,
    hdop: float,
    vdop: float = 1.5,
    tdop: float = 1.0,
    h_acc_m: float = 2.5,
    v_acc_m: float = 4.0,
    v_vel_ms: float = 0.0,
    nav_stat: str = "G3",
) -> bytes:
    """u-blox PUBX,00 position: like GGA+RMC in one line, speed in km/h, no date."""
    if nav_stat not in ("NF", "DR", "G2", "G3", "D2", "D3", "RK", "TT"):
        raise EncodeError(f"nav_stat {nav_stat!r} is not a u-blox navigation status")
    if not 0 <= satellites <= 99:
        raise EncodeError(f"satellites {satellites} out of range")
    for name, v in (("altitude_m", altitude_m), ("v_vel_ms", v_vel_ms)):
        if not math.isfinite(v):
            raise EncodeError(f"{name} must be finite, not {v!r}")
    fields = [
        "PUBX",
        "00",
        _hms(_utc_cs(t)),
        *_latlon(lat, lon, decimals=6),
        f"{altitude_m:.3f}",
        nav_stat,
        f"{_nonneg('h_acc_m', h_acc_m):.1f}",
        f"{_nonneg('v_acc_m', v_acc_m):.1f}",
        f"{_nonneg('speed_kmh', speed_kmh):.3f}",
        _course(course_deg),
        f"{v_vel_ms:.3f}",
        "",
        f"{_nonneg('hdop', hdop):.2f}",
        f"{_nonneg('vdop', vdop):.2f}",
        f"{_nonneg('tdop', tdop):.2f}",
        str(satellites),
        "0",
        "0",
    ]
    return sentence(",".join(fields))


def _device(device_id: str) -> str:
    if not device_id or "," in device_id or not device_id.isprintable():
        raise EncodeError(f"device id {device_id!r} must be non-empty printable text without ','")
    return device_id


def pgid(device_id: str) -> bytes:
    """T55 identity line a device sends first on every connection: ``$PGID,<id>*hh``."""
    return sentence(f"PGID,{_device(device_id)}")


def pcpti(device_id: str, t: datetime | None = None) -> bytes:
    """CradlePoint-style T55 identity line ``$PCPTI,<id>,hhmmss,hhmmss.s,00``.

    Servers read only the id; the time fields are left empty when ``t`` is None.
    """
    stamp = ["", ""]
    if t is not None:
        u = _utc_cs(t)
        stamp = [f"{u:%H%M%S}", f"{u:%H%M%S}.{u.microsecond // 100000}"]
    return sentence(",".join(["PCPTI", _device(device_id), *stamp, "00"]))


def json_fix(
    t: datetime,
    lat: float,
    lon: float,
    *,
    speed_kmh: float | None,
    course_deg: float | None,
    altitude_m: float | None = None,
    satellites: int | None = None,
    hdop: float | None = None,
    valid: bool = True,
) -> dict[str, Any]:
    """The Menara MQTT JSON fix (topic ``<prefix>/<device>/json``); None means unknown."""
    if t.tzinfo is None:
        raise EncodeError("fix time must be timezone-aware (UTC)")
    _latlon(lat, lon)
    return {
        "fix_time": t.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "lat": lat,
        "lon": lon,
        "speed_kmh": speed_kmh,
        "course_deg": course_deg,
        "altitude_m": altitude_m,
        "satellites": satellites,
        "hdop": hdop,
        "valid": valid,
    }
