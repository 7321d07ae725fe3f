"""Teltonika IO rows (from the kernel) to one attribute dict per record.

Names and conversions are applied to whole columns with numpy and each dict is filled
by one C-level ``update`` from an iterator, so a batch of 100k records with a dozen
IO values each costs a fraction of a second, not one Python step per value and name.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import Any

import numpy as np
import numpy.typing as npt

from decoders import _teltonika_kernel as k
from decoders.attributes import (
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
