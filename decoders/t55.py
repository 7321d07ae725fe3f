"""T55: NMEA sentences over TCP after an identity line, as Traccar's ``t55`` protocol.

Frames are lines of at most 1024 bytes (Traccar uses ``LineBasedFrameDecoder(1024)``).
A device names itself once per connection with one of the lines Traccar accepts:
``$PGID,<id>*CS``, ``$PCPTI,<id>,...``, ``$DEVID,<id>*CS``, ``$GPFID,<id>``,
``IMEI <id>``, ``$IMEI=<id>`` or a bare hex/decimal id such as a 15-digit IMEI; some
prefix each sentence with the id instead (``<id>$GPRMC``, ``<id>,$GPRMC``,
``<n>/<id>/$GPRMC``). Then it streams NMEA (RMC, GGA of any talker, ``PUBX,00``),
decoded by ``decoders.nmea``. Some firmwares append ``,sats,imei,ignition,...`` after
the RMC checksum: the IMEI identifies the device and ignition goes into the fix.

Decisions: NMEA before any identity is rejected ``no_identity`` (Traccar keeps one such
position for Maxon devices; we do not guess); a second, different identity on the same
connection is rejected ``identity_changed`` so fixes are never given to the wrong device;
other Traccar sentences ($GPRMA, $TRCCR, $GPIOP, QZE) are ``unsupported_sentence``.
No replies: Traccar only sends ``OK1`` when a per-device ``t55.ack`` flag is set.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from functools import reduce

import numpy as np

from decoders import nmea
from decoders.model import Decoded, FixArray, Reject, Session, empty_fixes

NAME = "t55"

_ID_LINES = (
    re.compile(rb"\$PGID,([^*,]+)(?:\*[0-9A-Fa-f]{2})?"),
    re.compile(rb"\$DEVID,([^*,]+)(?:\*[0-9A-Fa-f]{2})?"),
    re.compile(rb"\$PCPTI,([^*,]+),[^*]*(?:\*[0-9A-Fa-f]{2})?"),
    re.compile(rb"\$GPFID,([^*,]+)"),
    re.compile(rb"IMEI ([0-9]{1,20})"),
    re.compile(rb"\$IMEI=([0-9]{1,20})"),
    re.compile(rb"([0-9A-F]{6,20})"),
)
_CHECKSUM = re.compile(rb"\$([^*]*)\*([0-9A-Fa-f]{2})")
_PREFIX = re.compile(rb"(?:[0-9]+/)?([0-9A-Za-z]{1,20})[,/]?(\$.*)")
_TAIL = re.compile(rb"(\$[^*]*\*[0-9A-Fa-f]{2}),[0-9]*,([0-9]{1,20}),([01])(?:,.*)?")
_UNSUPPORTED = (b"$GPRMA", b"$TRCCR", b"$GPIOP", b"QZE,")


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """Lines, exactly as NMEA."""
    return nmea.split_frames(buf)


def decode(frame: bytes, *, session: Session) -> Decoded:
    """Decode one line."""
    return decode_frames([frame], session=session)


def decode_frames(frames: Sequence[bytes], *, session: Session) -> Decoded:
    """Decode lines in order; runs of NMEA between identity lines go to the kernel at once."""
    batch = _Batch(session)
    for frame in frames:
        line = frame.removesuffix(b"\r")
        if len(line) > nmea.MAX_LINE:
            batch.reject("line_too_long", f"line longer than {nmea.MAX_LINE} bytes", line)
            continue
        ident, sentence = _identity(line)
        if ident == b"":
            batch.reject("bad_checksum", "checksum does not match", line)
            continue
        if ident is not None and not batch.identify(ident, line):
            continue
        if sentence is None:
            continue
        if sentence.startswith(_UNSUPPORTED):
            batch.reject("unsupported_sentence", "T55 sentence not decoded", line)
        elif batch.session.device_id is None:
            batch.reject("no_identity", "NMEA before any identity line", line)
        else:
            batch.add(sentence, line)
    return batch.finish()


def _identity(line: bytes) -> tuple[bytes | None, bytes | None]:
    """(device id named by the line, NMEA sentence left to decode); id b"" = bad checksum."""
    for rx in _ID_LINES:
        m = rx.fullmatch(line)
        if m is not None:
            return (m.group(1) if _checksum_ok(line) else b""), None
    m = _TAIL.fullmatch(line)
    if m is not None:
        return (m.group(2) if _checksum_ok(m.group(1)) else b""), line
    if not line.startswith((b"$", b"!")):
        m = _PREFIX.fullmatch(line)
        if m is not None:
            return m.group(1), m.group(2)
    return None, line


def _checksum_ok(line: bytes) -> bool:
    """True unless the line ends in a ``*HH`` checksum that does not match."""
    m = _CHECKSUM.fullmatch(line)
    return m is None or reduce(lambda a, b: a ^ b, m.group(1), 0) == int(m.group(2), 16)


class _Batch:
    """Accumulates fixes, rejects and session across one ``decode_frames`` call."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.device_id: str | None = None
        self.fixes: list[FixArray] = []
        self.rejects: list[Reject] = []
        self.pending: list[bytes] = []  # NMEA sentences not yet decoded
        self.raws: list[bytes] = []
        self.ignition: list[int] = []  # per pending sentence: -1 unknown, 0, 1

    def identify(self, ident: bytes, line: bytes) -> bool:
        """Adopt ``ident``; False (and a reject) if the connection already has another."""
        new = ident.decode("ascii", "replace")
        old = self.session.device_id
        if old is not None and old != new:
            self.reject("identity_changed", f"connection belongs to {old}", line)
            return False
        self.device_id = new
        if old is None:
            self.flush()
            self.session = replace(self.session, device_id=new)
        return True

    def add(self, sentence: bytes, line: bytes) -> None:
        tail = _TAIL.fullmatch(sentence)
        self.ignition.append(int(tail.group(3)) if tail else -1)
        self.pending.append(tail.group(1) if tail else sentence)
        self.raws.append(line)

    def reject(self, code: str, detail: str, raw: bytes) -> None:
        self.flush()
        self.rejects.append(Reject(code, detail, raw))

    def flush(self) -> None:
        if not self.pending:
            return
        out, row = nmea.decode_lines(b"\n".join(self.pending), session=self.session)
        fixes = out.fixes.copy()
        for r, ign in zip(row, self.ignition, strict=True):
            if r >= 0 and ign >= 0:
                fixes["ignition"][r] = ign
        self.fixes.append(fixes)
        by_sentence = dict(zip(self.pending, self.raws, strict=True))
        self.rejects.extend(replace(rj, raw=by_sentence.get(rj.raw, rj.raw)) for rj in out.rejects)
        self.session = out.session
        self.pending, self.raws, self.ignition = [], [], []

    def finish(self) -> Decoded:
        self.flush()
        fixes = np.concatenate(self.fixes) if self.fixes else empty_fixes(0)
        return Decoded(
            fixes=fixes,
            session=self.session,
            device_id=self.device_id,
            rejects=tuple(self.rejects),
        )
