"""H02 (Sinotrack and other "HQ" trackers) over TCP: ``*XX,...#`` text and binary ``$`` frames.

Framing follows Traccar's ``H02FrameDecoder``: a text frame runs from ``*`` to ``#``
(line ends and blanks after it are skipped: some firmwares send ``# \\r\\n``); a ``$``
frame is binary with no length field, 32 bytes in the standard layout, and 42, 45, 46,
47 (45 and external voltage) or 48 bytes in variants; an ``X`` frame is 32 bytes.
Traccar picks 45 when a TCP read holds exactly 45 bytes, else 32. We decide from the
bytes instead, so the answer does not depend on how reads fall: a binary frame ends at
the first of those lengths where the next frame visibly starts (``*XX,``, or ``$``/``X``
followed by BCD id and time bytes), or where the buffer ends exactly. A read that ends
32 bytes into a longer variant is still split there, as in Traccar. With no such length
within 48 bytes the frame is taken as 32 bytes (Traccar's default). Bytes before a
marker (a ``$`` or ``X`` not followed by BCD bytes is none) come back as a frame of
their own, rejected ``garbage``.

Decoded: position frames (V1, V2, V5, VI1, V19 … every ``V`` type Traccar reads with
its generic pattern), V4 command confirmations that carry the position after the command
and its time (``V4,S17,130305,050316,A,…``, the protocol document's confirm message),
and binary frames. Counted as ``ignored`` (well-formed, nothing to store): V4 without a
position, NBR and V3 (cell towers, no position), LINK, HTBT, V0 and XT (heartbeats), VP1
with cells, and ``X`` frames. Where Traccar falls back on the server clock or the last
position, a pure decoder has neither, so these are rejected: VP1 positions (a date, no
time of day) and frames with an empty time or date (``no_time``/``no_date``), frames
with empty coordinates or zeros with no hemisphere (``0.0000,0``: no fix yet,
``no_fix``), and frames with an empty id on a connection no frame has named
(``no_identity``).

Replies: HTBT and V0 heartbeats are echoed as ``*XX,<id>,HTBT#`` (or ``V0``) (what Traccar sends
unconditionally; devices wait for it). The V1 and NBR acks Traccar sends carry the
server's wall-clock time, which a pure decoder does not have, and the protocol document
defines no acknowledgement for positions, so positions get no reply.

Identity: every frame names its device (an empty id means the connection's); another
id on the same connection is rejected ``identity_changed``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from decoders import _h02_binary, _h02_text
from decoders._text_frames import Batch, decode_all
from decoders.errors import DecodeError
from decoders.model import Decoded, Session

NAME = "h02"

BINARY_LENGTHS = (32, 42, 45, 46, 47, 48)
_STAR, _X = 0x2A, 0x58
# Where a frame starts: ``*XX,``; ``$`` or ``X`` followed by BCD id, time and date bytes.
# A prefix of either, cut by the end of the buffer, counts, so the caller waits for more.
# Time and date must be possible too: upper-case ASCII noise is BCD-looking ('R' = 0x52),
# but "46 o'clock" is not a time, so text like ``XRDPE3FG...`` cannot pass for a frame.
# Possessive ``{0,n}+`` before ``\Z``: a shorter run cannot end the buffer if the longest
# does not, so giving bytes back is wasted work (half the time of a search over ``$$$...``).


def _bcd(lo: int, hi: int) -> bytes:
    """A regex class of the BCD bytes for the numbers ``lo``..``hi``."""
    return (
        b"[" + b"".join(re.escape(bytes([n // 10 * 16 + n % 10])) for n in range(lo, hi + 1)) + b"]"
    )


_BCD = _bcd(0, 99)
_STAMP = _bcd(0, 23) + _bcd(0, 59) * 2 + _bcd(1, 31) + _bcd(1, 12) + _BCD  # hhmmss ddmmyy
_MARKER = re.compile(
    rb"\*(?:[A-Za-z][A-Za-z],|[A-Za-z]{0,2}+\Z)|[$X](?:"
    + _BCD * 5
    + _STAMP
    + rb"|"
    + _BCD
    + rb"{0,10}+\Z)"
)
_IGNORED = frozenset({"NBR", "V3", "LINK", "HTBT", "V0", "XT", "BS", "BASE"})
_HEARTBEATS = frozenset({"HTBT", "V0"})


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """Text and binary frames in stream order, and the incomplete tail."""
    frames: list[bytes] = []
    pos, end = 0, len(buf)
    while pos < end:
        c = buf[pos]
        if c in b" \t\r\n":
            pos += 1
        elif _MARKER.match(buf, pos) is None:
            m = _MARKER.search(buf, pos + 1)
            stop = end if m is None else m.start()
            frames.append(buf[pos:stop])
            pos = stop
        elif c == _STAR:
            stop = buf.find(b"#", pos)
            if stop < 0:
                break
            frames.append(buf[pos : stop + 1])
            pos = stop + 1
        else:
            length = _binary_length(buf, pos)
            if length == 0:
                break
            frames.append(buf[pos : pos + length])
            pos += length
    return frames, buf[pos:]


def _binary_length(buf: bytes, pos: int) -> int:
    """Length of the binary frame at ``pos``; 0 while the buffer cannot tell yet."""
    avail = len(buf) - pos
    if buf[pos] == _X:
        return BINARY_LENGTHS[0] if avail >= BINARY_LENGTHS[0] else 0
    for length in BINARY_LENGTHS:
        if avail == length or (avail > length and _MARKER.match(buf, pos + length)):
            return length
    return BINARY_LENGTHS[0] if avail > BINARY_LENGTHS[-1] else 0


def decode(frame: bytes, *, session: Session) -> Decoded:
    """Decode one frame."""
    return decode_frames([frame], session=session)


def decode_frames(frames: Sequence[bytes], *, session: Session) -> Decoded:
    """Decode frames in order for one connection."""
    return decode_all(_Batch(session), frames)


class _Batch(Batch):
    """H02 frames: text (``*…#``), binary (``$``) and ``X``."""

    __slots__ = ()

    def frame(self, frame: bytes) -> None:
        if frame[:1] == b"*" and frame.endswith(b"#"):
            self.text(frame)
        elif frame[:1] == b"$":
            pos = _h02_binary.decode(frame)
            self.identify(pos.device_id)
            self.positions.append(pos)
        elif frame[:1] == b"X" and len(frame) == BINARY_LENGTHS[0]:
            self.ignored += 1
        else:
            raise DecodeError("garbage", "bytes outside any H02 frame")

    def text(self, frame: bytes) -> None:
        fields = frame[1:-1].decode("ascii", "replace").split(",")
        if len(fields) < 3 or len(fields[0]) != 2:
            raise DecodeError("malformed", "not *XX,<id>,<type>")
        maker, ident, kind = fields[0], fields[1], fields[2]
        if ident and not ident.isdigit():
            raise DecodeError("bad_identity", f"device id {ident[:64]!r} is not decimal digits")
        device_id = self.identify(ident or None)
        if kind == "V4":
            start = _h02_text.confirmed_position(fields)
            if start is None:
                self.ignored += 1
            else:
                self.positions.append(_h02_text.decode(fields[:3] + fields[start:], device_id))
        elif kind in _IGNORED or (kind.upper() == "VP1" and fields[3:4] == ["V"]):
            self.ignored += 1
            if kind in _HEARTBEATS:
                self.replies.append(f"*{maker},{ident},{kind}#".encode("ascii", "replace"))
        elif kind.upper() == "VP1":
            raise DecodeError("no_time", "VP1 positions carry no time of day")
        elif kind.startswith("V"):
            self.positions.append(_h02_text.decode(fields, device_id))
        else:
            raise DecodeError("unsupported_type", f"H02 frame type {kind[:16]!r}")
