"""Pure protocol decoders: bytes in, a batch of fixes, replies and rejects out.

Every protocol module exports ``NAME``, ``split_frames(buf) -> (frames, rest)`` and
``decode_frames(frames, *, session) -> Decoded``; ``PROTOCOLS`` is built from
explicit imports (no plugin scanning). This package imports no other project package.

``split_frames`` never drops bytes: input it cannot place (noise before a start marker)
comes back as a frame of its own for ``decode_frames`` to reject and ingest to keep. It
raises ``DecodeError`` only when framing is lost for good (a binary length field that
cannot be true); ingest then dead-letters the buffer and closes the connection.
``MAX_FRAME`` is the longest frame a protocol allows (binary protocols); text protocols
leave it out and ingest applies ``tcp_max_line_bytes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from decoders import gps103, gt06, h02, menara_json, nmea, osmand, t55, teltonika
from decoders.errors import DecodeError
from decoders.model import FIX_DTYPE, Decoded, Fix, Reject, Session, empty_fixes


class Codec(Protocol):
    """The shape every protocol module has."""

    NAME: str

    def split_frames(self, buf: bytes) -> tuple[list[bytes], bytes]: ...

    def decode_frames(self, frames: Sequence[bytes], *, session: Session) -> Decoded: ...


def max_frame(codec: Codec, default: int) -> int:
    """The longest frame ``codec`` allows: its ``MAX_FRAME``, else ``default`` (text lines)."""
    return int(getattr(codec, "MAX_FRAME", default))


PROTOCOLS: dict[str, Codec] = {
    m.NAME: m for m in (nmea, t55, menara_json, teltonika, gt06, h02, gps103, osmand)
}

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
    "max_frame",
]
