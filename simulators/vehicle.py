"""One virtual vehicle: where it is at each fix, and the bytes a tracker would send.

All randomness comes from the vehicle's own ``random.Random``, so a (seed, index) pair
always drives the same trip. Values are rounded to what the wire carries (centisecond
times, 1e-7 degrees) so the NMEA and JSON forms of one fix decode to the same row.
"""

from __future__ import annotations

import json
import math
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from simulators import nmea_out
from simulators.routes import Route

_JUNK_TEXT = string.ascii_letters + string.digits + " ,.;:-_#@!?"
_JUNK_BINARY = bytes(b for b in range(256) if b not in (0x0A, 0x0D))


@dataclass(frozen=True, slots=True)
class SimFix:
    """One simulated position with the units of ``decoders.model.Fix``."""

    device_id: str
    fix_time: datetime
    lat: float
    lon: float
    speed_kmh: float
    course_deg: float
    altitude_m: float
    satellites: int
    hdop: float
    ignition: bool | None = None  # None: the tracker reports no ignition state

    @property
    def key(self) -> tuple[str, datetime]:
        """The identity the store de-duplicates on."""
        return self.device_id, self.fix_time

    def nmea(self) -> bytes:
        """RMC then GGA of the same epoch: what a T55 device writes for one fix."""
        return nmea_out.rmc(
            self.fix_time, self.lat, self.lon, self.speed_kmh, self.course_deg
        ) + nmea_out.gga(
            self.fix_time,
            self.lat,
            self.lon,
            satellites=self.satellites,
            hdop=self.hdop,
            altitude_m=self.altitude_m,
        )

    def json(self) -> bytes:
        """The Menara MQTT JSON payload (with ``ignition`` only when it is known)."""
        doc = nmea_out.json_fix(
            self.fix_time,
            self.lat,
            self.lon,
            speed_kmh=self.speed_kmh,
            course_deg=self.course_deg,
            altitude_m=self.altitude_m,
            satellites=self.satellites,
            hdop=self.hdop,
        )
        if self.ignition is not None:
            doc["ignition"] = self.ignition
        return json.dumps(doc, separators=(",", ":")).encode()


def quantize_cs(t: datetime) -> datetime:
    """``t`` truncated to the 10 ms resolution of NMEA time."""
    return t.replace(microsecond=t.microsecond // 10000 * 10000)


class Vehicle:
    """Drives one route in stop-and-go traffic: cruise speed with sway, red lights."""

    def __init__(
        self, device_id: str, route: Route, *, start: datetime, rate_hz: float, seed: int
    ) -> None:
        rng = random.Random(seed)
        self.device_id = device_id
        self.route = route
        self._start = quantize_cs(start)
        self._period_s = 1.0 / rate_hz
        self._offset_m = rng.uniform(0.0, route.cycle_m)
        self._cruise_kmh = rng.uniform(25.0, 50.0)
        self._sway_phase = rng.uniform(0.0, 2 * math.pi)
        self._light_cycle_s = rng.uniform(60.0, 120.0)
        self._light_phase_s = rng.uniform(0.0, self._light_cycle_s)
        self._red_s = rng.uniform(10.0, 30.0)

    def speed_kmh(self, s: float) -> float:
        """Speed ``s`` seconds into the trip: zero at a red light, else cruise ±15 %."""
        if (s + self._light_phase_s) % self._light_cycle_s < self._red_s:
            return 0.0
        sway = math.sin(2 * math.pi * s / 47.0 + self._sway_phase)
        return self._cruise_kmh * (1.0 + 0.15 * sway)

    def fixes(self) -> Iterator[SimFix]:
        """Endless fixes, one every ``1 / rate_hz`` seconds of fix time."""
        d = self._offset_m
        k = 0
        while True:
            s = k * self._period_s
            speed = self.speed_kmh(s)
            lat, lon, course = self.route.position_at(d)
            sats = 8 + round(3 * math.sin(s / 97.0 + self._sway_phase))
            yield SimFix(
                device_id=self.device_id,
                fix_time=self._start + timedelta(microseconds=round(s * 100) * 10000),
                lat=round(lat, 7),
                lon=round(lon, 7),
                speed_kmh=round(speed, 2),
                course_deg=round(course, 2) % 360.0,
                altitude_m=round(8.0 + 4.0 * math.sin(d / 700.0), 1),
                satellites=sats,
                hdop=round(max(0.6, 1.3 - 0.08 * sats), 2),
            )
            d += speed / 3.6 * self._period_s
            k += 1


def garbage_line(rng: random.Random, fix: SimFix) -> bytes:
    """One line of junk ending ``\\r\\n``: text, binary, or a sentence with a wrong checksum.

    It never holds a line break before its end, so it is exactly one bad line and never
    corrupts the real sentence after it; and it stays short of any sane line-length limit.
    """
    kind = rng.randrange(3)
    if kind == 0:
        return "".join(rng.choices(_JUNK_TEXT, k=rng.randint(5, 60))).encode() + b"\r\n"
    if kind == 1:
        return bytes(rng.choices(_JUNK_BINARY, k=rng.randint(5, 60))) + b"\r\n"
    line = fix.nmea().split(b"\r\n", 1)[0]
    good = int(line[-2:], 16)
    return line[:-2] + f"{good ^ rng.randint(1, 255):02X}".encode() + b"\r\n"
