"""One T55 device connection: identity line first, then sentences; reconnects with backoff.

T55 servers send no acknowledgements, so a fix counts as sent once its bytes are drained
into the socket; bytes written just before the server closes the connection can still be
lost, which TCP alone cannot tell. A connection the server has closed is replaced before
the next write, and a write that fails is repeated on the next connection, as a device
with a send buffer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Iterator
from datetime import datetime

from ingest.backoff import delays
from simulators import nmea_out
from simulators.model import FleetConfig, TransportStats


class TcpLink:
    """A device's TCP connection that comes back after failures until time runs out."""

    def __init__(
        self,
        device_id: str,
        cfg: FleetConfig,
        stats: TransportStats,
        sent: set[tuple[str, datetime]],
        *,
        give_up_at: float,
        stop: asyncio.Event,
        rng: random.Random,
    ) -> None:
        self._id = device_id
        self._cfg = cfg
        self._stats = stats
        self._sent = sent
        self._give_up_at = give_up_at
        self._stop = stop
        self._rng = rng
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._backoff: Iterator[float] = delays()
        self._connections = 0

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless stopped first; False when stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return not self._stop.is_set()

    async def _connect(self) -> bool:
        """Connect and identify; after a failure retry with backoff until the give-up time."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            writer: asyncio.StreamWriter | None = None
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection(self._cfg.tcp_host, self._cfg.tcp_port), 5.0
                )
                writer = w
                sock = w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                w.write(nmea_out.pgid(self._id))
                await w.drain()
            except (OSError, TimeoutError):
                if writer is not None:
                    writer.close()
                self._stats.connect_failures += 1
                wait = min(next(self._backoff), self._give_up_at - loop.time())
                if wait <= 0 or not await self._pause(wait):
                    return False
                continue
            self._reader, self._writer = r, w
            self._backoff = delays()
            if self._connections:
                self._stats.reconnects += 1
            self._connections += 1
            return True
        return False

    async def _write(self, pieces: list[bytes]) -> bool:
        """Write pieces with a flush between; retry all of them on a new connection."""
        while True:
            if self._reader is not None and self._reader.at_eof():
                await self.close()  # the server hung up: don't write into the void
            if self._writer is None and not await self._connect():
                return False
            assert self._writer is not None
            try:
                for i, piece in enumerate(pieces):
                    if i:
                        await asyncio.sleep(0.001)
                    self._writer.write(piece)
                    await self._writer.drain()
                return True
            except OSError:
                await self.close()

    async def send_fix(self, payload: bytes, key: tuple[str, datetime]) -> bool:
        """Send one fix (RMC+GGA), split into pieces with probability ``cfg.split``."""
        pieces = [payload]
        if self._rng.random() < self._cfg.split:
            cuts = sorted(self._rng.sample(range(1, len(payload)), self._rng.randint(1, 2)))
            pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        if not await self._write(pieces):
            return False
        if len(pieces) > 1:
            self._stats.splits += 1
        self._stats.fixes_sent += 1
        self._sent.add(key)
        return True

    async def send_duplicate(self, payload: bytes) -> bool:
        """Send an already-sent fix again."""
        ok = await self._write([payload])
        self._stats.duplicates_sent += ok
        return ok

    async def send_garbage(self, line: bytes) -> bool:
        """Send one junk line."""
        ok = await self._write([line])
        self._stats.garbage_sent += ok
        return ok

    async def drop(self) -> bool:
        """Hang up as a device losing coverage would, and wait a backoff delay."""
        await self.close()
        return await self._pause(next(self._backoff))

    async def close(self) -> None:
        """Close the connection, if any, and wait until it is closed."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
