"""numba kernel: many NMEA 0183 sentences in one ``np.uint8`` buffer to ``FIX_DTYPE`` rows.

One pass over the buffer writes the fix rows themselves, so the Python side only slices
the result: a 150-byte packet costs about as little as a call can, and a batch of 100k
sentences costs milliseconds. Plain Python that numba compiles; with
``NUMBA_DISABLE_JIT=1`` the same code runs (slowly) as the reference twin.

Rules (documented in ``decoders/nmea.py``): checksum optional but checked when present;
RMC and GGA for any talker, u-blox ``PUBX,00``; consecutive sentences with the same time
of day merge into one fix; dateless epochs take the running date with midnight rollover.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from decoders._nmea_fields import (
    BAD_CHECKSUM,
    BAD_DATE,
    BAD_TIME,
    BLANK,
    I64,
    LINE_TOO_LONG,
    MALFORMED,
    NO_DATE,
    NO_FIX,
    OK,
    OUT_OF_RANGE,
    U8,
    UNSUPPORTED,
    at,
    coord,
    date,
    hexval,
    number,
    tod_us,
    xor,
)
from decoders.model import FIX_DTYPE, FixArray

MAX_LINE = 1024  # bytes, as Traccar's LineBasedFrameDecoder(1024)
MAX_FIELDS = 40  # a line with more commas is malformed
DAY_US = 86_400_000_000
HALF_DAY_MS = 43_200_000
_KNOTS_TO_KMH = 1.852

KIND_RMC = 1
KIND_GGA = 2
KIND_PUBX = 3

I8 = npt.NDArray[np.int8]
NO_IGNITION: I8 = np.empty(0, np.int8)  # the ``ignition`` argument when no line has one


@njit(cache=True, inline="always")
def _close(out: FixArray, f: int, tod: int, day: int, date: int, tod_ms: int) -> tuple[int, int]:
    """Date epoch ``f`` (own day, or the running date with rollover): the new running state.

    Day -1 means no date is known: the caller drops the epoch, the state is unchanged.
    """
    tms = tod // 1000
    if day < 0 and date >= 0:
        day = date
        if tod_ms >= 0 and tod_ms - tms > HALF_DAY_MS:
            day += 1
        elif tod_ms >= 0 and tms - tod_ms > HALF_DAY_MS:
            day -= 1
    if day < 0:
        return -1, tod_ms
    out[f]["fix_time_us"] = day * DAY_US + tod
    return day, tms


@njit(cache=True)
def decode(
    buf: U8, ignition: I8, last_date_days: int, last_tod_ms: int
) -> tuple[FixArray, I64, int, int, int]:
    """Decode every '\\n'-separated line of ``buf``.

    ``ignition[i]`` (-1 unknown; an empty array for none) goes into the fix of line ``i``.
    Returns ``FIX_DTYPE`` rows (over-allocated: use the first ``nfix``), one row
    ``(line, start, end, code)`` per rejected line, ``nfix`` and the running
    ``(date_days, tod_ms)``.
    """
    n = len(buf)
    nlines = 1
    for i in range(n):
        nlines += at(buf, i) == 10
    out = np.empty(nlines, FIX_DTYPE)
    ls = np.empty(nlines, np.int64)
    le = np.empty(nlines, np.int64)
    code = np.empty(nlines, np.int8)
    d = np.empty(MAX_LINE + 4, np.int64)  # field k is buf[d[k] + 1 : d[k + 1]]
    rdate = last_date_days
    rtod = last_tod_ms
    nfix = 0
    cur = -1  # open epoch: its row, time of day (us), own date (-1), first line
    cur_tod = -1
    cur_day = -1
    first = 0
    start = 0
    for li in range(nlines):
        # To the first '*' or '\n': the comma positions (stored unconditionally, so a
        # comma costs no branch); a longer line is not scanned.
        s = start
        nc = 0
        d[0] = s
        i = s + 1 if s < n and at(buf, s) != 10 else s
        lim = min(n, s + MAX_LINE + 2)
        while i < lim:
            c = at(buf, i)
            if c | 32 == 42:  # '\n' or '*', the only bytes that OR 32 to 42
                break
            d[nc + 1] = i
            nc += c == 44
            i += 1
        star = i if i < n and at(buf, i) == 42 else -1
        while i < n and at(buf, i) != 10:
            i += 1
        start = i + 1
        e = i - 1 if i > s and at(buf, i - 1) == 13 else i
        ls[li] = s
        le[li] = e
        code[li] = MALFORMED
        if e == s:
            code[li] = BLANK
            continue
        if e - s > MAX_LINE:
            code[li] = LINE_TOO_LONG
            continue
        if (at(buf, s) != 36 and at(buf, s) != 33) or nc >= MAX_FIELDS - 1:  # '$' '!'
            continue
        if star >= 0:
            if e - star != 3:
                continue
            h1 = hexval(at(buf, star + 1))
            h2 = hexval(at(buf, star + 2))
            if h1 < 0 or h2 < 0:
                continue
            if h1 * 16 + h2 != xor(buf, s + 1, star):
                code[li] = BAD_CHECKSUM
                continue
            e = star
        d[nc + 1] = e
        nf = nc + 1
        a = s + 1
        kind = 0
        if at(buf, s) == 36 and d[1] - a == 5:
            if 65 <= at(buf, a) <= 90 and 65 <= at(buf, a + 1) <= 90:
                t1, t2, t3 = at(buf, a + 2), at(buf, a + 3), at(buf, a + 4)
                if t1 == 82 and t2 == 77 and t3 == 67:
                    kind = KIND_RMC
                elif t1 == 71 and t2 == 71 and t3 == 65:
                    kind = KIND_GGA
        elif (
            d[1] - a == 4
            and at(buf, a) == 80  # "PUBX"
            and at(buf, a + 1) == 85
            and at(buf, a + 2) == 66
            and at(buf, a + 3) == 88
            and nf > 1
            and d[2] - d[1] == 3  # ",00"
            and at(buf, d[1] + 1) == 48
            and at(buf, d[1] + 2) == 48
        ):
            kind = KIND_PUBX
        if kind == 0:
            code[li] = UNSUPPORTED
            continue
        ft, fl, need = (1, 3, 10) if kind == KIND_RMC else (1, 2, 10)
        if kind == KIND_PUBX:
            ft, fl, need = 2, 3, 19
        if nf < need:
            continue
        c1, la = coord(buf, d[fl] + 1, d[fl + 1], d[fl + 1] + 1, d[fl + 2], 90)
        c2, lo = coord(buf, d[fl + 2] + 1, d[fl + 3], d[fl + 3] + 1, d[fl + 4], 180)
        if c1 != OK or c2 != OK:
            code[li] = c1 if c1 != OK else c2
            continue
        if np.isnan(la) or np.isnan(lo):
            code[li] = NO_FIX
            continue
        tu = tod_us(buf, d[ft] + 1, d[ft + 1])
        if tu < 0:
            if tu == -2 or d[ft] + 1 == d[ft + 1]:
                code[li] = BAD_TIME
            continue
        day = -1
        al = np.nan
        hd = np.nan
        sv = -1
        svf = np.nan
        if kind == KIND_RMC:
            st = at(buf, d[2] + 1) if d[3] - d[2] == 2 else 0
            if st != 65 and st != 86:  # 'A' 'V'
                continue
            va = st == 65
            ok1, kn = number(buf, d[7] + 1, d[8], False)
            ok2, co = number(buf, d[8] + 1, d[9], False)
            ok = ok1 and ok2
            sp = kn * _KNOTS_TO_KMH
            day = date(buf, d[9] + 1, d[10])
            if day == -1:
                code[li] = BAD_DATE
                continue
        elif kind == KIND_GGA:
            okq, q = number(buf, d[6] + 1, d[7], False)
            oks, svf = number(buf, d[7] + 1, d[8], False)
            okh, hd = number(buf, d[8] + 1, d[9], False)
            oka, al = number(buf, d[9] + 1, d[10], True)
            ok = okq and oks and okh and oka
            va = not (q == 0.0 or np.isnan(q))
            sp = np.nan
            co = np.nan
            if nf > 10 and d[11] - d[10] == 2 and at(buf, d[10] + 1) != 77:  # unit not 'M'
                al = np.nan
        else:
            ns = d[8] + 1
            if d[9] - ns != 2:
                continue
            n1 = at(buf, ns)
            n2 = at(buf, ns + 1)
            va = ((n1 == 71 or n1 == 68) and (n2 == 50 or n2 == 51)) or (n1 == 82 and n2 == 75)
            ok1, sp = number(buf, d[11] + 1, d[12], False)
            ok2, co = number(buf, d[12] + 1, d[13], False)
            okh, hd = number(buf, d[15] + 1, d[16], False)
            oks, svf = number(buf, d[18] + 1, d[19], False)
            ok = ok1 and ok2 and okh and oks
        if not ok:
            continue
        if co > 360.0 or svf > 999.0 or hd > 999.0:
            code[li] = OUT_OF_RANGE
            continue
        if not np.isnan(svf):
            sv = int(svf)
        # merge into the open epoch, or close it and open a new one
        if cur < 0 or cur_tod != tu or (day >= 0 and cur_day >= 0 and cur_day != day):
            if cur >= 0:
                cur_day, rtod = _close(out, cur, cur_tod, cur_day, rdate, rtod)
                if cur_day < 0:
                    nfix -= 1  # no date: drop the epoch, reject its lines
                    for j in range(first, li):
                        if code[j] == OK:
                            code[j] = NO_DATE
                else:
                    rdate = cur_day
            cur = nfix
            nfix += 1
            cur_tod = tu
            cur_day = -1
            first = li
            r = out[cur]
            r["lat"] = la
            r["lon"] = lo
            r["speed_kmh"] = np.nan
            r["course_deg"] = np.nan
            r["altitude_m"] = np.nan
            r["satellites"] = -1
            r["hdop"] = np.nan
            r["valid"] = True
            r["ignition"] = -1
            r["odometer_m"] = np.nan
        r = out[cur]
        if day >= 0:
            cur_day = day
        # the first sentence of the epoch that knows a value wins
        if np.isnan(r["speed_kmh"]):
            r["speed_kmh"] = sp
        if np.isnan(r["course_deg"]):
            r["course_deg"] = co
        if np.isnan(r["altitude_m"]):
            r["altitude_m"] = al
        if np.isnan(r["hdop"]):
            r["hdop"] = hd
        if r["satellites"] < 0:
            r["satellites"] = sv
        r["valid"] = r["valid"] and va
        if li < len(ignition) and ignition[li] >= 0:
            r["ignition"] = ignition[li]
        code[li] = OK
    if cur >= 0:
        cur_day, rtod = _close(out, cur, cur_tod, cur_day, rdate, rtod)
        if cur_day < 0:
            nfix -= 1
            for j in range(first, nlines):
                if code[j] == OK:
                    code[j] = NO_DATE
        else:
            rdate = cur_day
    nrej = 0
    for j in range(nlines):
        nrej += code[j] != OK and code[j] != BLANK
    rej = np.empty((nrej, 4), np.int64)
    k = 0
    for j in range(nlines):
        if code[j] != OK and code[j] != BLANK:
            rej[k, 0] = j
            rej[k, 1] = ls[j]
            rej[k, 2] = le[j]
            rej[k, 3] = code[j]
            k += 1
    return out, rej, nfix, rdate, rtod
