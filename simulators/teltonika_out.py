"""Teltonika FMB frames as a device sends them: IMEI login and AVL packets (TCP, UDP).

Layout from the Teltonika wiki "Codec" page (codec 8, 8 Extended, 16) with a correct
CRC-16/IBM, so ``decoders.teltonika`` accepts every packet built here. Coordinates are
written as int32 1e-7 degrees (rounded), times as UTC milliseconds (truncated).
Integer IO values take the narrowest of the 1-, 2-, 4- and 8-byte groups that holds
them; ``bytes`` values go to the variable-length NX group, which only 8 Extended has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from decoders import _teltonika_kernel as k
from simulators.errors import EncodeError

__all__ = [
    "CODEC_8",
    "CODEC_8E",
    "CODEC_16",
    "LOGIN_ACCEPT",
    "AvlRecord",
    "ack",
    "avl_packet",
    "crc16",
    "login",
    "udp_datagram",
]

CODEC_8 = k.CODEC_8
CODEC_8E = k.CODEC_8E
CODEC_16 = k.CODEC_16
LOGIN_ACCEPT = b"\x01"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_WIDTHS = (1, 2, 4, 8)


@dataclass(frozen=True)
class AvlRecord:
    """One AVL record; ``io`` maps IO id to an unsigned integer or (8E only) bytes."""

    time: datetime
    lat: float
    lon: float
    altitude_m: int = 0
    course_deg: int = 0
    satellites: int = 8
    speed_kmh: int = 0
    priority: int = 0
    event_id: int = 0
    io: Mapping[int, int | bytes] = field(default_factory=dict)


def crc16(data: bytes) -> int:
    """CRC-16/IBM (reflected 0xA001, initial 0), as the AVL packet trailer carries."""
    c = 0
    for b in data:
        c = (c >> 8) ^ int(k.CRC_TABLE[(c ^ b) & 0xFF])
    return c


def login(imei: str) -> bytes:
    """The first frame on a connection: 2-byte length and the IMEI in ASCII."""
    raw = imei.encode("ascii")
    return len(raw).to_bytes(2, "big") + raw


def ack(n: int) -> bytes:
    """The server's answer to a packet of ``n`` records."""
    return n.to_bytes(4, "big")


def avl_packet(records: Sequence[AvlRecord], *, codec: int = CODEC_8) -> bytes:
    """A TCP AVL packet: zero preamble, data length, data field, CRC."""
    data = _data_field(records, codec)
    return (
        b"\x00\x00\x00\x00" + len(data).to_bytes(4, "big") + data + crc16(data).to_bytes(4, "big")
    )


def udp_datagram(
    imei: str,
    records: Sequence[AvlRecord],
    *,
    codec: int = CODEC_8,
    packet_id: int = 0xCAFE,
    avl_packet_id: int = 1,
) -> bytes:
    """A UDP datagram: length, packet id, type 01, AVL packet id, IMEI, data field (no CRC)."""
    raw = imei.encode("ascii")
    body = (
        packet_id.to_bytes(2, "big")
        + b"\x01"
        + avl_packet_id.to_bytes(1, "big")
        + len(raw).to_bytes(2, "big")
        + raw
        + _data_field(records, codec)
    )
    return len(body).to_bytes(2, "big") + body


def _data_field(records: Sequence[AvlRecord], codec: int) -> bytes:
    if codec not in (CODEC_8, CODEC_8E, CODEC_16):
        raise EncodeError(f"codec {codec:#x} is not 8, 8E or 16")
    if not 1 <= len(records) <= 255:
        raise EncodeError(f"a packet holds 1-255 records, not {len(records)}")
    n = len(records).to_bytes(1, "big")
    return bytes([codec]) + n + b"".join(_record(r, codec) for r in records) + n


def _uint(value: int, width: int, what: str) -> bytes:
    try:
        return value.to_bytes(width, "big")
    except OverflowError as exc:
        raise EncodeError(f"{what} {value} does not fit {width} unsigned bytes") from exc


def _record(r: AvlRecord, codec: int) -> bytes:
    ms = (r.time - _EPOCH) // _MS
    if not -90.0 <= r.lat <= 90.0 or not -180.0 <= r.lon <= 180.0:
        raise EncodeError(f"position {r.lat}, {r.lon} out of range")
    idw = 1 if codec == CODEC_8 else 2
    cw = 2 if codec == CODEC_8E else 1
    out = bytearray()
    out += _uint(ms, 8, "time (ms)")
    out += _uint(r.priority, 1, "priority")
    out += round(r.lon * 1e7).to_bytes(4, "big", signed=True)
    out += round(r.lat * 1e7).to_bytes(4, "big", signed=True)
    try:
        out += r.altitude_m.to_bytes(2, "big", signed=True)
    except OverflowError as exc:
        raise EncodeError(f"altitude {r.altitude_m} m does not fit int16") from exc
    out += _uint(r.course_deg, 2, "course")
    out += _uint(r.satellites, 1, "satellites")
    out += _uint(r.speed_kmh, 2, "speed")
    out += _uint(r.event_id, idw, "event id")
    if codec == CODEC_16:
        out += b"\x00"  # generation type: on exit
    groups: dict[int, list[tuple[int, bytes]]] = {w: [] for w in (*_WIDTHS, 0)}
    for ident, value in r.io.items():
        if isinstance(value, bytes):
            if codec != CODEC_8E:
                raise EncodeError("variable-length IO values need codec 8 Extended")
            groups[0].append((ident, _uint(len(value), 2, "IO length") + value))
            continue
        if value < 0:
            raise EncodeError(f"IO {ident} value {value} is negative")
        width = next((w for w in _WIDTHS if value < 1 << (8 * w)), 0)
        groups[width].append((ident, _uint(value, width or 8, f"IO {ident} value")))
    out += _uint(len(r.io), cw, "IO count")
    for w in (*_WIDTHS, 0) if codec == CODEC_8E else _WIDTHS:
        out += _uint(len(groups[w]), cw if w else 2, "IO group size")
        for ident, raw in groups[w]:
            out += _uint(ident, idw if w else 2, "IO id") + raw
    return bytes(out)
