"""One tracker's TCP connection: login, then fixes; reconnects with backoff.

The protocol's ``Dialect`` says what to send and what to wait for. After connecting the
device sends its login and, where the protocol answers logins (Teltonika, GT06,
GPS103), waits for the answer; no answer is a failed connection, retried with backoff.
Where fixes are acknowledged (Teltonika) a fix counts as sent only once its ack has
arrived, and a fix whose ack does not come is written again on a new connection, as a
device keeps unacknowledged records. Where they are not (T55, GT06, H02, GPS103
positions) a fix counts as sent once drained into the socket; bytes written just before
the server closes the connection can still be lost, which TCP alone cannot tell. A
connection the server has closed is replaced before the next write, and a write that
fails is repeated on the next connection, as a device with a send buffer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Iterator
from datetime import datetime

from ingest.backoff import delays
from simulators.dialects import Dialect
from simulators.model import FleetConfig, TransportStats


class TcpLink:
    """A device's TCP connection that comes back after failures until time runs out."""

    def __init__(
        self,
        device_id: str,
        dialect: Dialect,
        cfg: FleetConfig,
        stats: TransportStats,
        sent: set[tuple[str, datetime]],
        *,
        give_up_at: float,
        stop: asyncio.Event,
        rng: random.Random,
    ) -> None:
        self._id = device_id
        self._dialect = dialect
        self._port = cfg.port_for(dialect.name)
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
                    asyncio.open_connection(self._cfg.tcp_host, self._port), 5.0
                )
                writer = w
                sock = w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                w.write(self._dialect.hello(self._id))
                await w.drain()
                if not await self._answered(r, self._dialect.hello_reply):
                    raise ConnectionRefusedError(f"{self._dialect.name} login not accepted")
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

    async def _answered(self, reader: asyncio.StreamReader, expected: bytes) -> bool:
        """Wait for ``expected`` from the server (nothing to wait for when empty)."""
        if not expected:
            return True
        try:
            got = await asyncio.wait_for(reader.readexactly(len(expected)), self._cfg.ack_timeout_s)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return False
        return got == expected

    async def _deliver(self, payload: bytes, pieces: list[bytes], may_lose_ack: bool) -> bool:
        """Write until the fix's ack (if the protocol sends one) arrives; False: give up."""
        ack = self._dialect.ack(payload)
        lose = may_lose_ack and bool(ack) and self._rng.random() < self._cfg.lose_ack
        while True:
            if not await self._write(pieces):
                return False
            if not ack:
                return True
            if lose:  # hang up before the ack can arrive: the fix must be sent again
                lose = False
            elif self._reader is not None and await self._answered(self._reader, ack):
                return True
            self._stats.resends += 1
            await self.close()
            pieces = [payload]

    async def send_fix(self, payload: bytes, key: tuple[str, datetime]) -> bool:
        """Send one fix, split into pieces with probability ``cfg.split``."""
        pieces = [payload]
        if self._rng.random() < self._cfg.split:
            cuts = sorted(self._rng.sample(range(1, len(payload)), self._rng.randint(1, 2)))
            pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        if not await self._deliver(payload, pieces, may_lose_ack=True):
            return False
        if len(pieces) > 1:
            self._stats.splits += 1
        self._stats.fixes_sent += 1
        self._sent.add(key)
        return True

    async def send_duplicate(self, payload: bytes) -> bool:
        """Send an already-sent fix again (and take its ack: the server acks it again)."""
        ok = await self._deliver(payload, [payload], may_lose_ack=False)
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
