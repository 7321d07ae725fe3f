"""numba kernel: Teltonika AVL packets (codec 8, 8 Extended, 16) to ``FIX_DTYPE`` rows.

All packets of one ``decode_frames`` call sit in one ``np.uint8`` buffer, so a call
costs one kernel entry however many packets it holds. The kernel checks each packet
(CRC-16/IBM, N1 == N2, records exactly filling the data field), writes the fix
columns and flattens the IO elements to ``(record, id, length, value)`` rows; Python
only names them. A packet that fails a check leaves no rows behind. With
``NUMBA_DISABLE_JIT=1`` the same code runs as plain Python, the reference twin.

Layout (Teltonika wiki "Codec", sections "Codec 8", "Codec 8 Extended", "Codec 16"):
record = timestamp ms (8) | priority (1) | lon, lat int32 1e-7 deg | altitude int16 m |
angle uint16 deg | satellites (1) | speed uint16 km/h | IO element, where the IO element
is event id, total count, then groups of 1-, 2-, 4- and 8-byte values (codec 8: 1-byte
ids and counts; 8E: 2-byte ids and counts plus the NX group of ``id, length, bytes``;
16: 2-byte event id and ids, a generation-type byte, 1-byte counts).

Some devices add a group of 16-byte values after the 8-byte group (Traccar's
``protocol.extended`` option; e.g. the two 'extended' captures in its
TeltonikaProtocolDecoderTest). A packet whose records do not fill the data field the
standard way is parsed again with that group before it is called ``bad_length``:
its CRC already vouches for the bytes, so only the layout is in question.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from decoders.model import FIX_DTYPE, FixArray

U8 = npt.NDArray[np.uint8]
I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

CODEC_8 = 0x08
CODEC_8E = 0x8E
CODEC_16 = 0x10

# Per-packet and per-record result codes (named in decoders/teltonika.py).
OK = 0
BAD_LENGTH = 1
BAD_CRC = 2
BAD_COUNT = 3
UNSUPPORTED = 4
BAD_DATE = 5
BAD_COORDINATES = 6

# Fix times outside [GPS epoch 1980-01-06, 2100-01-01) cannot be true.
MIN_TIME_MS = 315_964_800_000
MAX_TIME_MS = 4_102_444_800_000

# IO ids written to fix columns instead of the IO rows.
IO_ODOMETER = 16
IO_HDOP = 182
IO_IGNITION = 239

# Columns of the IO rows and of the per-record rows.
# IO rows: int32 (record, id, length) beside an int64 value; length -1: the value is the
# number, else its offset in the buffer. 20 bytes a value, not 32: writing the rows of a
# big batch means page faults on fresh memory, which were half the kernel's time.
IO_REC, IO_ID, IO_LEN = 0, 1, 2
REC_FRAME, REC_EVENT, REC_PRIORITY = 0, 1, 2
_TWO64 = 2.0**64
MIN_RECORD = 30  # bytes: codec 8 record with no IO values
WIDE_VALUE = 16  # bytes of one value in the 'extended' group


def _crc_tables() -> I64:
    """CRC-16/IBM (reflected polynomial 0xA001, initial value 0) slicing-by-8 tables.

    Row 0 is the classic byte table; row j is the CRC of a byte followed by j zero
    bytes, so eight bytes fold in with eight independent lookups instead of a chain of
    eight dependent ones (the CRC was three quarters of the kernel's time).
    """
    t = np.zeros((8, 256), np.int64)  # int64: numba unifies uint16 and int64 to float
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        t[0, b] = c
    for j in range(1, 8):
        for b in range(256):
            c = int(t[j - 1, b])
            t[j, b] = (c >> 8) ^ t[0, c & 0xFF]
    return t


CRC_TABLES = _crc_tables()
CRC_TABLE = CRC_TABLES[0]


@njit(cache=True, inline="always")
def _u8(buf: U8, i: int) -> int:
    """``buf[i]`` for ``i >= 0`` through an unsigned index (no negative-index fix-up), as
    int64: numba's ``int()`` keeps uint8, and uint64 unified with int64 is float64."""
    return np.int64(buf[np.uint64(i)])  # type: ignore[return-value]


@njit(cache=True, inline="always")
def _u16(buf: U8, i: int) -> int:
    return (_u8(buf, i) << 8) | _u8(buf, i + 1)


@njit(cache=True, inline="always")
def _u32(buf: U8, i: int) -> int:
    return (_u16(buf, i) << 16) | _u16(buf, i + 2)


@njit(cache=True, inline="always")
def _i64(buf: U8, i: int) -> int:
    """Eight big-endian bytes; values of 2**63 and more wrap negative (Python unwraps)."""
    return int(np.int64((np.uint64(_u32(buf, i)) << np.uint64(32)) | np.uint64(_u32(buf, i + 4))))


@njit(cache=True, inline="always")
def _sign(v: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return v - (half << 1) if v >= half else v


@njit(cache=True)
def crc16(buf: U8, s: int, e: int) -> int:
    """CRC-16/IBM of ``buf[s:e]``, eight bytes a step."""
    t = CRC_TABLES
    c = 0
    i = s
    while i + 8 <= e:
        c = (
            t[7, (c ^ _u8(buf, i)) & 0xFF]
            ^ t[6, ((c >> 8) ^ _u8(buf, i + 1)) & 0xFF]
            ^ t[5, _u8(buf, i + 2)]
            ^ t[4, _u8(buf, i + 3)]
            ^ t[3, _u8(buf, i + 4)]
            ^ t[2, _u8(buf, i + 5)]
            ^ t[1, _u8(buf, i + 6)]
            ^ t[0, _u8(buf, i + 7)]
        )
        i += 8
    for j in range(i, e):
        c = (c >> 8) ^ t[0, (c ^ _u8(buf, j)) & 0xFF]
    return int(c)


@njit(cache=True)
def _record(
    buf: U8,
    p: int,
    end: int,
    codec: int,
    x16: bool,
    out: FixArray,
    r: int,
    io: I32,
    val: I64,
    nio: int,
) -> tuple[int, int, int, int, int]:
    """Parse the record at ``p`` into row ``r`` and IO rows from ``nio``.

    ``x16``: a group of 16-byte values follows the 8-byte group (kept like NX values).
    Returns (next position, new nio, code, event id, priority); a position past ``end``
    means the record is cut short (the caller discards the packet).
    """
    wide = codec == CODEC_8E
    idw = 1 if codec == CODEC_8 else 2  # IO id width
    cw = 2 if wide else 1  # count width
    head = 24 + (idw + 1 + cw if codec == CODEC_16 else idw + cw)
    if p + head > end:
        return end + 1, nio, BAD_LENGTH, 0, 0
    ms = _i64(buf, p)
    prio = _u8(buf, p + 8)
    lon = _sign(_u32(buf, p + 9), 32)
    lat = _sign(_u32(buf, p + 13), 32)
    alt = _sign(_u16(buf, p + 17), 16)
    angle = _u16(buf, p + 19)
    sats = _u8(buf, p + 21)
    speed = _u16(buf, p + 22)
    event = _u8(buf, p + 24) if idw == 1 else _u16(buf, p + 24)
    p += head  # the total IO count is not needed: the groups carry their own
    code = OK
    if not MIN_TIME_MS <= ms < MAX_TIME_MS:
        code = BAD_DATE
    elif abs(lat) > 900_000_000 or abs(lon) > 1_800_000_000:
        code = BAD_COORDINATES
    row = out[r]
    row["fix_time_us"] = ms * 1000 if code == OK else 0
    row["lat"] = lat / 1e7
    row["lon"] = lon / 1e7
    row["speed_kmh"] = speed
    row["course_deg"] = angle if angle <= 360 else np.nan
    row["altitude_m"] = alt
    row["satellites"] = sats
    row["hdop"] = np.nan
    row["valid"] = sats != 0 and not (lat == 0 and lon == 0)
    row["ignition"] = -1
    row["odometer_m"] = np.nan
    for width in (1, 2, 4, 8):
        if p + cw > end:
            return end + 1, nio, BAD_LENGTH, 0, 0
        n = _u8(buf, p) if cw == 1 else _u16(buf, p)
        p += cw
        if p + n * (idw + width) > end:
            return end + 1, nio, BAD_LENGTH, 0, 0
        for _ in range(n):
            ident = _u8(buf, p) if idw == 1 else _u16(buf, p)
            p += idw
            if width == 1:
                v = _u8(buf, p)
            elif width == 2:
                v = _u16(buf, p)
            elif width == 4:
                v = _u32(buf, p)
            else:
                v = _i64(buf, p)
            p += width
            if ident == IO_IGNITION:
                row["ignition"] = 1 if v != 0 else 0
            elif ident == IO_ODOMETER:
                row["odometer_m"] = v if v >= 0 else v + _TWO64  # 8-byte values unsigned
            elif ident == IO_HDOP:
                row["hdop"] = (v if v >= 0 else v + _TWO64) / 10.0
            else:
                io[nio, IO_REC] = r
                io[nio, IO_ID] = ident
                io[nio, IO_LEN] = -1
                val[nio] = v
                nio += 1
    if x16:
        if p + cw > end:
            return end + 1, nio, BAD_LENGTH, 0, 0
        n = _u8(buf, p) if cw == 1 else _u16(buf, p)
        p += cw
        if p + n * (idw + WIDE_VALUE) > end:
            return end + 1, nio, BAD_LENGTH, 0, 0
        for _ in range(n):
            io[nio, IO_REC] = r
            io[nio, IO_ID] = _u8(buf, p) if idw == 1 else _u16(buf, p)
            io[nio, IO_LEN] = WIDE_VALUE
            val[nio] = p + idw
            nio += 1
            p += idw + WIDE_VALUE
    if wide:
        if p + 2 > end:
            return end + 1, nio, BAD_LENGTH, 0, 0
        n = _u16(buf, p)
        p += 2
        for _ in range(n):
            if p + 4 > end:
                return end + 1, nio, BAD_LENGTH, 0, 0
            ident = _u16(buf, p)
            ln = _u16(buf, p + 2)
            p += 4
            if p + ln > end:
                return end + 1, nio, BAD_LENGTH, 0, 0
            io[nio, IO_REC] = r
            io[nio, IO_ID] = ident
            io[nio, IO_LEN] = ln
            val[nio] = p
            nio += 1
            p += ln
    return p, nio, code, event, prio


@njit(cache=True)
def _records(
    buf: U8,
    k: int,
    s: int,
    e: int,
    x16: bool,
    out: FixArray,
    recs: I64,
    io: I32,
    val: I64,
    rej: I64,
    nrec: int,
    nio: int,
    nrej: int,
) -> tuple[int, int, int, int]:
    """The N1 records of packet ``k`` (data field ``buf[s:e + 1]``); -> (end, nrec, nio, nrej).

    An end other than ``e`` (the offset of N2) means the records did not fill the field.
    """
    codec = _u8(buf, s)
    p = s + 2
    for i in range(_u8(buf, s + 1)):
        p, nio2, rc, event, prio = _record(buf, p, e, codec, x16, out, nrec, io, val, nio)
        if p > e:
            break
        if rc == OK:
            recs[nrec, REC_FRAME] = k
            recs[nrec, REC_EVENT] = event
            recs[nrec, REC_PRIORITY] = prio
            nrec += 1
            nio = nio2
        else:
            rej[nrej, 0] = k
            rej[nrej, 1] = i
            rej[nrej, 2] = rc
            nrej += 1
    return p, nrec, nio, nrej


@njit(cache=True)
def decode(
    buf: U8, starts: I64, ends: I64, crcs: I64
) -> tuple[FixArray, I64, I32, I64, I64, I8, I64, int, int, int]:
    """Decode the AVL data fields ``buf[starts[k]:ends[k] + 1]`` (codec id .. N2).

    ``crcs[k]`` is the offset of packet k's 4-byte CRC, or -1 when there is none (UDP).
    Returns over-allocated arrays and their used lengths: fix rows, per-record rows
    ``(packet, event id, priority)``, IO rows ``(record, id, length)`` and values, record
    rejects ``(packet, record number, code)``, one code per packet, one record count
    per packet (N1), then ``nrec, nio, nrej``.
    """
    nframes = len(starts)
    code = np.full(nframes, OK, np.int8)
    count = np.zeros(nframes, np.int64)
    cap = 0
    for k in range(nframes):
        cap += min(_u8(buf, starts[k] + 1), (ends[k] - starts[k]) // MIN_RECORD + 1)
    out = np.empty(cap, FIX_DTYPE)
    recs = np.empty((cap, 3), np.int64)
    rej = np.empty((cap, 3), np.int64)
    io = np.empty((len(buf) // 2 + 1, 3), np.int32)  # a value takes at least 2 bytes
    val = np.empty(len(buf) // 2 + 1, np.int64)
    nrec = 0
    nio = 0
    nrej = 0
    for k in range(nframes):
        s = starts[k]
        e = ends[k]  # offset of N2
        codec = _u8(buf, s)
        n1 = _u8(buf, s + 1)
        count[k] = n1
        c = crcs[k]
        if c >= 0 and (_u16(buf, c) != 0 or _u16(buf, c + 2) != crc16(buf, s, e + 1)):
            code[k] = BAD_CRC
            continue
        if n1 != _u8(buf, e):
            code[k] = BAD_COUNT
            continue
        if codec != CODEC_8 and codec != CODEC_8E and codec != CODEC_16:
            code[k] = UNSUPPORTED
            continue
        r0, io0, rej0 = nrec, nio, nrej
        p, nrec, nio, nrej = _records(buf, k, s, e, False, out, recs, io, val, rej, r0, io0, rej0)
        if p != e:  # perhaps a device with the 16-byte group
            p, nrec, nio, nrej = _records(
                buf, k, s, e, True, out, recs, io, val, rej, r0, io0, rej0
            )
        if p != e:  # cut short, or bytes left over before N2
            code[k] = BAD_LENGTH
            nrec, nio, nrej = r0, io0, rej0
    return out, recs, io, val, rej, code, count, nrec, nio, nrej
