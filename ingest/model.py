"""The unit of work that transports hand to the writer.

A ``Batch`` carries fixes of one device and/or dead letters, plus an ``on_commit``
callback that acknowledges the sender; the writer calls it only after the
transaction holding the batch has committed (exactly-once needs ack-after-commit).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from decoders.model import FixArray, empty_fixes


def now_us() -> int:
    """Wall-clock UTC time in microseconds (received times, dead letters)."""
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Bytes we could not use, kept for inspection with the reason code."""

    transport: str
    protocol: str
    peer: str
    device_id: str | None
    code: str
    detail: str
    raw: bytes
    received_us: int = field(default_factory=now_us)


@dataclass(frozen=True, slots=True)
class Batch:
    """Fixes from one device (possibly none) and dead letters, acked together."""

    device_id: str
    transport: str
    protocol: str
    fixes: FixArray = field(default_factory=empty_fixes)
    attributes: tuple[dict[str, Any], ...] = ()  # empty, or one dict per fix
    dead_letters: tuple[DeadLetter, ...] = ()
    register_device: bool = False  # insert the device into `devices` with this batch
    bind_device: bool = False  # bind the registered device (no protocol yet) to this one
    received_us: int = field(default_factory=now_us)
    on_commit: Callable[[], None] | None = None

    @property
    def rows(self) -> int:
        return len(self.fixes) + len(self.dead_letters)


class BatchSink(Protocol):
    """What the listener needs from the writer: an ordered, back-pressuring ``put``."""

    async def put(self, batch: Batch) -> None: ...


def peer_name(addr: Any) -> str:
    """``host:port`` (``[v6]:port``) of a socket address, for logs and dead letters."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = str(addr[0])
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return str(addr)
