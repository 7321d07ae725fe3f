"""Teltonika FMB/FMC/FMM over TCP (and UDP): IMEI login, AVL codec 8, 8 Extended, 16 and 7.

Source: Teltonika wiki "Codec" (sections "Codec 8", "Codec 8 Extended", "Codec 16",
"Codec 12", "Codec 13") and "Teltonika Data Sending Protocols"; Traccar's
``TeltonikaFrameDecoder``/``TeltonikaProtocolDecoder`` for the ``0xFF`` keep-alive byte.

TCP frames: a login is a 2-byte length and the IMEI in ASCII, answered ``0x01``
(``0x00`` if ingest refuses the device). An AVL packet is four zero bytes, a 4-byte
data field length, the data field (codec id, N1, records, N2) and a 4-byte CRC whose
upper two bytes are zero and lower two the CRC-16/IBM of the data field; it is
answered with N1 as a 4-byte big-endian number, which tells the device it may delete
those records. The records are parsed by the numba kernel in ``_teltonika_kernel.py``.

Decisions a reader needs:

- A packet with a bad CRC, N1 != N2, or records that do not exactly fill the data field
  is rejected (``bad_crc``, ``bad_count``, ``bad_length``) and NOT acked: the device
  keeps the records and sends them again.
- A record that parses but cannot be true (time outside 1980-2100: ``bad_date``;
  latitude/longitude out of range: ``bad_coordinates``) is rejected on its own and
  the packet is still acked: resending would never fix it and would block the
  device's queue behind it.
- A record is valid when it has satellites and is not at exactly (0, 0). Without a
  fix the device repeats its last known position with 0 satellites (wiki: "Codec 8",
  GPS element); it is stored with ``valid=False``. A device that never had a fix
  sends (0, 0): that is stored as the device said, also ``valid=False``, so the IO
  values it carries (ignition, voltages) are not lost.
- IO 239 ignition, 16 total odometer (m) and 182 HDOP (/10) go to fix columns; 240
  motion, 21 GSM signal, 66/67 voltages (mV), 199 trip odometer, 69 GNSS status, 24
  speed and 181 PDOP (/10) get vocabulary names; every other IO is ``io<id>`` (unsigned
  integer, or the hex string of an 8 Extended variable-length value). The codec 16
  generation type is not kept.
- Codec 12/13/14 packets (command responses) with a good CRC are counted as
  ``ignored``; GH3000's codec 7 is decoded (``_teltonika_io.gh3000``; its records
  without coordinates are counted as ``ignored``); other codecs are ``unsupported_type``.
- Packets whose records only fill the data field with a group of 16-byte values after
  the 8-byte group (Traccar's 'extended' devices) are decoded that way; the 16-byte
  values are kept as ``io<id>`` hex strings.
- Packets before a login are ``no_identity``; a second login naming another IMEI is
  ``identity_changed`` (no reply either way). A login must be 15 ASCII digits
  (``bad_identity`` otherwise, no reply).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from decoders import _teltonika_io as _io
from decoders import _teltonika_kernel as k
from decoders.errors import DecodeError
from decoders.model import Decoded, FixArray, Reject, Session, empty_fixes

NAME = "teltonika"
# Longest frame: FMB codec 8 packets stay under 1280 bytes, but 8 Extended variable
# length values (and codec 12 photo chunks) are larger; 64 KiB bounds what we buffer.
MAX_FRAME = 65_536
MAX_LOGIN = 64  # longest login body we frame; a real one is 15 digits
PING = b"\xff"  # keep-alive byte between packets (Traccar TeltonikaFrameDecoder)
LOGIN_ACCEPT = b"\x01"
LOGIN_REFUSE = b"\x00"
COMMAND_CODECS = frozenset({0x0C, 0x0D, 0x0E})  # codec 12, 13, 14: command traffic
CODEC_GH3000 = 0x07  # decoded in Python (_teltonika_io.gh3000)
HEADER = 8  # preamble + data field length
MIN_DATA = 3  # codec id, N1, N2

REJECT_CODES: dict[int, tuple[str, str]] = {
    k.BAD_LENGTH: ("bad_length", "records do not fill the data field exactly"),
    k.BAD_CRC: ("bad_crc", "CRC-16/IBM of the data field does not match"),
    k.BAD_COUNT: ("bad_count", "record counts N1 and N2 differ"),
    k.UNSUPPORTED: ("unsupported_type", "codec not decoded"),
    k.BAD_DATE: ("bad_date", "record time outside 1980-2100"),
    k.BAD_COORDINATES: ("bad_coordinates", "latitude or longitude out of range"),
}


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """Logins, AVL packets and keep-alive bytes, and the incomplete tail.

    Raises ``DecodeError`` when the stream cannot be a Teltonika stream any more: a
    login length over ``MAX_LOGIN``, a non-zero preamble, or a data length that is
    too short to hold codec id and counts or makes the frame longer than ``MAX_FRAME``.
    """
    frames: list[bytes] = []
    pos, n = 0, len(buf)
    while pos < n:
        if buf[pos] == 0xFF:
            frames.append(PING)
            pos += 1
            continue
        if n - pos < 2:
            break
        length = (buf[pos] << 8) | buf[pos + 1]
        if length:
            if length > MAX_LOGIN:
                raise DecodeError("bad_length", f"login length {length} > {MAX_LOGIN}")
            end = pos + 2 + length
        else:
            if any(buf[pos + 2 : pos + 4]):
                raise DecodeError("bad_preamble", "AVL packet preamble is not four zero bytes")
            if n - pos < HEADER:
                break
            data = int.from_bytes(buf[pos + 4 : pos + HEADER], "big")
            if data < MIN_DATA or HEADER + data + 4 > MAX_FRAME:
                raise DecodeError("bad_length", f"AVL data field length {data}")
            end = pos + HEADER + data + 4
        if end > n:
            break
        frames.append(buf[pos:end])
        pos = end
    return frames, buf[pos:]


def decode(frame: bytes, *, session: Session) -> Decoded:
    """Decode one frame."""
    return decode_frames([frame], session=session)


def decode_frames(frames: Sequence[bytes], *, session: Session) -> Decoded:
    """Decode frames of one TCP connection in order; all AVL packets in one kernel call."""
    device = session.device_id
    login: str | None = None
    ignored = 0
    # In frame order: a reply, a reject, or the index of a packet sent to the kernel.
    steps: list[bytes | Reject | int] = []
    packets: list[bytes] = []
    for frame in frames:
        if frame == PING:
            ignored += 1
        elif not frame:
            continue
        elif frame[:2] == b"\x00\x00":
            if device is None:
                steps.append(Reject("no_identity", "AVL packet before the IMEI login", frame))
            elif _tcp_header_ok(frame):
                steps.append(len(packets))
                packets.append(frame)
            else:
                steps.append(Reject("bad_length", "not a whole AVL packet", frame))
        else:
            imei, reject = _login(frame)
            if reject is not None:
                steps.append(reject)
            elif device is not None and imei != device:
                steps.append(Reject("identity_changed", f"connection belongs to {device}", frame))
            else:
                device = login = imei
                steps.append(LOGIN_ACCEPT)
    if device != session.device_id:
        session = replace(session, device_id=device)
    starts = [HEADER] * len(packets)
    ends = [len(p) - 5 for p in packets]
    crcs = [len(p) - 4 for p in packets]
    batch = _run(packets, starts, ends, crcs)
    replies: list[bytes] = []
    rejects: list[Reject] = []
    for step in steps:
        if isinstance(step, bytes):
            replies.append(step)
        elif isinstance(step, Reject):
            rejects.append(step)
        else:
            ack = batch.packet(step, rejects)
            if ack is not None:
                replies.append(ack.to_bytes(4, "big"))
    return Decoded(
        fixes=batch.fixes,
        session=session,
        attributes=batch.attributes,
        replies=tuple(replies),
        device_id=login,
        rejects=tuple(rejects),
        ignored=ignored + batch.ignored,
        refused_reply=LOGIN_REFUSE if login is not None else b"",
    )


def decode_datagram(buf: bytes, *, session: Session) -> Decoded:
    """One UDP datagram: its header names the device, its reply echoes the ids.

    Header (wiki "Teltonika Data Sending Protocols", UDP): length, packet id (2),
    packet type (1), AVL packet id (1), IMEI length (2), IMEI; then codec id .. N2 with
    no CRC. The reply is ``0005``, packet id, ``01``, AVL packet id, records accepted.
    """
    if len(buf) < 8 or int.from_bytes(buf[:2], "big") != len(buf) - 2:
        return Decoded(empty_fixes(0), session, rejects=(Reject("bad_length", "UDP length", buf),))
    id_len = int.from_bytes(buf[6:8], "big")
    start = 8 + id_len
    imei, reject = _imei(buf[8:start], buf)
    if reject is None and len(buf) - start < MIN_DATA:
        reject = Reject("bad_length", "UDP datagram without AVL data", buf)
    if reject is not None or imei is None:
        return Decoded(empty_fixes(0), session, rejects=(reject,) if reject else ())
    session = replace(session, device_id=imei)
    batch = _run([buf], [start], [len(buf) - 1], [-1])
    rejects: list[Reject] = []
    ack = batch.packet(0, rejects)
    replies: tuple[bytes, ...] = ()
    if ack is not None:
        replies = (b"\x00\x05" + buf[2:4] + b"\x01" + buf[5:6] + bytes([ack]),)
    return Decoded(
        fixes=batch.fixes,
        session=session,
        attributes=batch.attributes,
        replies=replies,
        device_id=imei,
        rejects=tuple(rejects),
        ignored=batch.ignored,
    )


def _tcp_header_ok(frame: bytes) -> bool:
    """Zero preamble and a data field length that matches the frame."""
    return (
        len(frame) >= HEADER + MIN_DATA + 4
        and frame[:4] == b"\x00\x00\x00\x00"
        and int.from_bytes(frame[4:HEADER], "big") == len(frame) - HEADER - 4
    )


def _login(frame: bytes) -> tuple[str | None, Reject | None]:
    """(IMEI, None) for a good login frame, else (None, the reject)."""
    if len(frame) < 2 or int.from_bytes(frame[:2], "big") != len(frame) - 2:
        return None, Reject("bad_length", "login length does not match the frame", frame)
    return _imei(frame[2:], frame)


def _imei(body: bytes, raw: bytes) -> tuple[str | None, Reject | None]:
    if len(body) != 15 or not body.isdigit():
        return None, Reject("bad_identity", "IMEI must be 15 ASCII digits", raw)
    return body.decode("ascii"), None


class _Batch:
    """The kernel's output for a list of packets: fixes, attributes and per-packet codes."""

    __slots__ = (
        "attributes",
        "code",
        "codecs",
        "count",
        "ends",
        "fixes",
        "ignored",
        "packets",
        "rec_rejects",
        "starts",
    )

    def __init__(
        self,
        packets: list[bytes],
        starts: list[int],
        ends: list[int],
        buf: bytes,
        out: tuple[Any, ...],
    ) -> None:
        fixes, recs, io, val, rej, code, count, nrec, nio, nrej = out
        self.packets = packets
        self.starts, self.ends = starts, ends
        self.ignored = 0
        self.codecs = [p[s] for p, s in zip(packets, starts, strict=True)]
        self.fixes: FixArray = fixes[:nrec]
        self.code: list[int] = code.tolist()
        self.count: list[int] = count.tolist()
        self.attributes = tuple(_io.attributes(buf, recs[:nrec], io[:nio], val[:nio]))
        by_packet: dict[int, list[Reject]] = {}
        for pk, i, rc in rej[:nrej].tolist():
            name, detail = REJECT_CODES[rc]
            by_packet.setdefault(pk, []).append(Reject(name, f"record {i}: {detail}", packets[pk]))
        self.rec_rejects = by_packet

    def packet(self, i: int, rejects: list[Reject]) -> int | None:
        """Append packet ``i``'s rejects; its ack (record count) or None for no ack.

        A command response (codec 12/13/14) that passed the CRC is counted as ignored;
        a GH3000 packet (codec 7) is parsed here and its fixes follow the kernel's.
        """
        rejects.extend(self.rec_rejects.get(i, ()))
        if self.code[i] == k.UNSUPPORTED and self.codecs[i] in COMMAND_CODECS:
            self.ignored += 1
            return None
        if self.code[i] == k.UNSUPPORTED and self.codecs[i] == CODEC_GH3000:
            return self._gh3000(i, rejects)
        if self.code[i] != k.OK:
            name, detail = REJECT_CODES[self.code[i]]
            rejects.append(Reject(name, detail, self.packets[i]))
            return None
        return self.count[i]

    def _gh3000(self, i: int, rejects: list[Reject]) -> int | None:
        packet, s = self.packets[i], self.starts[i]
        gh = _io.gh3000(packet[s + 2 : self.ends[i]], self.count[i])
        if gh is None:
            name, detail = REJECT_CODES[k.BAD_LENGTH]
            rejects.append(Reject(name, detail, packet))
            return None
        for rec, rc in gh.rejects:
            name, detail = REJECT_CODES[rc]
            rejects.append(Reject(name, f"record {rec}: {detail}", packet))
        self.fixes = np.concatenate([self.fixes, gh.fixes])
        self.attributes += tuple(gh.attributes)
        self.ignored += gh.ignored
        return self.count[i]


def _run(packets: list[bytes], starts: list[int], ends: list[int], crcs: list[int]) -> _Batch:
    """One kernel call over ``packets`` joined; offsets are given per packet."""
    buf = packets[0] if len(packets) == 1 else b"".join(packets)  # no copy for one
    base = np.zeros(len(packets), np.int64)
    if len(packets) > 1:
        np.cumsum([len(p) for p in packets[:-1]], out=base[1:])
    out = k.decode(
        np.frombuffer(buf, np.uint8),
        base + np.array(starts, np.int64),
        base + np.array(ends, np.int64),
        np.where(np.array(crcs, np.int64) < 0, -1, base + np.array(crcs, np.int64)),
    )
    return _Batch(packets, starts, ends, buf, out)
