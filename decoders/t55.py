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
from decoders.model import Decoded, FixArray, Reject, Session, empty_fixes, valid_device_id

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
# A line starting with '$' but none of these is no identity line: skip the regexes.
_ID_HEADS = (b"$PGID,", b"$DEVID,", b"$PCPTI,", b"$GPFID,", b"$IMEI=")
_CHECKSUM = re.compile(rb"\$([^*]*)\*([0-9A-Fa-f]{2})")
_PREFIX = re.compile(rb"(?:[0-9]+/)?([0-9A-Za-z]{1,20})[,/]?(\$.*)")
_TAIL = re.compile(rb"(\$[^*]*\*[0-9A-Fa-f]{2}),[0-9]*,([0-9]{1,20}),([01])(?:,.*)?")
_UNSUPPORTED = (b"$GPRMA", b"$TRCCR", b"$GPIOP", b"QZE,")
_TOO_LONG = f"line longer than {nmea.MAX_LINE} bytes"


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """Lines, exactly as NMEA."""
    return nmea.split_frames(buf)


def decode(frame: bytes, *, session: Session) -> Decoded:
    """Decode one line."""
    return decode_frames([frame], session=session)


def decode_frames(frames: Sequence[bytes], *, session: Session) -> Decoded:
    """Decode lines in order; runs of NMEA between identity lines go to the kernel at once.

    A frame holding several lines (an MQTT payload) is split at ``\\n`` first.
    """
    batch = _Batch(session)
    for frame in frames:
        for line in _lines(frame) if b"\n" in frame else (frame,):
            batch.line(line.removesuffix(b"\r"))
    return batch.finish()


def _lines(frame: bytes) -> list[bytes]:
    lines = frame.split(b"\n")
    return lines[:-1] if lines[-1] == b"" else lines


def _identity(line: bytes) -> tuple[bytes | None, bytes | None, int]:
    """(device id named by the line, NMEA sentence left to decode, ignition -1/0/1).

    Id b"" means a bad checksum (for an id prefixed to a sentence, also a missing one).
    The sentence comes without the ignition tail.
    """
    plain = line.startswith(b"$") and not line.startswith(_ID_HEADS)
    if not plain:
        for rx in _ID_LINES:
            m = rx.fullmatch(line)
            if m is not None:
                return (m.group(1) if _checksum_ok(line) else b""), None, -1
    m = _tail(line)
    if m is not None:
        return (m.group(2) if _checksum_ok(m.group(1)) else b""), m.group(1), int(m.group(3))
    if not line.startswith((b"$", b"!")):
        m = _PREFIX.fullmatch(line)
        if m is not None:
            tail = _tail(m.group(2))
            if tail is not None:
                return m.group(1), tail.group(1), int(tail.group(3))
            if b"*" not in m.group(2) or not _checksum_ok(m.group(2)):
                return b"", None, -1  # an id guessed from line noise must be vouched for
            return m.group(1), m.group(2), -1
    return None, line, -1


def _tail(sentence: bytes) -> re.Match[bytes] | None:
    """The ``,sats,imei,ignition`` extension; cheap refusal unless ``*HH,`` follows the '$'."""
    star = sentence.find(b"*")
    if star < 0 or sentence[star + 3 : star + 4] != b",":
        return None
    return _TAIL.fullmatch(sentence)


def _checksum_ok(line: bytes) -> bool:
    """True unless the line ends in a ``*HH`` checksum that does not match."""
    m = _CHECKSUM.fullmatch(line)
    return m is None or reduce(lambda a, b: a ^ b, m.group(1), 0) == int(m.group(2), 16)


class _Batch:
    """Accumulates fixes, rejects and session across one ``decode_frames`` call."""

    __slots__ = (
        "device_id",
        "fixes",
        "has_ignition",
        "ignition",
        "ignored",
        "pending",
        "raws",
        "rejects",
        "session",
    )

    def __init__(self, session: Session) -> None:
        self.session = session
        self.device_id: str | None = None
        self.fixes: list[FixArray] = []
        self.rejects: list[Reject] = []
        self.ignored = 0
        self.pending: list[bytes] = []  # NMEA sentences not yet decoded
        self.raws: list[bytes] = []
        self.ignition: list[int] = []  # per pending sentence: -1 unknown, 0, 1
        self.has_ignition = False

    def line(self, line: bytes) -> None:
        if len(line) > nmea.MAX_LINE:
            self.reject("line_too_long", _TOO_LONG, line)
            return
        ident, sentence, ignition = _identity(line)
        if ident == b"":
            self.reject("bad_checksum", "checksum does not match", line)
            return
        if ident is not None and not self.identify(ident, line):
            return
        if sentence is None:
            return
        if sentence.startswith(_UNSUPPORTED):
            self.reject("unsupported_sentence", "T55 sentence not decoded", line)
        elif self.session.device_id is None:
            self.reject("no_identity", "NMEA before any identity line", line)
        else:
            self.pending.append(sentence)
            self.raws.append(line)
            self.ignition.append(ignition)
            self.has_ignition = self.has_ignition or ignition >= 0

    def identify(self, ident: bytes, line: bytes) -> bool:
        """Adopt ``ident``; False (and a reject) if the connection already has another."""
        new = ident.decode("ascii", "replace")
        if not valid_device_id(new):
            self.reject("bad_identity", "device id must be 1-64 printable ASCII characters", line)
            return False
        old = self.session.device_id
        if old is not None and old != new:
            self.reject("identity_changed", f"connection belongs to {old}", line)
            return False
        self.device_id = new
        if old is None:
            self.flush()
            self.session = replace(self.session, device_id=new)
        return True

    def reject(self, code: str, detail: str, raw: bytes) -> None:
        self.flush()
        self.rejects.append(Reject(code, detail, raw))

    def flush(self) -> None:
        if not self.pending:
            return
        out = nmea.decode_lines(
            self.pending,
            session=self.session,
            raws=self.raws,
            ignition=self.ignition if self.has_ignition else (),
        )
        self.fixes.append(out.fixes)
        self.rejects.extend(out.rejects)
        self.ignored += out.ignored
        self.session = out.session
        self.pending, self.raws, self.ignition = [], [], []
        self.has_ignition = False

    def finish(self) -> Decoded:
        self.flush()
        if len(self.fixes) == 1:
            fixes = self.fixes[0]
        else:
            fixes = np.concatenate(self.fixes) if self.fixes else empty_fixes(0)
        return Decoded(
            fixes=fixes,
            session=self.session,
            device_id=self.device_id,
            rejects=tuple(self.rejects),
            ignored=self.ignored,
        )
