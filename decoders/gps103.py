"""GPS103 / TK103 (Coban, Xexun-style) over TCP: ``;``-terminated text lines.

Framing as Traccar's GPS103 server: a frame ends at ``;``, ``\\n`` or ``*`` (``\\r``
and empty pieces, e.g. the ``\\r\\n`` after a ``;``, are dropped; a ``*`` stays in its
frame because it marks the alternative format).

Messages (Coban GPRS protocol, sections 1, 2 and 4; Traccar ``Gps103ProtocolDecoder``):

- ``##,imei:<imei>,A`` logs in: reply ``LOAD``. If ingest refuses the device nothing
  is sent (``refused_reply`` is empty), so the device never starts uploading.
- ``<imei>`` alone is the heartbeat: reply ``ON``. It names the device too.
- ``imei:<imei>,<keyword>,<yymmddHHMM local>,<phone>,F,<hhmmss.sss UTC>,A|V,<lat>,N|S,
  <lon>,E|W,<speed knots>,<course>,<altitude>,<ignition>,...`` is a position. The UTC
  time of day comes from the hhmmss field and the date from the local-time field: the
  local-minus-UTC offset, folded into (-12 h, +12 h], is subtracted from the local
  date-time, so a 02:59 local / 23:59 UTC pair lands on the previous UTC day (as
  Traccar computes it). Hemispheres may also precede the number (``A,N,5306.6,E,...``);
  an empty longitude hemisphere is read as east, as Traccar reads it. A UTC field that
  is no time of day (``F,31.0``, ``F,0.0`` on some firmwares) is rejected ``no_time``:
  Traccar then takes the local time as UTC, which is off by the unknown zone offset.
- ``L`` lines (cell tower only), ``OBD`` lines and ``vr`` photo chunks have no position:
  counted as ``ignored``, except an ``L`` line with an alarm keyword, rejected ``no_fix``
  so the alarm is kept (Traccar files it at the last position, which a pure decoder lacks).
- The alternative format ending in ``*`` (decimal degrees, km/h, ``hhmmss,ddmmyy``) is
  decoded too; its ``imei:<imei>,L,*`` line (no GPS) is counted as ``ignored``.

Keywords: ``tracker`` is routine; the alarms the document names map to ``ALARMS``
(``help me`` sos, ``low battery``, ``move`` movement, ``speed`` overspeed, ``stockade``
geofence, ``ac alarm``, ``door alarm`` door, ``accident alarm``, ``sensor alarm``
vibration, ``acc on``/``acc off`` which also set ignition). Other alarm keywords (those
ending in ``alarm``, ``DTC``, ``oil…``, ``T:…``) become ``other`` with the keyword in
``alarm_code``. ``help me`` is answered ``**,imei:<imei>,E;`` (Traccar: stops the SOS
resend), also when the line has no fix. Empty speed, course or altitude are unknown
(NaN), not 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from decoders import _gps103_position
from decoders._text_frames import Batch, decode_all
from decoders.errors import DecodeError
from decoders.model import Decoded, Session

NAME = "gps103"

LOGIN_REPLY = b"LOAD"
HEARTBEAT_REPLY = b"ON"
_TERMINATORS = bytes.maketrans(b";*", b"\n\n")
_STAR = 0x2A
_LOGIN_MAX = 30  # Traccar: a line with "imei:" this short is a login
_LOGIN_ID = re.compile(r"imei:([0-9]+),")
_DIGITS = re.compile(r"[0-9]+")


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """Frames without their ``;``/``\\n`` terminator (``*`` kept), and the incomplete tail.

    One ``split`` over a copy with every terminator made ``\\n``: linear in ``buf`` (a
    regex that looks for a terminator from every offset is quadratic on a buffer that
    has none, seconds for 64 KiB, on the event loop).
    """
    frames: list[bytes] = []
    start = 0
    for piece in buf.translate(_TERMINATORS).split(b"\n")[:-1]:
        end = start + len(piece)  # buf[end] is the terminator
        frame = buf[start : end + 1] if buf[end] == _STAR else piece
        start = end + 1
        frame = frame.strip(b"\r")
        if frame:
            frames.append(frame)
    return frames, buf[start:]


def decode(frame: bytes, *, session: Session) -> Decoded:
    """Decode one frame."""
    return decode_frames([frame], session=session)


def decode_frames(frames: Sequence[bytes], *, session: Session) -> Decoded:
    """Decode frames in order for one connection."""
    return decode_all(_Batch(session), frames)


class _Batch(Batch):
    """GPS103 lines: login, heartbeat and position."""

    __slots__ = ()

    def frame(self, frame: bytes) -> None:
        text = frame.decode("ascii", "replace")
        if "imei:" in text and len(text) <= _LOGIN_MAX and not text.endswith("*"):
            m = _LOGIN_ID.search(text)
            if m is None:
                raise DecodeError("malformed", "login names no IMEI")
            self.identify(m.group(1))
            self.replies.append(LOGIN_REPLY)
            return
        if text[:1].isdigit():
            start = text.find("imei:")
            if start < 0:
                if not _DIGITS.fullmatch(text):
                    raise DecodeError("malformed", "heartbeat is not an IMEI")
                self.identify(text)
                self.replies.append(HEARTBEAT_REPLY)
                self.ignored += 1
                return
            at = len(self.replies)
            self.report(text[start:])  # raises for a bad line: then no ON either
            self.replies.insert(at, HEARTBEAT_REPLY)
            return
        if not text.startswith("imei:"):
            raise DecodeError("garbage", "not a GPS103 line")
        self.report(text)

    def report(self, text: str) -> None:
        fields = text.split(",")
        imei = fields[0][5:]
        if not _DIGITS.fullmatch(imei):
            raise DecodeError("bad_identity", f"IMEI {imei[:64]!r} is not decimal digits")
        self.identify(imei)
        keyword = fields[1] if len(fields) > 1 else ""
        if text.endswith("*"):
            if keyword == "L":  # the alternative format's "no GPS" line
                self.ignored += 1
            else:
                self.positions.append(_gps103_position.alternative(fields))
        elif keyword == "OBD" or keyword.startswith("vr"):
            self.ignored += 1
        elif fields[4:5] == ["L"]:
            self.cell_only(imei, keyword)
        else:
            self.positions.append(_gps103_position.regular(fields))
            if keyword == "help me":
                self.replies.append(f"**,imei:{imei},E;".encode("ascii"))

    def cell_only(self, imei: str, keyword: str) -> None:
        """An ``L`` line: cell tower, no position. Routine ones are counted; an alarm is
        rejected ``no_fix`` so it is kept, and SOS is still answered (else it repeats)."""
        if keyword == "help me":
            self.replies.append(f"**,imei:{imei},E;".encode("ascii"))
        if _gps103_position.alarm_attributes(keyword):
            raise DecodeError("no_fix", f"{keyword[:32]!r} alarm without a GPS fix (cell only)")
        self.ignored += 1
