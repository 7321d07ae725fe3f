"""NMEA 0183 over a byte stream: RMC and GGA from any talker, u-blox ``PUBX,00``.

Frames are lines ending in ``\\n`` (a trailing ``\\r`` is dropped). The work is done by
the numba kernel in ``_nmea_kernels.py`` over one buffer per batch, which writes the fix
rows itself; this module only slices them and names the rejects, so one small packet
costs a few microseconds.

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
- Well-formed sentences of other types (GSV, GSA, VTG, proprietary ``$P…``) are counted
  in ``Decoded.ignored``, not rejected: trackers send them every second and they would
  swamp the dead letters. Anything that does not look like NMEA is still ``malformed``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from decoders import _nmea_fields as f
from decoders import _nmea_kernels as k
from decoders.model import Decoded, Reject, Session

NAME = "nmea"
MAX_LINE = k.MAX_LINE

REJECT_CODES: dict[int, str] = {
    f.MALFORMED: "malformed",
    f.BAD_CHECKSUM: "bad_checksum",
    f.UNSUPPORTED: "unsupported_sentence",
    f.BAD_TIME: "bad_time",
    f.BAD_DATE: "bad_date",
    f.OUT_OF_RANGE: "out_of_range",
    f.NO_FIX: "no_fix",
    f.NO_DATE: "no_date",
    f.LINE_TOO_LONG: "line_too_long",
}

# A standard (talker + 3-letter type) or proprietary ($P...) NMEA address followed by a
# field: such a sentence of a type we do not store is ignored and counted, not kept.
_ADDRESS = re.compile(rb"[$!](?:[A-Z][A-Z0-9][A-Z]{3}|P[A-Z0-9]{2,8}),")

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
    raw = buf if isinstance(buf, bytes) else buf.tobytes()
    return _decode(raw, session, k.NO_IGNITION, None)


def decode_frames(frames: Sequence[bytes], *, session: Session) -> Decoded:
    """Decode many lines at once (the batch path)."""
    return _decode(b"\n".join(frames), session, k.NO_IGNITION, None)


def decode(frame: bytes, *, session: Session) -> Decoded:
    """Decode one line."""
    return _decode(frame, session, k.NO_IGNITION, None)


def decode_lines(
    lines: Sequence[bytes],
    *,
    session: Session,
    raws: Sequence[bytes],
    ignition: Sequence[int] = (),
) -> Decoded:
    """Decode lines that contain no ``\\n`` for a wrapping protocol (T55).

    A reject carries ``raws[i]`` (the line as the device sent it) rather than the
    sentence; ``ignition[i]`` (-1 unknown, 0, 1; empty for none) goes into line i's fix.
    """
    ign = np.array(ignition, np.int8) if ignition else k.NO_IGNITION
    return _decode(b"\n".join(lines), session, ign, raws)


def _decode(buf: bytes, session: Session, ignition: k.I8, raws: Sequence[bytes] | None) -> Decoded:
    out, rej, nfix, date, tod = k.decode(
        np.frombuffer(buf, np.uint8), ignition, session.last_date_days, session.last_tod_ms
    )
    # A view: the unused rows (at most one per line) live as long as the batch, which
    # costs less than copying the used ones.
    fixes = out[:nfix]
    if date != session.last_date_days or tod != session.last_tod_ms:
        session = Session(device_id=session.device_id, last_date_days=date, last_tod_ms=tod)
    if not len(rej):
        return Decoded(fixes, session)
    rejects: list[Reject] = []
    ignored = 0
    for i, s, e, code in rej:
        sentence = buf[int(s) : int(e)]
        if code == f.UNSUPPORTED and _ADDRESS.match(sentence):
            ignored += 1
            continue
        rejects.append(_reject(int(code), raws[int(i)] if raws is not None else sentence))
    return Decoded(fixes, session, rejects=tuple(rejects), ignored=ignored)


def _reject(code: int, raw: bytes) -> Reject:
    name = REJECT_CODES[code]
    return Reject(name, _DETAILS[name], raw)
