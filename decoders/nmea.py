"""NMEA 0183 over a byte stream: RMC and GGA from any talker, u-blox ``PUBX,00``.

Frames are lines ending in ``\\n`` (a trailing ``\\r`` is dropped). The work is done by
the numba kernel in ``_nmea_kernels.py`` over one buffer per batch; this module only
maps its columns and codes to ``Decoded``.

Decisions a reader needs:

- A ``*HH`` checksum is optional (many trackers omit it); when present it must match,
  else ``bad_checksum``.
- Consecutive sentences with the same time of day are one fix: the first position wins,
  RMC adds date, speed (knots x 1.852) and course, GGA adds satellites, HDOP and altitude,
  and the fix is valid only if every sentence says so (RMC ``A``, GGA quality > 0,
  PUBX navStat ``G2``/``G3``/``D2``/``D3``/``RK``; ``NF``, ``DR``, ``TT`` are invalid).
- NMEA dates have no century: ``yy < 80`` is 20yy, otherwise 19yy.
- An epoch without its own date (GGA, PUBX) takes the last date seen on the session; a
  time of day more than 12 h before the last one is the next day (and 12 h after, the
  previous day). With no date known the epoch is rejected ``no_date``.
- PUBX altitude is above the ellipsoid, not mean sea level, so it is not stored.
- A sentence without a position is rejected ``no_fix``; a void (``V``) RMC with a
  position is a fix with ``valid=False``. Blank lines are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from decoders import _nmea_kernels as k
from decoders.model import Decoded, Reject, Session, empty_fixes

NAME = "nmea"
MAX_LINE = k.MAX_LINE

REJECT_CODES: dict[int, str] = {
    k.MALFORMED: "malformed",
    k.BAD_CHECKSUM: "bad_checksum",
    k.UNSUPPORTED: "unsupported_sentence",
    k.BAD_TIME: "bad_time",
    k.BAD_DATE: "bad_date",
    k.OUT_OF_RANGE: "out_of_range",
    k.NO_FIX: "no_fix",
    k.NO_DATE: "no_date",
    k.LINE_TOO_LONG: "line_too_long",
}

_DETAILS: dict[str, str] = {
    "malformed": "not a well-formed NMEA sentence",
    "bad_checksum": "checksum does not match",
    "unsupported_sentence": "only RMC, GGA and PUBX,00 are decoded",
    "bad_time": "time of day out of range",
    "bad_date": "date is not a calendar date",
    "out_of_range": "value out of range",
    "no_fix": "sentence carries no position",
    "no_date": "no date known for this time of day",
    "line_too_long": f"line longer than {MAX_LINE} bytes",
}


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines (without ``\\r\\n``) and the incomplete tail.

    A tail longer than ``MAX_LINE`` is handed out as a frame (to be rejected
    ``line_too_long``) so a device that never sends ``\\n`` cannot grow memory.
    """
    lines = buf.split(b"\n")
    rest = lines.pop()
    frames = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    if len(rest) > MAX_LINE:
        frames.append(rest)
        rest = b""
    return frames, rest


def decode_buffer(buf: bytes | npt.NDArray[np.uint8], *, session: Session) -> Decoded:
    """Decode a buffer of complete ``\\n``-separated sentences in one kernel call."""
    return decode_lines(buf, session=session)[0]


def decode_lines(
    buf: bytes | npt.NDArray[np.uint8], *, session: Session
) -> tuple[Decoded, npt.NDArray[np.int64]]:
    """``decode_buffer`` plus, per line, the row of the fix it went into (-1: none).

    The mapping lets a wrapping protocol (T55) attach per-line extras to the right fix.
    """
    arr = np.frombuffer(buf, dtype=np.uint8) if isinstance(buf, bytes) else buf
    raw = buf if isinstance(buf, bytes) else arr.tobytes()
    ls, le, code, epoch, day, t_us, fc, sats, valid, nfix, date, tod = k.decode_lines(
        arr, session.last_date_days, session.last_tod_ms
    )
    dated = np.append(day[:nfix] >= 0, False)  # the extra False serves epoch == -1
    code[(epoch >= 0) & ~dated[epoch]] = k.NO_DATE
    row = np.where(dated[epoch], (np.cumsum(dated) - 1)[epoch], -1)
    keep = dated[:nfix]
    fixes = empty_fixes(int(keep.sum()))
    fixes["fix_time_us"] = t_us[:nfix][keep]
    for j, name in enumerate(k.FLOAT_COLUMNS):
        fixes[name] = fc[:nfix, j][keep]
    fixes["satellites"] = sats[:nfix][keep]
    fixes["valid"] = valid[:nfix][keep]
    bad = np.flatnonzero((code > k.OK) & (code < k.BLANK))
    rejects = tuple(_reject(int(code[i]), raw[int(ls[i]) : int(le[i])]) for i in bad)
    session = replace(session, last_date_days=int(date), last_tod_ms=int(tod))
    return Decoded(fixes=fixes, session=session, rejects=rejects), row


def decode_frames(frames: Sequence[bytes], *, session: Session) -> Decoded:
    """Decode many lines at once (the batch path)."""
    return decode_buffer(b"\n".join(frames), session=session)


def decode(frame: bytes, *, session: Session) -> Decoded:
    """Decode one line."""
    return decode_frames([frame], session=session)


def _reject(code: int, raw: bytes) -> Reject:
    name = REJECT_CODES[code]
    return Reject(name, _DETAILS[name], raw.removesuffix(b"\r"))
