"""What H02 text and binary frames share: the status word and the clock.

The 32-bit status word (``vehicle_status``) uses negative logic: a bit that is 0 means
the condition is present. Which bit is which follows Traccar's ``H02ProtocolDecoder``
(checked against real devices): bit 0 vibration, bit 1 or 18 SOS, bit 2 overspeed,
bit 19 power cut, in that order of precedence (one alarm per fix), and bit 10 set means
ACC (ignition) on.
"""

from __future__ import annotations

import calendar

from decoders import attributes as attr
from decoders._text_frames import Position
from decoders.errors import DecodeError

# (bit, alarm) in Traccar's order of precedence; a cleared bit raises the alarm.
_STATUS_ALARMS = ((0, "vibration"), (1, "sos"), (18, "sos"), (2, "overspeed"), (19, "power_cut"))
_IGNITION_BIT = 10


def apply_status(pos: Position, status: int) -> None:
    """Put the status word's alarm, ignition and raw value into ``pos``."""
    for bit, alarm in _STATUS_ALARMS:
        if not status >> bit & 1:
            pos.attributes[attr.ALARM] = alarm
            break
    pos.ignition = status >> _IGNITION_BIT & 1
    pos.attributes[attr.STATUS] = status


def utc_us(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """Microseconds since 1970 for a UTC calendar time; DecodeError when it does not exist."""
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise DecodeError("bad_date", f"{year:04d}-{month:02d}-{day:02d} is not a date")
    if not (hour < 24 and minute < 60 and second < 60):
        raise DecodeError("bad_time", f"{hour:02d}:{minute:02d}:{second:02d} is not a time")
    days = calendar.timegm((year, month, day, 0, 0, 0)) // 86400
    return ((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000
