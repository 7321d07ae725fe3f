"""The attribute vocabulary every decoder uses, so rules and dashboards read one set of names.

Values a fix column already holds (ignition, odometer, speed …) go into the column, not
here. Units are in the names. A protocol value with no standard name is kept under a
protocol-specific key (Teltonika ``io<id>``) rather than dropped.

``alarm`` names one event, from ``ALARMS``; a frame reporting an alarm kind we do not
know keeps its raw code as ``alarm_code`` and sets ``alarm`` to ``"other"``.
"""

from __future__ import annotations

from typing import Final

# Scalar attributes (name: meaning). Decoders must use these spellings.
ALARM: Final = "alarm"  # one of ALARMS
ALARM_CODE: Final = "alarm_code"  # the protocol's raw alarm/event code (int or str)
MOTION: Final = "motion"  # bool, the device's movement sensor
GSM_SIGNAL: Final = "gsm_signal"  # int, protocol scale (Teltonika 0-5, GT06 0-4)
EXTERNAL_VOLTAGE_V: Final = "external_voltage_v"  # float volts, vehicle power
BATTERY_VOLTAGE_V: Final = "battery_voltage_v"  # float volts, tracker's own battery
BATTERY_LEVEL_PCT: Final = "battery_level_pct"  # float 0-100
TRIP_ODOMETER_M: Final = "trip_odometer_m"  # float metres since trip start
GNSS_STATUS: Final = "gnss_status"  # int, Teltonika IO 69
GNSS_SPEED_KMH: Final = "gnss_speed_kmh"  # int, speed the device's IO reports (Teltonika 24)
PDOP: Final = "pdop"  # float, position dilution of precision (HDOP has its column)
CHARGING: Final = "charging"  # bool
POWER_CUT: Final = "power_cut"  # bool, external power disconnected
ACCURACY_M: Final = "accuracy_m"  # float, a phone's horizontal accuracy
CELL: Final = "cell"  # {"mcc": int, "mnc": int, "lac": int, "cid": int}
EVENT: Final = "event"  # int, the protocol's event / trigger IO id
STATUS: Final = "status"  # int, a raw status bitfield kept for inspection
SERIAL: Final = "serial"  # int, the frame's serial number (GT06 information serial)
PRIORITY: Final = "priority"  # int, Teltonika record priority (0 low, 1 high, 2 panic)

ALARMS: Final = frozenset(
    {
        "sos",
        "power_cut",
        "low_battery",
        "low_power",  # external voltage low
        "vibration",
        "movement",  # moved while parked
        "overspeed",
        "geofence_enter",
        "geofence_exit",
        "geofence",  # zone alarm with no direction
        "door",
        "tampering",
        "accident",
        "fall_down",
        "ac_alarm",  # GPS103 'ac alarm': power from mains lost
        "acc_on",
        "acc_off",
        "gps_antenna_cut",
        "other",
    }
)
