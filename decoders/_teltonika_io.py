"""Teltonika IO rows (from the kernel) to one attribute dict per record; GH3000 records.

Names and conversions are applied to whole columns with numpy and each dict is filled
by one C-level ``update`` from an iterator, so a batch of 100k records with a dozen
IO values each costs a fraction of a second, not one Python step per value and name.

Codec 7 (GH3000 personal trackers, Teltonika "GH3000 protocol"; Traccar
``TeltonikaProtocolDecoder.decodeLocation``) is rare and laid out differently (masks
saying which fields follow, float coordinates), so ``gh3000`` parses it in Python.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from itertools import islice
from typing import Any

import numpy as np
import numpy.typing as npt

from decoders import _teltonika_kernel as k
from decoders.attributes import (
    ALARM,
    BATTERY_LEVEL_PCT,
    BATTERY_VOLTAGE_V,
    EVENT,
    EXTERNAL_VOLTAGE_V,
    GNSS_SPEED_KMH,
    GNSS_STATUS,
    GSM_SIGNAL,
    MOTION,
    PDOP,
    PRIORITY,
    TRIP_ODOMETER_M,
)
from decoders.model import FixArray, empty_fixes

# Conversions work on a Python int and on a numpy uint64 array alike.
_Conv = Callable[[Any], Any]
SMALL = 64  # IO values: below this a plain loop beats the column operations


def _milli(v: Any) -> Any:
    return v / 1000.0


def _float(v: Any) -> Any:
    return v * 1.0


def _bool(v: Any) -> Any:
    return v != 0


def _int(v: Any) -> Any:
    return v


def _tenth(v: Any) -> Any:
    return v / 10.0


# IO id -> (attribute name, conversion of the unsigned raw values). The FMB AVL ID list
# gives voltages in mV and the trip odometer in m; 24 is the GNSS speed in km/h; 181 is
# PDOP in tenths (182, HDOP, goes to the fix column).
IO_NAMES: dict[int, tuple[str, _Conv]] = {
    240: (MOTION, _bool),
    21: (GSM_SIGNAL, _int),
    66: (EXTERNAL_VOLTAGE_V, _milli),
    67: (BATTERY_VOLTAGE_V, _milli),
    199: (TRIP_ODOMETER_M, _float),
    69: (GNSS_STATUS, _int),
    24: (GNSS_SPEED_KMH, _int),
    181: (PDOP, _tenth),
}
_RAW_KEYS = np.array([f"io{i}" for i in range(1 << 16)], dtype=object)
_KEYS = _RAW_KEYS.copy()
for _ident, (_name, _) in IO_NAMES.items():
    _KEYS[_ident] = _name


def attributes(
    buf: bytes, recs: npt.NDArray[np.int64], io: npt.NDArray[np.int32], val: npt.NDArray[np.int64]
) -> list[dict[str, Any]]:
    """One dict per row of ``recs``: priority, event id, then the record's IO values.

    ``io`` rows are ``(record, id, length)`` in record order, ``val`` beside them.
    Length -1: the value is the number (8-byte values wrapped to int64 are read back
    unsigned); else it is the offset of an 8 Extended variable-length value (hex).
    """
    if len(io) < SMALL:
        return _attributes_small(buf, recs, io, val)
    ids = io[:, k.IO_ID]
    raw = val.view(np.uint64)
    keys = _KEYS[ids]
    vals = raw.astype(object)
    for ident, (_, conv) in IO_NAMES.items():
        at = np.flatnonzero(ids == ident)
        if len(at):
            vals[at] = conv(raw[at]).astype(object)
    for j in np.flatnonzero(io[:, k.IO_LEN] >= 0).tolist():
        start, length = int(val[j]), int(io[j, k.IO_LEN])
        vals[j] = buf[start : start + length].hex()
        keys[j] = _RAW_KEYS[ids[j]]
    counts = np.bincount(io[:, k.IO_REC], minlength=len(recs)).tolist()
    pairs = zip(keys.tolist(), vals.tolist(), strict=True)
    out: list[dict[str, Any]] = []
    for prio, event, n in zip(
        recs[:, k.REC_PRIORITY].tolist(), recs[:, k.REC_EVENT].tolist(), counts, strict=True
    ):
        d: dict[str, Any] = {PRIORITY: prio, EVENT: event}
        d.update(islice(pairs, n))
        out.append(d)
    return out


def _attributes_small(
    buf: bytes, recs: npt.NDArray[np.int64], io: npt.NDArray[np.int32], val: npt.NDArray[np.int64]
) -> list[dict[str, Any]]:
    """``attributes`` for a few values (a live packet): one Python step per value."""
    out: list[dict[str, Any]] = [
        {PRIORITY: prio, EVENT: event}
        for event, prio in recs[:, [k.REC_EVENT, k.REC_PRIORITY]].tolist()
    ]
    for (r, ident, length), value in zip(io.tolist(), val.tolist(), strict=True):
        if length >= 0:
            out[r][_RAW_KEYS[ident]] = buf[value : value + length].hex()
            continue
        if value < 0:  # an 8-byte value of 2**63 or more, wrapped by the int64 row
            value += 1 << 64
        named = IO_NAMES.get(ident)
        if named is None:
            out[r][_RAW_KEYS[ident]] = value
        else:
            out[r][named[0]] = named[1](value)
    return out


# GH3000 (codec 7): times count seconds from 2007-01-01 UTC in the low 30 bits, the
# priority is in the top two. IO ids name other things than on FMB devices.
GH3000_EPOCH_S = 1_167_609_600
_GH_IO: dict[int, tuple[str, _Conv]] = {
    1: (BATTERY_LEVEL_PCT, _float),
    67: (BATTERY_VOLTAGE_V, _milli),
    240: (MOTION, _bool),
    22: (PDOP, _tenth),
}
_GH_HDOP = 20  # tenths, into the hdop column
_GH_SOS = 222  # 1: the SOS button
_LATLON = struct.Struct(">ff")


class Gh3000:
    """Codec 7 records: fix rows, their attributes, records without a position, rejects."""

    __slots__ = ("attributes", "fixes", "ignored", "rejects")

    def __init__(self) -> None:
        self.fixes: FixArray = empty_fixes(0)
        self.attributes: list[dict[str, Any]] = []
        self.ignored = 0
        self.rejects: list[tuple[int, int]] = []  # (record number, kernel reject code)


def gh3000(data: bytes, count: int) -> Gh3000 | None:
    """The ``count`` codec 7 records that must fill ``data`` exactly, else None.

    A record is: time word (4), global mask (1), the GPS element if mask bit 0 (its own
    mask, then lat/lon floats, altitude, angle/256 of a turn, speed km/h, satellites,
    LAC + cell id, signal, operator, each if its bit is set), then the 1-, 2- and 4-byte
    IO groups if mask bits 1-3 say so. Records without coordinates are no position
    (counted in ``ignored``).
    """
    out = Gh3000()
    rows: list[tuple[int, float, float, float, float, float, int, float]] = []
    p = 0
    try:
        for i in range(count):
            word, mask = int.from_bytes(data[p : p + 4], "big"), data[p + 4]
            p += 5
            attrs: dict[str, Any] = {PRIORITY: word >> 30}
            fix = [math.nan] * 5 + [-1, math.nan]  # lat lon alt course speed sats hdop
            located = bool(mask & 1) and bool(data[p] & 1)  # lat/lon present
            if mask & 1:
                p = _gh_gps(data, p, fix)
            for width, bit in ((1, 2), (2, 4), (4, 8)):
                if mask & bit:
                    p = _gh_io(data, p, width, attrs, fix)
            if len(data) < p:
                return None
            t_s = (word & 0x3FFF_FFFF) + GH3000_EPOCH_S
            lat, lon = fix[0], fix[1]
            if not located:
                out.ignored += 1
            elif not (abs(lat) <= 90.0 and abs(lon) <= 180.0):  # NaN too
                out.rejects.append((i, k.BAD_COORDINATES))
            else:
                rows.append((t_s, lat, lon, fix[2], fix[3], fix[4], int(fix[5]), fix[6]))
                out.attributes.append(attrs)
    except (IndexError, struct.error):
        return None
    if p != len(data):
        return None
    out.fixes = _gh_rows(rows)
    return out


def _gh_gps(data: bytes, p: int, fix: list[float]) -> int:
    """The GPS element at ``p`` into ``fix``; -> the offset after it."""
    loc = data[p]
    p += 1
    if loc & 0x01:  # float32: kept as its shortest decimal (44.791306, not 44.79130554…)
        fix[0], fix[1] = (float(str(np.float32(v))) for v in _LATLON.unpack_from(data, p))
        p += 8
    for bit, slot, size, scale in ((0x02, 2, 2, 1.0), (0x04, 3, 1, 360 / 256), (0x08, 4, 1, 1.0)):
        if loc & bit:
            fix[slot] = int.from_bytes(data[p : p + size], "big") * scale
            p += size
    if loc & 0x10:
        fix[5] = data[p]
        p += 1
    # LAC + cell id (no MCC/MNC to make a cell of), signal quality, operator: skipped.
    for bit, size in ((0x20, 4), (0x40, 1), (0x80, 4)):
        if loc & bit:
            p += size
    return p


def _gh_io(data: bytes, p: int, width: int, attrs: dict[str, Any], fix: list[float]) -> int:
    """One GH3000 IO group (count, then id and ``width``-byte value pairs); -> next offset."""
    n = data[p]
    p += 1
    for _ in range(n):
        ident = data[p]
        raw = data[p + 1 : p + 1 + width]
        if len(raw) < width:
            raise IndexError("IO value cut short")
        value = int.from_bytes(raw, "big")
        p += 1 + width
        named = _GH_IO.get(ident)
        if ident == _GH_HDOP:
            fix[6] = value / 10.0
        elif ident == _GH_SOS:
            if value == 1:
                attrs[ALARM] = "sos"
        elif named is not None:
            attrs[named[0]] = named[1](value)
        else:
            attrs[_RAW_KEYS[ident]] = value
    return p


def _gh_rows(rows: list[tuple[int, float, float, float, float, float, int, float]]) -> FixArray:
    """GH3000 fixes as ``FIX_DTYPE`` rows; valid unless 0 satellites or exactly (0, 0)."""
    out = empty_fixes(len(rows))
    for j, (t_s, lat, lon, alt, course, speed, sats, hdop) in enumerate(rows):
        row = out[j]
        row["fix_time_us"] = t_s * 1_000_000
        row["lat"], row["lon"], row["altitude_m"] = lat, lon, alt
        row["course_deg"], row["speed_kmh"], row["satellites"], row["hdop"] = (
            course,
            speed,
            sats,
            hdop,
        )
        row["valid"] = sats != 0 and not (lat == 0.0 and lon == 0.0)
    return out
