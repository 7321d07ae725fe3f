"""GT06 / Concox (GT06N, GT02, JM-VL01, GK310 …) over TCP: login, status, location, alarm.

Sources: "GT06 GPS Tracker Communication Protocol" V1.8 (Concox) §4 packet format,
§5.1 login, §5.2 location 0x12, §5.3 status 0x13, §5.4 alarm 0x16; the JM-VL01/GK310
documents for 0x22, 0x23, 0x26, 0x27, 0x8A, 0x94 and 0xA0; Traccar's
``Gt06FrameDecoder``/``Gt06ProtocolDecoder`` (and its test captures, run in
``tests/decoders/test_captures_binary.py``) for the rest: 0x11, 0x1E, 0x34 (X1), 0x70
(modular), the 'Current position!' text of 0x21, the AZ735 0x32/0x33 and the CRC-less
WiFi packets. Framing lives in ``_gt06_frame``, field layouts in ``_gt06_body``.

Decisions a reader needs:

- Replies, as the documents ask: login (0x01), status/heartbeat (0x13, 0x23), alarms
  (0x16, 0x26, 0x27, 0x32, 0x19) get ``78 78 05 <proto> <serial> <crc> 0D 0A`` (the
  header style of the request); a time request (0x8A) gets the current UTC time; a
  modular packet (0x70) gets a short-header ack as Traccar sends it. Location packets
  (0x10, 0x11, 0x12, 0x1E, 0x22, 0x34, 0x37, 0xA0), information (0x94), strings
  (0x15, 0x21) and cell/WiFi lists get none: the documents say the server does not
  answer locations, and we send no commands whose answers would need one.
- A bad CRC, a length that does not match, or wrong stop bits is rejected without an
  ack so the device sends it again. A packet whose CRC is good but whose content cannot
  be true (``bad_date``, ``bad_coordinates``, content too short) is rejected and still
  acked when its type is acked: sending it again would not fix it.
- Times are UTC as sent (the documents say GMT), unless the login names a time zone:
  devices that send one report local time (Traccar issues 325, 604), so it is
  subtracted from every fix of the connection, as Traccar does.
- The GPS 'positioned' bit is ``valid``; an unpositioned fix keeps the coordinates the
  device sent. Exactly 0/0 without a fix is no position at all: counted as ``ignored``.
- Heartbeats, information packets (0x94), LBS-only alarms (0x19), cell and WiFi lists
  (0x17/0x69 without CRC, 0x18, 0x24, 0x28, 0x2C, 0x2E, 0x33, 0xA1, 0xA2, 0xA7, 0xF3, an
  0x11 too short for a GPS block) and
  command answers (0x15, 0x21 other than a position) carry no position, so they are no
  fix; all but heartbeats are counted as ``ignored``. Packets with data we do not decode
  (OBD, serial pass-through, photos, 0x95/0xA3-0xA5 alarms) stay ``unsupported_type``.
- Non-login packets before a login are ``no_identity``; a second login naming another
  IMEI is ``identity_changed`` (no reply). The IMEI is the 16 BCD digits without the
  leading 0 (Traccar drops the first digit).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from decoders import _gt06_body as b
from decoders import _gt06_frame as f
from decoders.attributes import ALARM, ALARM_CODE, GSM_SIGNAL, SERIAL, STATUS
from decoders.model import Decoded, FixArray, Reject, Session, empty_fixes, valid_device_id

NAME = "gt06"
MAX_FRAME = f.MAX_FRAME

MSG_LOGIN = 0x01
MSG_GPS = 0x10
MSG_GPS_LBS_6 = 0x11
MSG_GPS_LBS = 0x12
MSG_STATUS = 0x13
MSG_GPS_LBS_STATUS = 0x16
MSG_LBS_STATUS = 0x19
MSG_GPS_LBS_EXTEND = 0x1E
MSG_STRING_INFO = 0x21
MSG_GPS_LBS_2 = 0x22
MSG_HEARTBEAT = 0x23
MSG_GPS_LBS_STATUS_2 = 0x26
MSG_GPS_LBS_STATUS_3 = 0x27
MSG_GPS_LBS_STATUS_4 = 0x32
MSG_AZ735_ALARM = 0x33  # extended header; with the short one it is a WiFi list
MSG_X1_GPS = 0x34
MSG_GPS_LBS_3 = 0x37
MSG_GPS_MODULAR = 0x70
MSG_TIME_REQUEST = 0x8A
MSG_INFO = 0x94
MSG_GPS_LBS_4G = 0xA0

ALARM_TYPES = frozenset(
    {MSG_GPS_LBS_STATUS, MSG_GPS_LBS_STATUS_2, MSG_GPS_LBS_STATUS_3, MSG_GPS_LBS_STATUS_4}
)
LOCATION_TYPES = frozenset(
    {
        MSG_GPS,
        MSG_GPS_LBS_6,
        MSG_GPS_LBS,
        MSG_GPS_LBS_EXTEND,
        MSG_GPS_LBS_2,
        MSG_X1_GPS,
        MSG_GPS_LBS_3,
        MSG_GPS_LBS_4G,
        MSG_GPS_MODULAR,
        MSG_STRING_INFO,
    }
)
ACKED = ALARM_TYPES | {MSG_STATUS, MSG_HEARTBEAT, MSG_LBS_STATUS}
# Well-formed packets without a position to store: information, cell/WiFi lists, the
# string answers to commands (0x15); counted as ignored, not dead-lettered.
NO_POSITION = frozenset({MSG_INFO, 0x15, 0x18, 0x24, 0x28, 0x2C, 0x2E, 0xA1, 0xA2, 0xA7, 0xF3})
AZ735_ALARMS = {0xA2: "low_battery", 0xA3: "low_battery", 0xA5: "door"}

# One decoded fix: GPS block, ignition, odometer, attributes.
_Row = tuple[b.Gps, int, float, dict[str, Any]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """Whole packets and noise runs in order, and the unconsumed tail (never raises)."""
    return f.split(buf)


def decode(frame: bytes, *, session: Session) -> Decoded:
    """Decode one packet."""
    return decode_frames([frame], session=session)


def decode_frames(
    frames: Sequence[bytes], *, session: Session, now: Callable[[], datetime] = _utcnow
) -> Decoded:
    """Decode packets of one connection in order; ``now`` answers time requests."""
    rows: list[_Row] = []
    replies: list[bytes] = []
    rejects: list[Reject] = []
    ignored = 0
    shifts: list[int] = []  # per row: the connection's UTC offset when it was read
    device_id: str | None = None
    for frame in frames:
        head = _check(frame)
        if isinstance(head, Reject):
            if head.code == "bad_length" and f.wifi_frame(frame):  # no CRC to check
                if session.device_id is None:
                    rejects.append(Reject("no_identity", "packet before any login", frame))
                else:
                    ignored += 1
                continue
            rejects.append(head)
            continue
        proto, body, serial, extended = head
        if proto == MSG_LOGIN:
            imei, problem = _login(body, session)
            if problem is not None:
                rejects.append(Reject(problem[0], problem[1], frame))
                continue
            device_id = imei
            session = replace(session, device_id=imei, utc_offset_s=_login_zone(body))
            replies.append(f.build(MSG_LOGIN, b"", serial, extended=extended))
            continue
        if session.device_id is None:
            rejects.append(Reject("no_identity", "packet before any login", frame))
            continue
        if proto == MSG_TIME_REQUEST:
            t = now().astimezone(UTC)
            clock = bytes((t.year - 2000, t.month, t.day, t.hour, t.minute, t.second))
            replies.append(f.build(MSG_TIME_REQUEST, clock, serial, extended=extended))
            continue
        ack = _ack(proto, serial, extended)
        if ack is not None:
            replies.append(ack)
        if proto in (MSG_STATUS, MSG_HEARTBEAT):
            continue
        if _no_position(proto, body, extended):
            ignored += 1
            continue
        if ack is None and proto not in LOCATION_TYPES:
            rejects.append(Reject("unsupported_type", f"protocol number 0x{proto:02X}", frame))
            continue
        try:
            row = _position(proto, body, extended)
        except b.Bad as exc:
            rejects.append(Reject(exc.code, exc.detail, frame))
            continue
        if row is None:
            ignored += 1
        else:
            row[3][SERIAL] = serial
            rows.append(row)
            shifts.append(session.utc_offset_s)
    return Decoded(
        fixes=_fixes(rows, shifts),
        session=session,
        attributes=tuple(r[3] for r in rows),
        replies=tuple(replies),
        device_id=device_id,
        rejects=tuple(rejects),
        ignored=ignored,
    )


def _check(frame: bytes) -> tuple[int, bytes, int, bool] | Reject:
    """(protocol number, content, serial, extended header) of a sound frame, else a Reject."""
    if frame.startswith(f.SHORT):
        extended, start = False, 3
    elif frame.startswith(f.LONG):
        extended, start = True, 4
    else:
        return Reject("garbage", "bytes before a 7878/7979 start marker", frame)
    size = f.frame_size(frame, 0) if len(frame) >= start else 0
    if size != len(frame):
        return Reject(
            "bad_length", f"length field says {size} bytes, frame has {len(frame)}", frame
        )
    if not frame.endswith(f.STOP):
        return Reject("bad_stop", "frame does not end with 0D 0A", frame)
    crc = int.from_bytes(frame[-4:-2], "big")
    if f.crc_itu(frame[2:-4]) != crc:
        return Reject("bad_crc", "CRC-ITU of length..serial does not match", frame)
    serial = int.from_bytes(frame[-6:-4], "big")
    return frame[start], frame[start + 1 : -6], serial, extended


def _no_position(proto: int, body: bytes, extended: bool) -> bool:
    """A well-formed packet that can carry no position (counted as ignored)."""
    return (
        proto in NO_POSITION
        or proto == MSG_LBS_STATUS
        or (proto == MSG_AZ735_ALARM and not extended)  # the short header's WiFi list
        # older models' 0x11: a cell report too short for a GPS block (Traccar issue 604)
        or (proto == MSG_GPS_LBS_6 and len(body) < b.GPS_SIZE)
    )


def _ack(proto: int, serial: int, extended: bool) -> bytes | None:
    """The reply a packet is owed, or None."""
    if proto == MSG_GPS_MODULAR:
        return f.build(proto, b"", serial)  # a short header even to a 7979 packet (Traccar)
    if proto in ACKED or (proto == MSG_AZ735_ALARM and extended):
        return f.build(proto, b"", serial, extended=extended)
    return None


def _login_zone(body: bytes) -> int:
    """Seconds the device's clock runs ahead of UTC, from the login's time zone field.

    The extended login (type id, then 2 bytes: bits 15-4 the zone as hhmm, e.g. 800 for
    GMT+8:00, bit 3 set for west) comes from devices that report local time; Traccar
    applies it to every fix of the connection, and so do we. Without it: UTC.
    """
    if len(body) < 12:
        return 0
    bits = int.from_bytes(body[10:12], "big")
    hhmm = bits >> 4
    offset = (hhmm // 100 * 60 + hhmm % 100) * 60
    return -offset if bits & 0x8 else offset


def _login(body: bytes, session: Session) -> tuple[str, tuple[str, str] | None]:
    """The IMEI a login names (§5.1.1: 8 bytes BCD), or a (code, detail) problem.

    Type identification and time zone/language (2 + 2 bytes) may follow: ``_login_zone``.
    """
    if len(body) < 8:
        return "", ("bad_length", f"login content is {len(body)} bytes, needs 8")
    digits = body[:8].hex()
    if not digits.isdigit():
        return "", ("bad_identity", f"terminal id {digits} is not BCD")
    imei = digits[1:] if digits[0] == "0" else digits
    if not valid_device_id(imei):
        return "", ("bad_identity", "device id must be 1-64 printable ASCII characters")
    if session.device_id is not None and session.device_id != imei:
        return "", ("identity_changed", f"connection belongs to {session.device_id}")
    return imei, None


def _position(proto: int, body: bytes, extended: bool) -> _Row | None:
    """The fix a location or alarm packet carries; None when it has no position."""
    attrs: dict[str, Any] = {}
    ignition, odometer = -1, math.nan
    if proto in (MSG_GPS_LBS_STATUS_4, MSG_AZ735_ALARM) and extended:
        return _az735(body, attrs, alarm=proto == MSG_AZ735_ALARM)
    if proto in (MSG_X1_GPS, MSG_GPS_MODULAR, MSG_STRING_INFO):
        return _other_position(proto, body, attrs)
    g = b.gps(body, 0)
    off = b.GPS_SIZE
    if proto in ALARM_TYPES:
        b.need(body, off + 1)
        n = body[off]
        if n:
            cell, end = b.lbs(body, off + 1)
            b.cell_attr(cell, attrs)
            off = max(end, off + n)
        else:  # some models then zero-fill 45 bytes of cells (Traccar decodeLbs)
            off += 1
            if len(body) >= off + 49 and not any(body[off + 9 : off + 45]):
                off += 45
        ignition = b.status_tail(body, off, attrs)
    elif proto not in (MSG_GPS, MSG_GPS_LBS_EXTEND):  # 0x1E: cell list not decoded
        cell, off = b.lbs(body, off, wide=proto == MSG_GPS_LBS_4G, cid4=proto == MSG_GPS_LBS_6)
        b.cell_attr(cell, attrs)
        rest = len(body) - off
        # 0x11/0x12: ACC, upload mode, re-upload only when the size says so
        acc = proto not in (MSG_GPS_LBS, MSG_GPS_LBS_6) or rest in (3, 7)
        head = body[: off + 3] if proto == MSG_GPS_LBS_3 else body  # 0x37: modules follow
        if proto == MSG_GPS_LBS and rest == 5:  # VXT01: terminal information follows
            ignition = b.vxt01_tail(body, off, attrs)
        else:
            ignition, odometer = b.acc_tail(head, off, attrs, acc=acc)
        if proto == MSG_GPS_LBS_3 and rest >= 3:
            odometer = b.modules(body, off + 3, attrs)
    if g.empty:
        return None
    if ignition < 0:
        ignition = g.ignition
    return g, ignition, odometer, attrs


def _other_position(proto: int, body: bytes, attrs: dict[str, Any]) -> _Row | None:
    """X1 GPS (0x34), modular (0x70) and string information (0x21) packets."""
    odometer = math.nan
    if proto == MSG_X1_GPS:
        g: b.Gps | None
        g, odometer = b.x1(body, attrs)
    elif proto == MSG_GPS_MODULAR:
        g, odometer = b.modular(body, attrs)
    else:
        g = b.text_position(body)
    return None if g is None or g.empty else (g, g.ignition, odometer, attrs)


def _az735(body: bytes, attrs: dict[str, Any], *, alarm: bool) -> _Row | None:
    """Extended 0x32/0x33 (AZ735, Traccar): GPS with a length byte, LBS with one, GSM,
    status (for 0x33 an alarm: A2/A3 low battery, A5 door; A4 unnamed)."""
    b.need(body, 7)
    if body[6] == 0:  # no GPS block follows
        return None
    g = b.gps(body[:6] + body[7:], 0)
    off = b.GPS_SIZE + 1
    b.need(body, off + 1)
    n = body[off]
    if n:
        cell, end = b.lbs(body, off + 1)
        b.cell_attr(cell, attrs)
        off = max(end, off + n)
        b.need(body, off + 1)
        attrs[GSM_SIGNAL] = body[off]
        off += 1
    else:
        off += 1
    for _ in range(2):  # additional cell towers, then wifi: skipped
        b.need(body, off + 1)
        off += 1 + body[off]
    b.need(body, off + 1)
    attrs[STATUS] = status = body[off]
    if alarm and status in AZ735_ALARMS:
        attrs[ALARM] = AZ735_ALARMS[status]
    elif alarm and status == 0xA4:
        attrs[ALARM], attrs[ALARM_CODE] = "other", status
    return None if g.empty else (g, g.ignition, math.nan, attrs)


def _fixes(rows: list[_Row], shifts: list[int]) -> FixArray:
    """The rows as a FIX_DTYPE batch, times moved to UTC by each row's login time zone."""
    out = empty_fixes(len(rows))
    if not rows:
        return out
    gs = [r[0] for r in rows]
    out["fix_time_us"] = [g.time_us - s * 1_000_000 for g, s in zip(gs, shifts, strict=True)]
    out["lat"] = [g.lat for g in gs]
    out["lon"] = [g.lon for g in gs]
    out["speed_kmh"] = [g.speed_kmh for g in gs]
    out["course_deg"] = [g.course_deg for g in gs]
    out["satellites"] = [g.satellites for g in gs]
    out["valid"] = [g.valid for g in gs]
    out["altitude_m"] = [g.altitude_m for g in gs]
    out["hdop"] = [g.hdop for g in gs]
    out["ignition"] = np.array([r[1] for r in rows], dtype=np.int8)
    out["odometer_m"] = [r[2] for r in rows]
    return out
