"""numba kernel: many NMEA 0183 sentences in one ``np.uint8`` buffer to fix columns.

One pass over the buffer, no Python objects, so a batch of 100k sentences costs
milliseconds. Every helper is plain Python that numba compiles; with
``NUMBA_DISABLE_JIT=1`` the same code runs (slowly) as the reference twin.

Rules (documented in ``decoders/nmea.py``): checksum optional but checked when present;
RMC and GGA for any talker, u-blox ``PUBX,00``; consecutive sentences with the same time
of day merge into one fix; dateless epochs take the running date with midnight rollover.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

# Per-line result codes (mapped to strings in decoders/nmea.py).
OK = 0
MALFORMED = 1
BAD_CHECKSUM = 2
UNSUPPORTED = 3
BAD_TIME = 4
BAD_DATE = 5
OUT_OF_RANGE = 6
NO_FIX = 7
NO_DATE = 8
LINE_TOO_LONG = 9
BLANK = 10  # empty line: ignored, not a reject

MAX_LINE = 1024  # bytes, as Traccar's LineBasedFrameDecoder(1024)
MAX_FIELDS = 40
DAY_MS = 86_400_000
HALF_DAY_MS = 43_200_000

KIND_RMC = 1
KIND_GGA = 2
KIND_PUBX = 3
_PUBX = 0x50554258  # b"PUBX"
_00 = 0x3030  # b"00"

U8 = npt.NDArray[np.uint8]
I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

FLOAT_COLUMNS = ("lat", "lon", "speed_kmh", "course_deg", "altitude_m", "hdop")

_POW10 = np.array([10.0**i for i in range(23)])
_KNOTS_TO_KMH = 1.852


@njit(cache=True, inline="always")
def _hexval(c: int) -> int:
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


@njit(cache=True)
def _word(buf: U8, s: int) -> int:
    """Bytes ``s..s+3`` (or fewer, up to a ','/'*' or the end) as one int, to compare tags."""
    v = 0
    for i in range(s, min(s + 4, len(buf))):
        c = int(buf[i])
        if c == 44 or c == 42:
            break
        v = v * 256 + c
    return v


@njit(cache=True, inline="always")
def _digits(buf: U8, s: int, n: int) -> int:
    """Unsigned integer from exactly ``n`` digits at ``s``; -1 if any is not a digit."""
    v = 0
    for i in range(s, s + n):
        c = int(buf[i])
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
    return v


@njit(cache=True, inline="always")
def _number(buf: U8, s: int, e: int, signed: bool) -> tuple[bool, float]:
    """Decimal ``[-]iii[.fff]`` as (ok, value), correctly rounded.

    The digits form an exact integer mantissa divided once by a power of ten, which is
    what ``float(str)`` gives; decimals past the 18th digit are dropped.
    """
    neg = False
    if signed and s < e and buf[s] == 45:
        neg = True
        s += 1
    mant = 0
    ndig = 0
    scale = 0
    dot = False
    for i in range(s, e):
        c = int(buf[i])
        if c == 46 and not dot:
            dot = True
        elif c < 48 or c > 57:
            return False, 0.0
        elif ndig < 18:
            mant = mant * 10 + (c - 48)
            ndig += 1
            if dot:
                scale += 1
        elif not dot:
            return False, 0.0
    if ndig == 0:
        return False, 0.0
    v = float(mant)
    if scale > 0:
        v /= _POW10[scale]
    return True, -v if neg else v


@njit(cache=True, inline="always")
def _coord(buf: U8, s: int, e: int, hs: int, he: int, maxdeg: int) -> tuple[int, float]:
    """(code, degrees) from ``[d]ddmm[.mmmm]`` plus a hemisphere field; NaN when empty.

    Minutes are ``(mm * 10**k + frac) / 10**k`` in exact integers, i.e. ``float("mm.frac")``.
    """
    if s == e and he - hs <= 1:
        return OK, np.nan
    if s == e or he - hs != 1:
        return MALFORMED, 0.0
    ipart = 0
    nint = 0
    frac = 0
    k = 0
    dot = False
    for i in range(s, e):
        c = int(buf[i])
        if c == 46 and not dot:
            dot = True
        elif c < 48 or c > 57:
            return MALFORMED, 0.0
        elif not dot:
            ipart = ipart * 10 + (c - 48)
            nint += 1
        elif k < 12:
            frac = frac * 10 + (c - 48)
            k += 1
    if nint < 3 or nint > 5:  # [d]dd degrees and two minute digits
        return MALFORMED, 0.0
    deg = ipart // 100
    mm = ipart % 100
    if mm >= 60 or deg > maxdeg:
        return OUT_OF_RANGE, 0.0
    v = deg + (mm * _POW10[k] + frac) / _POW10[k] / 60.0
    if v > maxdeg:
        return OUT_OF_RANGE, 0.0
    h = buf[hs]
    if (maxdeg == 90 and h == 83) or (maxdeg == 180 and h == 87):  # 'S', 'W'
        return OK, -v
    if (maxdeg == 90 and h == 78) or (maxdeg == 180 and h == 69):  # 'N', 'E'
        return OK, v
    return MALFORMED, 0.0


@njit(cache=True, inline="always")
def _tod_us(buf: U8, s: int, e: int) -> int:
    """Time of day ``hhmmss[.ffffff]`` in microseconds; -1 malformed, -2 out of range."""
    if e - s < 6:
        return -1
    hh = _digits(buf, s, 2)
    mm = _digits(buf, s + 2, 2)
    ss = _digits(buf, s + 4, 2)
    if hh < 0 or mm < 0 or ss < 0:
        return -1
    frac = 0
    if e - s > 6:
        if buf[s + 6] != 46:
            return -1
        mul = 100_000
        for i in range(s + 7, e):
            c = int(buf[i])
            if c < 48 or c > 57:
                return -1
            frac += (c - 48) * mul
            mul //= 10
    if hh > 23 or mm > 59 or ss > 60:  # 60: leap second
        return -2
    return ((hh * 60 + mm) * 60 + ss) * 1_000_000 + frac


@njit(cache=True)
def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 (Howard Hinnant's algorithm, proleptic Gregorian)."""
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@njit(cache=True, inline="always")
def _date(buf: U8, s: int, e: int) -> int:
    """``ddmmyy`` to days since epoch; yy < 80 is 20yy, else 19yy. -1 bad, -2 empty."""
    if s == e:
        return -2
    if e - s != 6:
        return -1
    dd = _digits(buf, s, 2)
    mo = _digits(buf, s + 2, 2)
    yy = _digits(buf, s + 4, 2)
    if dd < 1 or mo < 1 or mo > 12 or yy < 0:
        return -1
    year = 2000 + yy if yy < 80 else 1900 + yy
    mdays = 31
    if mo == 2:
        leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0
        mdays = 29 if leap else 28
    elif mo == 4 or mo == 6 or mo == 9 or mo == 11:
        mdays = 30
    if dd > mdays:
        return -1
    return days_from_civil(year, mo, dd)


@njit(cache=True, inline="always")
def _opt(buf: U8, fs: I64, fe: I64, k: int, nf: int, signed: bool) -> tuple[bool, float]:
    """Optional numeric field ``k``: (ok, value), NaN when absent or empty."""
    if k >= nf or fs[k] == fe[k]:
        return True, np.nan
    return _number(buf, fs[k], fe[k], signed)


@njit(cache=True)
def decode_lines(
    buf: U8, last_date_days: int, last_tod_ms: int
) -> tuple[I64, I64, I8, I64, I64, I64, F64, I64, B, int, int, int]:
    """Decode every '\\n'-separated line of ``buf``.

    Returns per line ``(start, end, code, epoch)``, then per epoch ``day``, ``time_us``,
    the float columns ``FLOAT_COLUMNS``, ``satellites`` and ``valid`` (over-allocated: use
    the first ``nfix``; ``day < 0`` means no date was known, so the caller rejects that
    epoch's lines ``no_date``), then ``nfix`` and the running ``(date_days, tod_ms)``.
    """
    n = len(buf)
    nlines = 1
    for i in range(n):
        if buf[i] == 10:
            nlines += 1
    ls = np.empty(nlines, np.int64)
    le = np.empty(nlines, np.int64)
    code = np.full(nlines, BLANK, np.int8)
    epoch = np.full(nlines, -1, np.int64)
    t_us = np.empty(nlines, np.int64)
    tod = np.empty(nlines, np.int64)
    fday = np.full(nlines, -1, np.int64)
    fc = np.full((nlines, 6), np.nan)  # FLOAT_COLUMNS
    sats = np.full(nlines, -1, np.int64)
    valid = np.ones(nlines, np.bool_)
    fs = np.empty(MAX_FIELDS, np.int64)
    fe = np.empty(MAX_FIELDS, np.int64)
    vals = np.empty(6)
    date = last_date_days
    tod_ms = last_tod_ms
    nfix = 0
    cur = -1  # open epoch (index into fix columns)
    start = 0
    for li in range(nlines):
        # One pass to the end of the line: XOR for the checksum and the field bounds,
        # both up to the first '*'.
        s = start
        x = 0
        star = -1
        nf = 0
        fs[0] = s + 1
        end = s + 1 if s < n and buf[s] != 10 else s
        while end < n:
            c = int(buf[end])
            if c == 10 or c == 42:
                break
            x ^= c
            if c == 44 and nf < MAX_FIELDS - 1:
                fe[nf] = end
                nf += 1
                fs[nf] = end + 1
            end += 1
        if end < n and buf[end] == 42:
            star = end
            while end < n and buf[end] != 10:
                end += 1
        ls[li] = s
        le[li] = end
        start = end + 1
        e = end
        if e > s and buf[e - 1] == 13:
            e -= 1
        if e == s:
            continue
        if e - s > MAX_LINE:
            code[li] = LINE_TOO_LONG
            continue
        if buf[s] != 36 and buf[s] != 33:  # '$' '!'
            code[li] = MALFORMED
            continue
        if nf == MAX_FIELDS - 1:
            code[li] = MALFORMED
            continue
        if star >= 0:
            if e - star != 3:
                code[li] = MALFORMED
                continue
            h1 = _hexval(int(buf[star + 1]))
            h2 = _hexval(int(buf[star + 2]))
            if h1 < 0 or h2 < 0:
                code[li] = MALFORMED
                continue
            if h1 * 16 + h2 != x:
                code[li] = BAD_CHECKSUM
                continue
            e = star
        fe[nf] = e
        nf += 1
        a0 = fs[0]
        alen = fe[0] - a0
        kind = 0
        if buf[s] == 36 and alen == 5:
            t1 = buf[a0 + 2]
            t2 = buf[a0 + 3]
            t3 = buf[a0 + 4]
            if t1 == 82 and t2 == 77 and t3 == 67:
                kind = KIND_RMC
            elif t1 == 71 and t2 == 71 and t3 == 65:
                kind = KIND_GGA
            for i in range(a0, a0 + 2):
                if buf[i] < 65 or buf[i] > 90:
                    kind = 0
        elif alen == 4 and _word(buf, a0) == _PUBX and nf > 1 and _word(buf, fs[1]) == _00:
            kind = KIND_PUBX
        if kind == 0:
            code[li] = UNSUPPORTED
            continue
        # field positions per sentence type
        if kind == KIND_RMC:
            ft, fl = 1, 3
            need = 10
        elif kind == KIND_GGA:
            ft, fl = 1, 2
            need = 10
        else:
            ft, fl = 2, 3
            need = 19
        if nf < need:
            code[li] = MALFORMED
            continue
        c1, la = _coord(buf, fs[fl], fe[fl], fs[fl + 1], fe[fl + 1], 90)
        c2, lo = _coord(buf, fs[fl + 2], fe[fl + 2], fs[fl + 3], fe[fl + 3], 180)
        if c1 != OK or c2 != OK:
            code[li] = c1 if c1 != OK else c2
            continue
        if np.isnan(la) or np.isnan(lo):
            code[li] = NO_FIX
            continue
        tu = _tod_us(buf, fs[ft], fe[ft])
        if tu < 0:
            code[li] = MALFORMED if (tu == -1 and fs[ft] != fe[ft]) else BAD_TIME
            continue
        ok = True
        day = -1
        sp = np.nan
        co = np.nan
        al = np.nan
        hd = np.nan
        sv = -1
        svf = np.nan
        va = True
        if kind == KIND_RMC:
            st = buf[fs[2]] if fe[2] - fs[2] == 1 else 0
            if st != 65 and st != 86:  # 'A' 'V'
                code[li] = MALFORMED
                continue
            va = st == 65
            ok1, kn = _opt(buf, fs, fe, 7, nf, False)
            ok2, co = _opt(buf, fs, fe, 8, nf, False)
            ok = ok1 and ok2
            sp = kn * _KNOTS_TO_KMH
            day = _date(buf, fs[9], fe[9])
            if day == -1:
                code[li] = BAD_DATE
                continue
        elif kind == KIND_GGA:
            okq, q = _opt(buf, fs, fe, 6, nf, False)
            oks, svf = _opt(buf, fs, fe, 7, nf, False)
            okh, hd = _opt(buf, fs, fe, 8, nf, False)
            oka, al = _opt(buf, fs, fe, 9, nf, True)
            ok = okq and oks and okh and oka
            va = not (q == 0.0 or np.isnan(q))
            sv = -1 if np.isnan(svf) or svf > 999 else int(svf)
            if nf > 10 and fe[10] - fs[10] == 1 and buf[fs[10]] != 77:  # unit not 'M'
                al = np.nan
        else:
            ns = fs[8]
            if fe[8] - ns != 2:
                code[li] = MALFORMED
                continue
            n1 = buf[ns]
            n2 = buf[ns + 1]
            va = ((n1 == 71 or n1 == 68) and (n2 == 50 or n2 == 51)) or (n1 == 82 and n2 == 75)
            ok1, sp = _opt(buf, fs, fe, 11, nf, False)
            ok2, co = _opt(buf, fs, fe, 12, nf, False)
            okh, hd = _opt(buf, fs, fe, 15, nf, False)
            oks, svf = _opt(buf, fs, fe, 18, nf, False)
            ok = ok1 and ok2 and okh and oks
            sv = -1 if np.isnan(svf) or svf > 999 else int(svf)
        if not ok:
            code[li] = MALFORMED
            continue
        if co > 360.0 or svf > 999.0 or hd > 999.0:
            code[li] = OUT_OF_RANGE
            continue
        # merge into the open epoch or open a new one
        if cur < 0 or tod[cur] != tu or (day >= 0 and fday[cur] >= 0 and fday[cur] != day):
            if cur >= 0:
                date, tod_ms = _close(cur, tod, fday, t_us, date, tod_ms)
            cur = nfix
            nfix += 1
            tod[cur] = tu
        if day >= 0:
            fday[cur] = day
        vals[0], vals[1], vals[2], vals[3], vals[4], vals[5] = la, lo, sp, co, al, hd
        for j in range(6):  # the first sentence of the epoch that knows a value wins
            if np.isnan(fc[cur, j]):
                fc[cur, j] = vals[j]
        if sats[cur] < 0:
            sats[cur] = sv
        valid[cur] = valid[cur] and va
        epoch[li] = cur
        code[li] = OK
    if cur >= 0:
        date, tod_ms = _close(cur, tod, fday, t_us, date, tod_ms)
    return ls, le, code, epoch, fday, t_us, fc, sats, valid, nfix, date, tod_ms


@njit(cache=True)
def _close(
    f: int,
    tod: I64,
    fday: I64,
    t_us: I64,
    date: int,
    tod_ms: int,
) -> tuple[int, int]:
    """Give epoch ``f`` its date (own, or running date with rollover); new running state."""
    tms = tod[f] // 1000
    day = fday[f]
    if day < 0 and date >= 0:
        day = date
        if tod_ms >= 0 and tod_ms - tms > HALF_DAY_MS:
            day += 1
        elif tod_ms >= 0 and tms - tod_ms > HALF_DAY_MS:
            day -= 1
        fday[f] = day
    if day < 0:
        return date, tod_ms
    t_us[f] = day * (DAY_MS * 1000) + tod[f]
    return day, tms
