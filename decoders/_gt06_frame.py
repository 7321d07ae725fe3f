"""GT06 framing: where a packet starts and ends, its CRC, and how to build one.

Packet (GT06 protocol V1.8 §4 "Data packet format"): start ``78 78`` and a 1-byte
length, or ``79 79`` and a 2-byte length (extended packets of newer models, Traccar
``Gt06FrameDecoder``); then protocol number, content, 2-byte information serial and the
2-byte CRC-ITU (CRC-16/X.25) of everything from the length to the serial; then the stop
bits ``0D 0A``. The length counts protocol number + content + serial + CRC.

Splitting trusts the length field, then checks the stop bits. When they are not where
the length says (a corrupted length), the frame is cut at the next ``0D 0A`` instead,
as Traccar does, so the damaged packet is rejected alone and the next one is intact.
Bytes before a start marker come back as a frame of their own (``garbage`` for the
decoder); no input is ever dropped and no frame is longer than ``MAX_FRAME``, so the
splitter resynchronises on its own and never raises.
"""

from __future__ import annotations

import binascii
import struct

SHORT = b"\x78\x78"
LONG = b"\x79\x79"
STOP = b"\r\n"
# 2048 bytes: the largest packets (7979 string / OBD replies) are a few hundred bytes;
# a 7979 length beyond this is taken as noise and resynchronised past.
MAX_FRAME = 2048
MIN_LENGTH = 5  # protocol number + serial + CRC, no content
_U16 = struct.Struct(">H")

# CRC-16/X.25 is the bit-reflected CCITT CRC: reflect every byte, run binascii's
# C implementation of the unreflected one, reflect the result. 10x a Python table loop.
_REFLECT = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def crc_itu(data: bytes) -> int:
    """CRC-16/X.25, the document's "CRC-ITU": poly 0x1021 reflected, init/xorout 0xFFFF."""
    r = binascii.crc_hqx(data.translate(_REFLECT), 0xFFFF)
    return (_REFLECT[r & 0xFF] << 8 | _REFLECT[r >> 8]) ^ 0xFFFF


def build(proto: int, content: bytes, serial: int, *, extended: bool = False) -> bytes:
    """A complete packet: header, length, protocol, content, serial, CRC, stop bits."""
    n = 5 + len(content)
    head = LONG + _U16.pack(n) if extended else SHORT + bytes((n,))
    body = head[2:] + bytes((proto,)) + content + _U16.pack(serial & 0xFFFF)
    return head[:2] + body + _U16.pack(crc_itu(body)) + STOP


def frame_size(buf: bytes, pos: int) -> int:
    """Total bytes of the frame whose start marker is at ``pos``; 0 if the header is
    incomplete, -1 if the length cannot be true."""
    if buf[pos] == 0x78:
        if len(buf) < pos + 3:
            return 0
        length, head = buf[pos + 2], 3
    else:
        if len(buf) < pos + 4:
            return 0
        length, head = _U16.unpack_from(buf, pos + 2)[0], 4
    size = head + length + 2
    return size if length >= MIN_LENGTH and size <= MAX_FRAME else -1


class _Find:
    """``buf.find(needle, start)`` for a ``start`` that only grows: a search resumes
    where the last one ended, so a whole split reads each byte once per needle.
    Searching afresh from every frame start is quadratic when the needle is far away
    or absent (``78 78`` repeated with no ``0D 0A``: tens of seconds for 256 KiB)."""

    __slots__ = ("at", "buf", "needle", "since")

    def __init__(self, buf: bytes, needle: bytes) -> None:
        self.buf, self.needle = buf, needle
        self.since, self.at = 0, buf.find(needle)  # invariant: at == buf.find(needle, since)

    def __call__(self, start: int) -> int:
        if start < self.since or 0 <= self.at < start:
            self.since, self.at = start, self.buf.find(self.needle, start)
        return self.at


class _Scan:
    """The searches one split makes: next start marker (either kind), next stop bits."""

    __slots__ = ("long", "short", "stop")

    def __init__(self, buf: bytes) -> None:
        self.short, self.long, self.stop = _Find(buf, SHORT), _Find(buf, LONG), _Find(buf, STOP)

    def next_start(self, start: int) -> int:
        """Index of the next ``7878`` or ``7979`` at or after ``start``, or -1."""
        a, b = self.short(start), self.long(start)
        if a < 0 or (0 <= b < a):
            return b
        return a


def _noise(buf: bytes, pos: int, end: int, out: list[bytes]) -> None:
    """Bytes ``pos:end`` as garbage frames of at most MAX_FRAME bytes."""
    for i in range(pos, end, MAX_FRAME):
        out.append(buf[i : min(end, i + MAX_FRAME)])


def split(buf: bytes) -> tuple[list[bytes], bytes]:
    """Complete frames (and noise runs) in order, and the unconsumed tail; linear in
    ``buf`` (``pos`` only moves forward, and so do the searches)."""
    out: list[bytes] = []
    scan = _Scan(buf)
    pos, n = 0, len(buf)
    while pos < n:
        if buf.startswith(SHORT, pos) or buf.startswith(LONG, pos):
            size = frame_size(buf, pos)
            if size == 0 or (size > 0 and pos + size > n):
                break  # wait for the rest of the frame
            if size > 0 and buf.startswith(STOP, pos + size - 2):
                out.append(buf[pos : pos + size])
                pos += size
                continue
            end = _cut_damaged(buf, pos, scan)
            if end < 0:
                break
            _noise(buf, pos, end, out)  # one frame unless it is longer than MAX_FRAME
            pos = end
            continue
        nxt = scan.next_start(pos + 1)
        if nxt < 0:  # keep a last byte that may begin a start marker
            nxt = n - 1 if buf[-1] in (0x78, 0x79) else n
            if nxt <= pos:
                break
        _noise(buf, pos, nxt, out)
        pos = nxt
    return out, buf[pos:]


def _cut_damaged(buf: bytes, pos: int, scan: _Scan) -> int:
    """End of a frame whose length field lies: after the next stop bits, or at the next
    start marker if that comes first; -1 to wait for more bytes."""
    stop = scan.stop(pos + 2)
    nxt = scan.next_start(pos + 2)
    if stop >= 0 and (nxt < 0 or stop + 2 <= nxt):
        return stop + 2
    if nxt >= 0:
        return nxt
    return len(buf) if len(buf) - pos >= MAX_FRAME else -1


WIFI_TYPES = (0x17, 0x69)


def wifi_frame(frame: bytes) -> bool:
    """A WiFi + cell packet of older models (0x17/0x69, Traccar ``MSG_WIFI``): no serial
    and no CRC, the length byte counts the WiFi stations. Layout: start, count, protocol,
    BCD date-time (6), count x (MAC 6, signal 1), cell count, MCC (2), MNC (1), cell
    count x (LAC 2, cell id 2, signal 1), stop bits; only that exact size is accepted.
    """
    if len(frame) < 16 or not frame.startswith(SHORT) or frame[3] not in WIFI_TYPES:
        return False
    if not frame.endswith(STOP) or not frame[4:10].hex().isdigit():
        return False
    cells = 10 + 7 * frame[2]
    return len(frame) > cells and len(frame) == cells + 4 + 5 * frame[cells] + 2
