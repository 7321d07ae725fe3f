"""What the per-line TCP decoders (H02, GPS103) share: the position, the batch, the loop.

Each protocol subclasses ``Batch`` with its own ``frame`` method; a frame it cannot turn
into a fix raises ``DecodeError``, which ``decode_all`` turns into that frame's reject
and goes on with the next frame, so one bad line never costs the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from decoders.errors import DecodeError
from decoders.model import Decoded, Reject, Session, empty_fixes, valid_device_id

KMH_PER_KNOT = 1.852


@dataclass(slots=True)
class Position:
    """One decoded position, units as in ``FIX_DTYPE``; a field left alone is unknown."""

    time_us: int
    lat: float
    lon: float
    valid: bool
    speed_kmh: float = math.nan
    course_deg: float = math.nan
    altitude_m: float = math.nan
    hdop: float = math.nan
    satellites: int = -1
    ignition: int = -1
    odometer_m: float = math.nan
    device_id: str = ""  # set where the frame itself names the device (H02 binary)
    attributes: dict[str, Any] = field(default_factory=dict)


def check_range(lat: float, lon: float) -> None:
    """DecodeError ``bad_coordinates`` unless both lie on the globe."""
    if not (abs(lat) <= 90.0 and abs(lon) <= 180.0):
        raise DecodeError("bad_coordinates", f"({lat}, {lon}) is off the globe")


class Batch:
    """Fixes, replies, rejects and identity across one ``decode_frames`` call."""

    __slots__ = ("device_id", "ignored", "positions", "rejects", "replies", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.device_id: str | None = None
        self.positions: list[Position] = []
        self.replies: list[bytes] = []
        self.rejects: list[Reject] = []
        self.ignored = 0

    def frame(self, frame: bytes) -> None:
        """Decode one frame into the batch; DecodeError rejects it."""
        raise NotImplementedError

    def identify(self, ident: str | None) -> str:
        """The frame's device, adopted for the connection; DecodeError if it cannot be.

        ``None`` (a frame that names no device) means the connection's device.
        """
        old = self.session.device_id
        if ident is None:
            if old is None:
                raise DecodeError("no_identity", "frame names no device and the connection none")
            return old
        if not valid_device_id(ident):
            raise DecodeError("bad_identity", "device id must be 1-64 printable ASCII characters")
        if old is not None and old != ident:
            raise DecodeError("identity_changed", f"connection belongs to {old}")
        if old is None:
            self.session = replace(self.session, device_id=ident)
        self.device_id = ident
        return ident

    def finish(self) -> Decoded:
        fixes = empty_fixes(len(self.positions))
        attributes: list[dict[str, Any]] = []
        for row, p in zip(fixes, self.positions, strict=True):
            row["fix_time_us"] = p.time_us
            row["lat"], row["lon"] = p.lat, p.lon
            row["speed_kmh"], row["course_deg"] = p.speed_kmh, p.course_deg
            row["altitude_m"], row["odometer_m"] = p.altitude_m, p.odometer_m
            row["hdop"], row["satellites"] = p.hdop, p.satellites
            row["valid"], row["ignition"] = p.valid, p.ignition
            attributes.append(p.attributes)
        return Decoded(
            fixes=fixes,
            session=self.session,
            attributes=tuple(attributes) if any(attributes) else (),
            replies=tuple(self.replies),
            device_id=self.device_id,
            rejects=tuple(self.rejects),
            ignored=self.ignored,
        )


def decode_all(batch: Batch, frames: Sequence[bytes]) -> Decoded:
    """Decode ``frames`` in order into ``batch``; a frame that raises becomes a reject."""
    for frame in frames:
        try:
            batch.frame(frame)
        except DecodeError as exc:
            batch.rejects.append(Reject(exc.code, exc.detail, frame))
    return batch.finish()
