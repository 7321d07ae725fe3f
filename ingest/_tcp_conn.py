"""One TCP device connection as an ``asyncio.Protocol``: buffer, identity, flow, reply order.

Kept apart from the listener (``ingest.tcp``) that owns the framing, decoding and
hand-off to the writer: a connection only knows its own state and how to write back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from decoders.model import Session
from ingest.model import peer_name

if TYPE_CHECKING:
    from ingest.tcp import TcpListener

log = logging.getLogger("ingest.tcp")


class Reply:
    """A place in a connection's reply order; ``ready`` once its batch has committed."""

    __slots__ = ("payload", "ready")

    def __init__(self, payload: bytes, ready: bool) -> None:
        self.payload = payload
        self.ready = ready


class Conn(asyncio.Protocol):
    """One device connection: unframed tail, decoder session, identity, flow state."""

    __slots__ = (
        "bad_frames",
        "buf",
        "device_id",
        "hanging_up",
        "known",
        "last_seen",
        "listener",
        "owed",
        "partial_since",
        "paused",
        "peer",
        "queued",
        "session",
        "transport",
    )

    def __init__(self, listener: TcpListener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.bad_frames = 0  # rejects since the last good frame
        self.session = Session()
        self.device_id: str | None = None
        self.known = False  # the registry admitted its device: first class on the loop
        self.peer = "?"
        self.last_seen = listener.clock
        self.partial_since = listener.clock  # when the frame now in ``buf`` began
        self.queued = 0  # batches handed to the feeder, not yet accepted by the writer
        self.paused = False
        self.hanging_up = False  # reading stopped for good: close once ``owed`` is sent
        self.owed: deque[Reply] = deque()  # replies in packet order, oldest first

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = peer_name(transport.get_extra_info("peername"))
        self.listener.opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.buf:  # a truncated last frame: keep it for inspection
            self.listener.dead_letter(self, "truncated", "connection ended mid-frame", self.buf)
            self.buf = b""
        self.listener.closed(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.listener.received(self, data)
        except Exception:  # a bug must cost one connection, never the listener
            log.exception("tcp %s: unexpected error, closing", self.peer)
            self.listener.dead_letter(self, "internal_error", "listener error", self.buf + data)
            self.buf = b""
            self.close()

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and not self.hanging_up and self.transport is not None:
            self.paused = False
            # waiting for the writer is neither idling nor sending slowly
            self.last_seen = self.partial_since = self.listener.clock
            self.transport.resume_reading()

    def reply(self, payload: bytes) -> None:
        """Send ``payload`` now, or once every reply owed before it has gone out."""
        if self.owed:  # the oldest is still waiting for its commit
            self.owed.append(Reply(payload, True))
        else:
            self.write(payload)

    def flush(self) -> None:
        """Send the replies that are ready, in order; close if hanging up and none is owed."""
        while self.owed and self.owed[0].ready:
            self.write(self.owed.popleft().payload)
        if self.hanging_up and not self.owed:
            self.close()

    def hang_up(self) -> None:
        """Read nothing more; close once the replies owed for what was read are sent."""
        self.hanging_up = True
        self.pause()
        self.flush()

    def write(self, payload: bytes) -> None:
        if payload and self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
