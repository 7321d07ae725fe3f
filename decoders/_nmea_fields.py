"""numba field parsers for the NMEA kernel: digits to exact integers, then one float op.

Each parser reads one field ``buf[s:e]`` in place (no slicing, no temporaries) and
reports errors as codes, never exceptions, so the kernel stays in nopython mode.
Numbers are built as integer mantissas and divided once by a power of ten, which is
what ``float(str)`` (and so pynmea2) gives, so the two agree to the last bit.
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

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

_POW10 = np.array([10.0**i for i in range(23)])


@njit(cache=True, inline="always")
def at(buf: U8, i: int) -> int:
    """``buf[i]`` for ``i >= 0``: an unsigned index spares numba's negative-index fix-up,
    three instructions per byte in the scan loop (~18% of the kernel's time)."""
    return int(buf[np.uint64(i)])


@njit(cache=True, inline="always")
def xor(buf: U8, s: int, e: int) -> int:
    """XOR of ``buf[s:e]``, the NMEA checksum: a loop of its own vectorises (5-7% of the
    kernel's time against folding it into the comma scan)."""
    x = 0
    for i in range(s, e):
        x ^= at(buf, i)
    return x


@njit(cache=True, inline="always")
def hexval(c: int) -> int:
    """Value of one hex digit, -1 if ``c`` is not one."""
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


@njit(cache=True, inline="always")
def digits(buf: U8, s: int, n: int) -> int:
    """Unsigned integer from exactly ``n`` digits at ``s``; -1 if any is not a digit."""
    v = 0
    for i in range(s, s + n):
        c = at(buf, i) - 48
        if c < 0 or c > 9:
            return -1
        v = v * 10 + c
    return v


@njit(cache=True)
def number(buf: U8, s: int, e: int, signed: bool) -> tuple[bool, float]:
    """Decimal ``[-]iii[.fff]`` as (ok, value), correctly rounded; NaN when empty.

    Decimals past the 18th significant digit are dropped (they cannot change a float
    that came from a GPS receiver); more than 18 integer digits is malformed. Not
    inlined: at eight call sites that doubled the cold compile time, for no speed.
    """
    if s == e:
        return True, np.nan
    neg = signed and at(buf, s) == 45
    if neg:
        s += 1
    mant = 0
    ndig = 0
    i = s
    while i < e:  # integer part
        c = at(buf, i) - 48
        if c < 0 or c > 9:
            break
        mant = mant * 10 + c
        ndig += 1
        i += 1
    if ndig > 18:
        return False, 0.0
    scale = 0
    if i < e:
        if at(buf, i) != 46:  # '.'
            return False, 0.0
        i += 1
        while i < e:
            c = at(buf, i) - 48
            if c < 0 or c > 9:
                return False, 0.0
            if ndig < 18:
                mant = mant * 10 + c
                ndig += 1
                scale += 1
            i += 1
    if ndig == 0:
        return False, 0.0
    v = float(mant)
    if scale > 0:
        v /= _POW10[scale]
    return True, -v if neg else v


@njit(cache=True, inline="always")
def coord(buf: U8, s: int, e: int, hs: int, he: int, maxdeg: int) -> tuple[int, float]:
    """(code, degrees) from ``[d]ddmm[.mmmm]`` plus a hemisphere field; NaN when empty.

    Minutes are ``(mm * 10**k + frac) / 10**k`` in exact integers, i.e. ``float("mm.frac")``.
    """
    if s == e and he - hs <= 1:
        return OK, np.nan
    if s == e or he - hs != 1:
        return MALFORMED, 0.0
    ipart = 0
    i = s
    while i < e:
        c = at(buf, i) - 48
        if c < 0 or c > 9:
            break
        ipart = ipart * 10 + c
        i += 1
    nint = i - s
    if nint < 3 or nint > 5:  # [d]dd degrees and two minute digits
        return MALFORMED, 0.0
    frac = 0
    k = 0
    if i < e:
        if at(buf, i) != 46:
            return MALFORMED, 0.0
        i += 1
        while i < e:
            c = at(buf, i) - 48
            if c < 0 or c > 9:
                return MALFORMED, 0.0
            if k < 12:
                frac = frac * 10 + c
                k += 1
            i += 1
    deg = ipart // 100
    mm = ipart % 100
    if mm >= 60 or deg > maxdeg:
        return OUT_OF_RANGE, 0.0
    v = deg + (mm * _POW10[k] + frac) / _POW10[k] / 60.0
    if v > maxdeg:
        return OUT_OF_RANGE, 0.0
    h = at(buf, hs)
    if h == (83 if maxdeg == 90 else 87):  # 'S' or 'W'
        return OK, -v
    if h == (78 if maxdeg == 90 else 69):  # 'N' or 'E'
        return OK, v
    return MALFORMED, 0.0


@njit(cache=True, inline="always")
def tod_us(buf: U8, s: int, e: int) -> int:
    """Time of day ``hhmmss[.ffffff]`` in microseconds; -1 malformed, -2 out of range."""
    if e - s < 6:
        return -1
    hh = digits(buf, s, 2)
    mm = digits(buf, s + 2, 2)
    ss = digits(buf, s + 4, 2)
    if hh < 0 or mm < 0 or ss < 0:
        return -1
    frac = 0
    if e - s > 6:
        if at(buf, s + 6) != 46:
            return -1
        mul = 100_000
        for i in range(s + 7, e):
            c = at(buf, i) - 48
            if c < 0 or c > 9:
                return -1
            frac += c * mul
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
def date(buf: U8, s: int, e: int) -> int:
    """``ddmmyy`` to days since epoch; yy < 80 is 20yy, else 19yy. -1 bad, -2 empty."""
    if s == e:
        return -2
    if e - s != 6:
        return -1
    dd = digits(buf, s, 2)
    mo = digits(buf, s + 2, 2)
    yy = digits(buf, s + 4, 2)
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
