"""GT06 packet contents: the GPS block, the LBS block, terminal information, alarms.

Field layouts follow the GT06 protocol V1.8 (§5.2 location packet 0x12, §5.3 status
0x13, §5.4 alarm 0x16) and, for the newer packets (0x11, 0x1E, 0x22, 0x26, 0x27, 0x34,
0x37, 0x70, 0xA0, the extended 0x21 and 0x32), the JM-VL01 / GK310 / X1 documents as
Traccar's ``Gt06ProtocolDecoder`` reads them. Big endian unless a field says otherwise.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any, NamedTuple

from decoders.attributes import (
    ACCURACY_M,
    ALARM,
    ALARM_CODE,
    BATTERY_VOLTAGE_V,
    CELL,
    CHARGING,
    EVENT,
    EXTERNAL_VOLTAGE_V,
    GSM_SIGNAL,
    STATUS,
)

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_GPS = struct.Struct(">6BBIIBH")  # date-time, info, lat, lon, speed, course/status
GPS_SIZE = _GPS.size  # 18
UNITS_PER_DEGREE = 30_000 * 60  # lat/lon are 1/30000 minute (§5.2.1.5)
_US_PER_DAY = 86_400_000_000
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# Alarm/language byte 1 (§5.4.1.9 and the JM-VL01 alarm table). 0x0E/0x0F are the
# *external* (vehicle) supply running low; 0x19 is the tracker's own battery.
ALARM_NAMES: dict[int, str] = {
    0x01: "sos",
    0x02: "power_cut",
    0x03: "vibration",
    0x04: "geofence_enter",
    0x05: "geofence_exit",
    0x06: "overspeed",
    0x09: "movement",
    0x0E: "low_power",
    0x0F: "low_power",
    0x13: "tampering",
    0x14: "door",
    0x19: "low_battery",
    0x23: "fall_down",
    0x2C: "accident",
    0xFE: "acc_on",
    0xFF: "acc_off",
}
# Terminal information bits 3-5 (§5.3.1.1); 6 and 7 as Traccar reads newer models.
STATUS_ALARMS: dict[int, str] = {
    1: "vibration",
    2: "power_cut",
    3: "low_battery",
    4: "sos",
    6: "geofence",
    7: "tampering",
}
VOLTAGE_LEVEL = "voltage_level"  # GT06 0 (no power) .. 6 (very high), no volt scale
REUPLOAD = "reupload"  # 0x22 'GPS real-time re-upload': True for a stored, late fix


class Bad(Exception):
    """A frame whose content cannot be true; ``code`` is the reject code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class Gps(NamedTuple):
    """The 18-byte GPS block, decoded."""

    time_us: int
    lat: float
    lon: float
    speed_kmh: float
    course_deg: float
    satellites: int
    valid: bool
    ignition: int  # -1 unknown
    empty: bool  # no coordinates at all: an invalid fix at exactly 0/0
    altitude_m: float = math.nan
    hdop: float = math.nan


def need(body: bytes, end: int) -> None:
    """Raise ``bad_length`` unless ``body`` holds at least ``end`` bytes."""
    if len(body) < end:
        raise Bad("bad_length", f"content is {len(body)} bytes, needs {end}")


def time_us(yy: int, mo: int, dd: int, hh: int, mi: int, ss: int) -> int:
    """Microseconds since 1970 of a UTC date-time with a 2-digit year (20YY)."""
    y = 2000 + yy
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if not (
        1 <= mo <= 12
        and 1 <= dd <= _MONTH_DAYS[mo - 1] + (mo == 2 and leap)
        and hh < 24
        and mi < 60
        and ss < 60
    ):
        raise Bad("bad_date", f"{y:04d}-{mo:02d}-{dd:02d} {hh:02d}:{mi:02d}:{ss:02d}")
    # days from civil (H. Hinnant), for years >= 2000
    yc = y - (mo <= 2)
    era, yoe = divmod(yc, 400)
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + dd - 1
    days = era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468
    return days * _US_PER_DAY + (hh * 3600 + mi * 60 + ss) * 1_000_000


def gps(body: bytes, off: int) -> Gps:
    """The GPS block at ``off``: date-time (UTC), satellites, lat, lon, speed, course/status.

    Course/status (§5.2.1.7): bit 12 GPS positioned, bit 11 west longitude, bit 10 north
    latitude, bits 0-9 course; bit 13 (differential) is not stored. Bit 14 set means
    bit 15 carries ACC (Traccar; the V1.8 document keeps both 0).
    """
    need(body, off + GPS_SIZE)
    yy, mo, dd, hh, mi, ss, info, lat_raw, lon_raw, speed, flags = _GPS.unpack_from(body, off)
    return fields(time_us(yy, mo, dd, hh, mi, ss), info & 0x0F, lat_raw, lon_raw, speed, flags)


def fields(t: int, sats: int, lat_raw: int, lon_raw: int, speed: int, flags: int) -> Gps:
    """A ``Gps`` from raw coordinates (1/30000 minute) and the course/status word."""
    lat, lon = lat_raw / UNITS_PER_DEGREE, lon_raw / UNITS_PER_DEGREE
    if lat > 90.0 or lon > 180.0:
        raise Bad("bad_coordinates", f"latitude {lat} or longitude {lon} out of range")
    if not flags & 0x0400:
        lat = -lat
    if flags & 0x0800:
        lon = -lon
    course = flags & 0x03FF
    valid = bool(flags & 0x1000)
    return Gps(
        time_us=t,
        lat=lat,
        lon=lon,
        speed_kmh=float(speed),
        course_deg=float(course) if course <= 360 else float("nan"),
        satellites=sats,
        valid=valid,
        ignition=(flags >> 15) & 1 if flags & 0x4000 else -1,
        empty=not valid and lat_raw == 0 and lon_raw == 0,
    )


def lbs(
    body: bytes, off: int, *, wide: bool = False, cid4: bool = False
) -> tuple[dict[str, int], int]:
    """MCC, MNC, LAC, cell id at ``off`` and the offset after them.

    MCC bit 15 set means a 2-byte MNC (Traccar). ``wide`` is the 4G layout of 0xA0:
    4-byte LAC and 8-byte cell id; ``cid4`` that of 0x11: 2-byte MNC, 4-byte cell id.
    """
    need(body, off + 3)
    mcc = _U16.unpack_from(body, off)[0]
    off += 2
    if mcc & 0x8000 or cid4:
        mnc = _U16.unpack_from(body, off)[0]
        off += 2
    else:
        mnc = body[off]
        off += 1
    if wide:
        need(body, off + 12)
        lac = _U32.unpack_from(body, off)[0]
        cid = int.from_bytes(body[off + 4 : off + 12], "big")
        off += 12
    elif cid4:
        need(body, off + 6)
        lac, cid = _U16.unpack_from(body, off)[0], _U32.unpack_from(body, off + 2)[0]
        off += 6
    else:
        need(body, off + 5)
        lac = _U16.unpack_from(body, off)[0]
        cid = int.from_bytes(body[off + 2 : off + 5], "big")
        off += 5
    return {"mcc": mcc & 0x7FFF, "mnc": mnc, "lac": lac, "cid": cid}, off


def status_tail(body: bytes, off: int, attrs: dict[str, Any]) -> int:
    """Terminal information, voltage level, GSM signal, alarm (§5.4.1.6-9); -> ignition.

    The alarm byte names the alarm; when it says 'normal' (0) the alarm bits of the
    terminal information may still report one.
    """
    need(body, off + 4)
    info, level, gsm, code = body[off], body[off + 1], body[off + 2], body[off + 3]
    attrs[STATUS] = info
    attrs[CHARGING] = bool(info & 0x04)
    attrs[VOLTAGE_LEVEL] = level
    attrs[GSM_SIGNAL] = gsm
    if code:
        name = ALARM_NAMES.get(code, "other")
        attrs[ALARM] = name
        if name == "other":
            attrs[ALARM_CODE] = code
    elif (info >> 3) & 0x07 in STATUS_ALARMS:
        attrs[ALARM] = STATUS_ALARMS[(info >> 3) & 0x07]
    return (info >> 1) & 1


def acc_tail(body: bytes, off: int, attrs: dict[str, Any], *, acc: bool) -> tuple[int, float]:
    """ACC, upload mode, re-upload flag (if ``acc``) then a 4-byte mileage if exactly that
    remains (Traccar); -> ignition, odometer metres.

    Absent fields leave ignition -1 and odometer NaN: older firmware ends after the LBS.
    """
    ignition, odometer = -1, float("nan")
    rest = len(body) - off
    if acc and rest >= 3:
        ignition = 1 if body[off] else 0
        attrs[EVENT] = body[off + 1]
        attrs[REUPLOAD] = bool(body[off + 2])
        off, rest = off + 3, rest - 3
    if rest == 4:
        odometer = float(_U32.unpack_from(body, off)[0])
    return ignition, odometer


def modules(body: bytes, off: int, attrs: dict[str, Any]) -> float:
    """0x37 trailing modules (2-byte id, 1-byte length, value); -> odometer metres.

    0x0027 external voltage (1/100 V), 0x002E mileage (m), 0x003B accuracy (1/100 m).
    """
    odometer = float("nan")
    while off + 3 <= len(body):
        mod, n = _U16.unpack_from(body, off)[0], body[off + 2]
        off += 3
        need(body, off + n)
        value = int.from_bytes(body[off : off + n], "big")
        if mod == 0x0027 and n == 2:
            attrs[EXTERNAL_VOLTAGE_V] = value / 100
        elif mod == 0x002E and n == 4:
            odometer = float(value)
        elif mod == 0x003B and n == 2:
            attrs[ACCURACY_M] = value / 100
        off += n
    return odometer


def cell_attr(cell: dict[str, int], attrs: dict[str, Any]) -> None:
    """Keep a cell only when it names one (all-zero LBS means 'no cell')."""
    if cell["mcc"] or cell["lac"] or cell["cid"]:
        attrs[CELL] = cell


def vxt01_tail(body: bytes, off: int, attrs: dict[str, Any]) -> int:
    """0x12 of VXT01-like models (5 bytes after the LBS, Traccar): terminal information,
    external voltage (1/100 V), GSM signal, alarm extension; -> ignition."""
    need(body, off + 5)
    info = body[off]
    attrs[STATUS] = info
    attrs[CHARGING] = bool(info & 0x04)
    attrs[EXTERNAL_VOLTAGE_V] = _U16.unpack_from(body, off + 1)[0] / 100
    attrs[GSM_SIGNAL] = body[off + 3]
    return (info >> 1) & 1


X1_FIXED = 51  # 0x34 content before the analog inputs


def x1(body: bytes, attrs: dict[str, Any]) -> tuple[Gps, float]:
    """X1 GPS packet 0x34 (Traccar ``MSG_X1_GPS``); -> GPS block, odometer metres.

    Data/alarm word (4), GPS block, terminal info (2), mileage (4), MCC (2), MNC (1),
    LAC (2), cell id (4), driver id (4), two voltages (1/100 V, 2 each), port info (4:
    bits 20-23 count the analog inputs), inputs, outputs, analog inputs (2 each). The
    content must be exactly that long: the same number on SL4X models is an LBS packet.
    Traccar calls the first voltage 'battery' and the second 'power', but real captures
    read 12.80/3.99 and 14.28/4.19 V: the vehicle supply comes first, the cell second.
    """
    need(body, X1_FIXED)
    n_adc = (_U32.unpack_from(body, 45)[0] >> 20) & 0x0F
    if len(body) != X1_FIXED + 2 * n_adc:
        raise Bad("bad_length", f"X1 content is {len(body)} bytes, needs {X1_FIXED + 2 * n_adc}")
    g = gps(body, 4)
    odometer = float(_U32.unpack_from(body, 24)[0])
    mcc, mnc, lac, cid = struct.unpack_from(">HBHI", body, 28)
    cell_attr({"mcc": mcc, "mnc": mnc, "lac": lac, "cid": cid}, attrs)
    attrs[EXTERNAL_VOLTAGE_V] = _U16.unpack_from(body, 41)[0] / 100
    attrs[BATTERY_VOLTAGE_V] = _U16.unpack_from(body, 43)[0] / 100
    return g, odometer


_MODULE_GPS = struct.Struct(">IBhIIBH")  # unix time, satellites, altitude, lat, lon, speed, flags
_MODULAR_EVENTS = {0x11: "low_battery", 0x12: "low_power", 0x13: "power_cut", 0x14: "tampering"}
_EPOCH_2000_US = 946_684_800_000_000
_LIMIT_US = 4_102_444_800_000_000  # 2100-01-01


def modular(body: bytes, attrs: dict[str, Any]) -> tuple[Gps | None, float]:
    """Modular packet 0x70 (Traccar ``MSG_GPS_MODULAR``): modules of 2-byte type, 2-byte
    length, value; -> GPS (module 0x33) or None, odometer metres (module 0x2E).

    Also 0x11 cell (MCC, MNC, LAC 2 each, cell id 3, signal), 0x18 battery (1/100 V),
    0x28 HDOP (1/10), 0x2B event (its alarms). Other modules are skipped by length.
    The mileage is big endian like every other field (and the 0x37 mileage module):
    Traccar reads it little endian, which makes one device's two captures three weeks
    apart 3,253,731,328 then 1,576,140,800 m; big endian they are 61,633 then 62,045 m.
    """
    g: Gps | None = None
    odometer, hdop = math.nan, math.nan
    off = 0
    while off + 4 <= len(body):
        mod, n = _U16.unpack_from(body, off)[0], _U16.unpack_from(body, off + 2)[0]
        off += 4
        need(body, off + n)
        v = body[off : off + n]
        if mod == 0x33 and n == _MODULE_GPS.size:
            t_s, sats, alt, lat_raw, lon_raw, speed, flags = _MODULE_GPS.unpack(v)
            if lat_raw or lon_raw or flags & 0x1000:
                t = t_s * 1_000_000
                if not _EPOCH_2000_US <= t < _LIMIT_US:
                    raise Bad("bad_date", f"module 0x33 time {t_s}")
                g = fields(t, sats, lat_raw, lon_raw, speed, flags)._replace(altitude_m=alt)
        elif mod == 0x11 and n == 10:
            mcc, mnc, lac = struct.unpack_from(">HHH", v)
            cell_attr(
                {"mcc": mcc, "mnc": mnc, "lac": lac, "cid": int.from_bytes(v[6:9], "big")}, attrs
            )
        elif mod == 0x18 and n == 2:
            attrs[BATTERY_VOLTAGE_V] = _U16.unpack(v)[0] / 100
        elif mod == 0x28 and n == 1:
            hdop = v[0] / 10
        elif mod == 0x2B and n == 1:
            attrs[EVENT] = v[0]
            if v[0] in _MODULAR_EVENTS:
                attrs[ALARM] = _MODULAR_EVENTS[v[0]]
        elif mod == 0x2E and n == 4:
            odometer = float(_U32.unpack(v)[0])
        off += n
    if g is not None and not math.isnan(hdop):
        g = g._replace(hdop=hdop)
    return g, odometer


_WHERE = re.compile(
    r"Current position!Lat:([NS])(\d+\.\d+),Lon:([EW])(\d+\.\d+),Course:(\d+\.\d+),"
    r"Speed:(\d+\.\d+),DateTime:(\d{4})-(\d\d)-(\d\d) +(\d\d):(\d\d):(\d\d)"
)


def text_position(body: bytes) -> Gps | None:
    """String information 0x21 (flag (4), encoding (1: ASCII, else UTF-16BE), text): the
    'Current position!' answer to a WHERE command as a fix, None for any other text."""
    need(body, 5)
    raw = body[5:]
    text = raw.decode("ascii", "replace") if body[4] == 1 else raw.decode("utf-16-be", "replace")
    m = _WHERE.match(text)
    if m is None:
        return None
    ns, lat, ew, lon, course, speed, yyyy, mo, dd, hh, mi, ss = m.groups()
    if not (2000 <= int(yyyy) < 2100):
        raise Bad("bad_date", f"year {yyyy}")
    t = time_us(int(yyyy) - 2000, int(mo), int(dd), int(hh), int(mi), int(ss))
    lat_deg, lon_deg = float(lat), float(lon)
    if lat_deg > 90.0 or lon_deg > 180.0:
        raise Bad("bad_coordinates", f"latitude {lat_deg} or longitude {lon_deg} out of range")
    course_deg = float(course)
    return Gps(
        time_us=t,
        lat=-lat_deg if ns == "S" else lat_deg,
        lon=-lon_deg if ew == "W" else lon_deg,
        speed_kmh=float(speed),
        course_deg=course_deg if course_deg <= 360.0 else math.nan,
        satellites=-1,
        valid=True,
        ignition=-1,
        empty=False,
    )
