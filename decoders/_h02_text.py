"""H02 text position frames.

``*XX,<id>,V1,hhmmss,A,DDMM.MMMM,N,DDDMM.MMMM,E,speed,course,ddmmyy,status#``

Fields per the H02/LKGPS protocol document ("The structure of commands send by
terminal"): time is UTC, ``A`` valid and ``V`` invalid (Traccar also accepts ``B``
and, in VI1/V2 frames, a numeric coding scheme meaning valid), speed in knots, course
in degrees, date ddmmyy, status 8 hex digits. The document lets speed and course be
empty, meaning 0. Coordinate spellings seen on real devices (Traccar's decoder test):
``DDMM.MMMM`` with 1-3 degree digits, ``-DD-MM.MMMM``, and ``DDMMmmmm`` without a dot;
before their first fix some send ``0.0000,0`` (no hemisphere): no position. Between
course and date some firmwares put a battery field; after the date V19 frames put three
SIM fields before the status, and some V1 frames append odometer, temperature, fuel,
altitude, LAC and CID. V4 frames confirm a server command and then carry a position.
"""

from __future__ import annotations

import re

from decoders._h02_fields import apply_status, utc_us
from decoders._text_frames import KMH_PER_KNOT, Position, check_range
from decoders.errors import DecodeError

_DASHED = re.compile(r"-(\d+)-(\d+\.\d+)")
_DOTTED = re.compile(r"(\d+)(\d\d\.\d+)")
_PACKED = re.compile(r"(\d+)(\d\d)(\d{4})")
_NUMBER = re.compile(r"\d+(?:\.\d*)?")
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_ZERO = re.compile(r"0+(?:\.0*)?")
_EXTRA = (r"\d+", r"-?\d+", r"\d+\.\d+", r"-?\d+", r"[0-9A-Fa-f]+", r"[0-9A-Fa-f]+")


def decode(fields: list[str], device_id: str) -> Position:
    """The position in a text frame split at commas (``fields[3]`` is the time)."""
    if len(fields) < 12:
        raise DecodeError("malformed", f"{len(fields)} fields is too few for a position")
    time, flag = fields[3], fields[4]
    lat = _coordinate(fields[5], fields[6], "NS")
    lon = _coordinate(fields[7], fields[8], "EW")
    if lat is None or lon is None:
        raise DecodeError("no_fix", "frame carries no position")
    check_range(lat, lon)
    speed = _number(fields[9].strip(" "), "speed")
    course = _number(fields[10], "course")
    k = 11
    if k + 1 < len(fields) and fields[k].isdigit() and _is_date(fields[k + 1]):
        k += 1  # battery level field before the date
    pos = Position(
        device_id=device_id,
        time_us=_time_us(time, fields[k]),
        lat=lat,
        lon=lon,
        speed_kmh=speed * KMH_PER_KNOT,
        course_deg=course if course <= 360.0 else float("nan"),
        valid=flag == "A" or flag.isdigit(),
    )
    _tail(pos, fields[k + 1 :])
    return pos


def confirmed_position(fields: list[str]) -> int | None:
    """Where the position starts in a V4 confirmation, None when it carries none.

    ``*XX,<id>,V4,<command>,<its parameters…>,<command time>,<hhmmss>,A|V,<lat>,N|S,…``:
    the parameters vary by command (``S14,100,10,1,3``, ``S23,165.165.33.250:8800``), so
    the position is found by its shape: a time of day, a validity flag and hemispheres.
    """
    for k in range(4, len(fields) - 8):
        if (
            _is_time(fields[k])
            and fields[k + 1] in ("A", "V", "B")
            and fields[k + 3] in ("N", "S")
            and fields[k + 5] in ("E", "W")
        ):
            return k
    return None


def _tail(pos: Position, rest: list[str]) -> None:
    """Status word (right after the date, or after V19's three SIM fields) and extras."""
    at = 0 if rest and _HEX8.fullmatch(rest[0]) else 3
    if len(rest) <= at or not _HEX8.fullmatch(rest[at]):
        return
    apply_status(pos, int(rest[at], 16))
    extra = rest[at + 1 :]
    if len(extra) == len(_EXTRA) and all(
        re.fullmatch(rx, v) for rx, v in zip(_EXTRA, extra, strict=True)
    ):
        pos.odometer_m = float(extra[0])
        pos.altitude_m = float(extra[3])


def _is_date(text: str) -> bool:
    return len(text) == 6 and text.isdigit()


def _is_time(text: str) -> bool:
    return len(text) == 6 and text.isdigit()


def _time_us(time: str, date: str) -> int:
    if not date:
        raise DecodeError("no_date", "frame has no date")
    if not _is_date(date):
        raise DecodeError("bad_date", f"date {date!r} is not ddmmyy")
    if not time:
        raise DecodeError("no_time", "frame has no time of day")
    if len(time) != 6 or not time.isdigit():
        raise DecodeError("bad_time", f"time {time!r} is not hhmmss")
    dd, mo, yy = int(date[:2]), int(date[2:4]), int(date[4:])
    return utc_us(2000 + yy, mo, dd, int(time[:2]), int(time[2:4]), int(time[4:]))


def _number(text: str, what: str) -> float:
    """Speed or course: the document says an empty field means 0."""
    if not text:
        return 0.0
    if not _NUMBER.fullmatch(text):
        raise DecodeError("malformed", f"{what} {text!r} is not a number")
    return float(text)


def _coordinate(text: str, hemisphere: str, hemispheres: str) -> float | None:
    """Signed degrees; None when the field is empty (no position)."""
    if not text:
        return None
    if hemisphere not in hemispheres or len(hemisphere) != 1:
        if hemisphere == "0" and _ZERO.fullmatch(text):
            return None  # "0.0000,0": what devices send before their first fix
        raise DecodeError("malformed", f"hemisphere {hemisphere!r} is not one of {hemispheres}")
    if m := _DASHED.fullmatch(text) or _DOTTED.fullmatch(text):
        degrees, minutes = int(m.group(1)), float(m.group(2))
    elif m := _PACKED.fullmatch(text):
        degrees, minutes = int(m.group(1)), int(m.group(2)) + int(m.group(3)) / 10_000.0
    else:
        raise DecodeError("malformed", f"coordinate {text!r} is not DDMM.MMMM")
    if minutes >= 60.0:
        raise DecodeError("bad_coordinates", f"{minutes} minutes of arc")
    value = degrees + minutes / 60.0
    return -value if hemisphere == hemispheres[1] else value
