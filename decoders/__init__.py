"""Pure protocol decoders: bytes in, a batch of fixes, replies and rejects out.

Every protocol module exports ``NAME``, ``split_frames(buf) -> (frames, rest)`` and
``decode_frames(frames, *, session) -> Decoded``; ``PROTOCOLS`` is built from
explicit imports (no plugin scanning). This package imports no other project package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from decoders import menara_json, nmea, t55
from decoders.errors import DecodeError
from decoders.model import FIX_DTYPE, Decoded, Fix, Reject, Session, empty_fixes


class Codec(Protocol):
    """The shape every protocol module has."""

    NAME: str

    def split_frames(self, buf: bytes) -> tuple[list[bytes], bytes]: ...

    def decode_frames(self, frames: Sequence[bytes], *, session: Session) -> Decoded: ...


PROTOCOLS: dict[str, Codec] = {m.NAME: m for m in (nmea, t55, menara_json)}

__all__ = [
    "FIX_DTYPE",
    "PROTOCOLS",
    "Codec",
    "DecodeError",
    "Decoded",
    "Fix",
    "Reject",
    "Session",
    "empty_fixes",
]
