"""UDP device intake (Teltonika's UDP variant): one datagram, one batch, the ack after commit.

Every datagram names its device and carries its own packet ids, so there is no
connection state: each is decoded on its own, handed to the writer in arrival order by
one feeder task, and its reply is sent to the datagram's source address only once the
batch is committed. UDP cannot push back on a sender, so the queue to the writer is
bounded (``max_queued``): a datagram that arrives while it is full is dropped unacked,
before it is decoded or counted as anything but ``udp_dropped``; the device resends it,
as it does any unacked packet. Garbage and refused devices get no reply at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

from decoders import Decoded
from decoders.model import Session
from ingest.counters import Counters
from ingest.devices import DeviceRegistry
from ingest.intake import decode_safely, on_loop, to_batch
from ingest.model import Batch, BatchSink, peer_name

log = logging.getLogger(__name__)

TRANSPORT = "udp"
DecodeDatagram = Callable[..., Decoded]  # (datagram, *, session) -> Decoded


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, listener: UdpListener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.listener.received(data, addr)
        except Exception:  # a bug must cost one datagram, never the listener
            log.exception("udp %s: unexpected error", peer_name(addr))


class UdpListener:
    """An asyncio UDP endpoint for one datagram protocol; async context manager.

    ``port=0`` binds a free port, readable as ``.port`` once entered.
    """

    def __init__(
        self,
        *,
        protocol: str,
        decode: DecodeDatagram,
        host: str,
        port: int,
        writer: BatchSink,
        registry: DeviceRegistry,
        counters: Counters,
        max_queued: int = 10_000,
    ) -> None:
        self.protocol = protocol
        self.port = port
        self._decode = decode
        self._host = host
        self._writer = writer
        self._registry = registry
        self._counters = counters
        self._queue: asyncio.Queue[Batch] = asyncio.Queue(max_queued)
        self._transport: asyncio.DatagramTransport | None = None
        self._feeder: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = True

    @property
    def open_connections(self) -> int:
        """Datagrams queued for the writer (UDP has no connections to count)."""
        return self._queue.qsize()

    async def __aenter__(self) -> UdpListener:
        self._loop = asyncio.get_running_loop()
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Endpoint(self), local_addr=(self._host, self.port)
        )
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        self._feeder = asyncio.create_task(self._feed(), name=f"udp-{self.protocol}-feed")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_reading()
        if self._feeder is not None:
            self._feeder.cancel()
            await asyncio.gather(self._feeder, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()

    async def stop_reading(self) -> None:
        """Stop receiving and hand what was received to the writer (acks follow its drain)."""
        self._reading = False
        if self._feeder is not None and not self._feeder.done():
            await self._queue.join()

    async def wait(self) -> None:
        """Block while the listener works; raise the error that stopped it."""
        assert self._feeder is not None
        await asyncio.shield(self._feeder)

    def received(self, data: bytes, addr: Any) -> None:
        if not self._reading:  # stopping: unacked, so the device sends it again later
            self._count("udp_ignored_while_stopping")
            return
        if self._queue.full():  # before decoding: overload must not cost more work
            self._count("udp_dropped")
            return
        peer = peer_name(addr)
        self._count("bytes_in", len(data))
        self._count("frames_in")
        decoded = decode_safely(
            lambda: self._decode(data, session=Session()), (data,), Session(), f"udp {peer}"
        )
        device = decoded.device_id or ""
        refused = bool(device) and self._registry.admit(device, self.protocol).refused
        replies = () if refused else decoded.replies  # a refused device hears nothing
        batch = to_batch(
            decoded,
            device_id=device,
            transport=TRANSPORT,
            protocol=self.protocol,
            peer=peer,
            registry=self._registry,
            counters=self._counters,
            raw=data,
            on_commit=self._acker(b"".join(replies), addr) if replies else None,
        )
        if batch.rows:
            self._queue.put_nowait(batch)  # not full: checked above, nothing ran since
        elif replies and self._transport is not None:  # nothing to make durable first
            self._transport.sendto(b"".join(replies), addr)

    def _acker(self, payload: bytes, addr: Any) -> Callable[[], None]:
        assert self._loop is not None

        def send() -> None:
            if self._transport is not None and not self._transport.is_closing():
                self._transport.sendto(payload, addr)

        return on_loop(self._loop, send)

    def _count(self, name: str, n: int = 1) -> None:
        self._counters.inc(name, n, transport=TRANSPORT, protocol=self.protocol)

    async def _feed(self) -> None:
        try:
            while True:
                batch = await self._queue.get()
                try:
                    await self._writer.put(batch)
                finally:
                    self._queue.task_done()
        except Exception:
            log.exception("udp %s: the writer failed, closing the endpoint", self.protocol)
            self._reading = False
            if self._transport is not None:
                self._transport.close()
            while not self._queue.empty():
                self._queue.get_nowait()
                self._queue.task_done()
            raise
