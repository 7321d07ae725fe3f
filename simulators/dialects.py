"""What a simulated tracker of each TCP protocol says, and what it waits to hear back.

A ``Dialect`` is the device side of one protocol, built on the protocol's encoder:
the login it sends after connecting and the reply it waits for (Teltonika ``0x01``,
GT06's login ack, GPS103's ``LOAD``), the frame for one fix and the ack that fix earns
(Teltonika's 4-byte record count; GT06, H02, GPS103 and T55 positions get none), and a
broken frame the server must reject without losing the connection (a bad checksum or
CRC: binary junk would cost a Teltonika device its framing, which no real device sends).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from simulators import gps103_out, gt06_out, h02_out, nmea_out, teltonika_out
from simulators.vehicle import SimFix, garbage_line


@dataclass(frozen=True, slots=True)
class Dialect:
    """The device side of one protocol (see the module docstring)."""

    name: str
    hello: Callable[[str], bytes]  # device id -> login frame (b"": none)
    hello_reply: bytes  # what the login earns (b"": nothing to wait for)
    encode: Callable[[SimFix, int], bytes]  # fix, serial number -> frame
    ack: Callable[[bytes], bytes]  # frame -> the reply it earns (b"": none)
    junk: Callable[[random.Random, SimFix], bytes]  # a frame the server rejects


def _no_ack(_: bytes) -> bytes:
    return b""


def _flip_byte(frame: bytes, at: int) -> bytes:
    """``frame`` with one byte of its checksum or CRC changed, so it must be refused."""
    return frame[:at] + bytes([frame[at] ^ 0x5A]) + frame[at + 1 :]


def _teltonika(fix: SimFix, serial: int) -> bytes:
    rec = teltonika_out.AvlRecord(
        time=fix.fix_time,
        lat=fix.lat,
        lon=fix.lon,
        altitude_m=round(fix.altitude_m),
        course_deg=round(fix.course_deg) % 360,
        satellites=fix.satellites,
        speed_kmh=round(fix.speed_kmh),
        io=_teltonika_io(fix),
    )
    return teltonika_out.avl_packet([rec], codec=8)


def _teltonika_io(fix: SimFix) -> dict[int, int]:
    """IO 239 carries the fix's ignition (left out when the tracker does not know it),
    240 movement, 21 GSM signal, 66 external voltage (mV)."""
    io = {240: int(fix.speed_kmh > 0), 21: 4, 66: 13800}
    if fix.ignition is not None:
        io[239] = int(fix.ignition)
    return io


def _gt06(fix: SimFix, serial: int) -> bytes:
    return gt06_out.location(
        time=fix.fix_time,
        lat=fix.lat,
        lon=fix.lon,
        speed_kmh=round(fix.speed_kmh),
        course_deg=round(fix.course_deg) % 360,
        satellites=min(fix.satellites, 15),
        valid=True,
        serial=serial & 0xFFFF,
    )


class _TextPosition(Protocol):
    """A text protocol's position encoder: ``h02_out.position``, ``gps103_out.position``."""

    def __call__(
        self,
        device_id: str,
        /,
        *,
        time: datetime,
        lat: float,
        lon: float,
        speed_kmh: float,
        course_deg: float,
        valid: bool,
    ) -> bytes: ...


def _text_position(position: _TextPosition) -> Callable[[SimFix, int], bytes]:
    """``encode`` for a text protocol: the fix as it is, valid; these lines have no serial."""

    def encode(fix: SimFix, serial: int) -> bytes:
        return position(
            fix.device_id,
            time=fix.fix_time,
            lat=fix.lat,
            lon=fix.lon,
            speed_kmh=fix.speed_kmh,
            course_deg=fix.course_deg,
            valid=True,
        )

    return encode


def _text_junk(end: bytes) -> Callable[[random.Random, SimFix], bytes]:
    def junk(rng: random.Random, fix: SimFix) -> bytes:
        body = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,.", k=rng.randint(5, 40)))
        return b"junk," + body.encode() + end  # never a bare id: that is a heartbeat

    return junk


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect(
            name="t55",
            hello=nmea_out.pgid,
            hello_reply=b"",
            encode=lambda fix, _: fix.nmea(),
            ack=_no_ack,
            junk=garbage_line,
        ),
        Dialect(
            name="teltonika",
            hello=teltonika_out.login,
            hello_reply=teltonika_out.LOGIN_ACCEPT,
            encode=_teltonika,
            ack=lambda frame: teltonika_out.ack(frame[9]),  # N1, after preamble+length+codec
            junk=lambda rng, fix: _flip_byte(_teltonika(fix, 0), -1),
        ),
        Dialect(
            name="gt06",
            hello=lambda imei: gt06_out.login(imei, 0),
            hello_reply=gt06_out.server_ack(0x01, 0),
            encode=_gt06,
            ack=_no_ack,
            junk=lambda rng, fix: _flip_byte(_gt06(fix, 1), -3),
        ),
        Dialect(
            name="h02",
            hello=lambda _: b"",
            hello_reply=b"",
            encode=_text_position(h02_out.position),
            ack=_no_ack,
            junk=_text_junk(b"#"),
        ),
        Dialect(
            name="gps103",
            hello=gps103_out.login,
            hello_reply=gps103_out.LOGIN_REPLY,
            encode=_text_position(gps103_out.position),
            ack=_no_ack,
            junk=_text_junk(b";"),
        ),
    )
}
