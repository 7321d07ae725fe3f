"""TCP device listener: framing, identity, back-pressure and ack-after-commit per connection.

Built on ``asyncio.Protocol`` rather than streams so that an idle device costs one small
object and no task: 10,000 parked trackers are cheap. Per connection the listener keeps
the unframed tail, the decoder ``Session`` and the device id from the login frame; each
packet becomes at most one ``Batch`` (via ``ingest.intake.to_batch``) handed to the writer
in arrival order by one feeder task per listener. When the writer is full the feeder
waits inside ``put`` and every connection that queues more data stops reading until its
batches are accepted, so a slow database pushes back to the devices instead of dropping.

Replies the decoder owes (acks) are written only after the writer has committed the
batch they acknowledge, and in the order their packets came: a reply that needs no
commit (a heartbeat's) waits behind an ack still waiting for one. Input that cannot be
framed (a frame longer than the codec's ``MAX_FRAME`` or, for text protocols,
``max_line_bytes``; a binary length field the splitter rejects; a frame not complete
within ``idle_timeout_s`` of its first byte) is dead-lettered and the connection closed,
after the whole frames before it are stored and acked; anything else that goes wrong is
dead-lettered and counted, and never leaves the protocol callbacks. A device the
registry refuses, at login or later (disabled while connected), gets the protocol's
refusal (Teltonika ``0x00``) or nothing and never an ack; what it sent is dead-lettered
and the connection closed. So is a peer that sends only rejects: ``max_bad_frames`` in a
row without one good frame. Connections are accepted within the listener's ``limits``
and the descriptor budget all listeners share (``ingest.limits``), and served in the
loop's rationed second class until they name a device the registry admits
(``ingest.priority``).

If the writer fails, the feeder closes every connection and ends; whatever is queued
after that (a closing connection's truncated tail) has nowhere to go and is dropped and
counted as ``dropped_after_writer_failure``, so shutdown never waits on a dead feeder.
The devices resend: nothing of theirs was acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from types import TracebackType

from decoders import Codec, Decoded, max_frame
from ingest import priority
from ingest._tcp_conn import Conn, Reply
from ingest.counters import Counters
from ingest.devices import Admission, DeviceRegistry
from ingest.intake import decode_safely, frame, on_loop, to_batch
from ingest.limits import NO_LIMITS, Acceptor, FdBudget, Limits
from ingest.model import Batch, BatchSink, DeadLetter

log = logging.getLogger(__name__)

TRANSPORT = "tcp"


class TcpListener:
    """An asyncio TCP server for one device protocol; async context manager.

    ``port=0`` binds a free port, readable as ``.port`` once entered.
    """

    def __init__(
        self,
        *,
        codec: Codec,
        host: str,
        port: int,
        idle_timeout_s: float,
        max_line_bytes: int,
        writer: BatchSink,
        registry: DeviceRegistry,
        counters: Counters,
        limits: Limits = NO_LIMITS,
        fds: FdBudget | None = None,
        max_bad_frames: int = 0,
    ) -> None:
        self.codec = codec
        self.host = host
        self.port = port
        self.idle_timeout_s = idle_timeout_s
        self.max_frame = max_frame(codec, max_line_bytes)
        self.max_bad_frames = max_bad_frames  # rejects in a row before a hang-up (0: never)
        self.clock = 0.0  # loop time, advanced by the sweep: coarse but free to read
        self._writer = writer
        self._registry = registry
        self._counters = counters
        self._conns: set[Conn] = set()
        self._queue: deque[tuple[Conn, Batch]] = deque()
        self._wake = asyncio.Event()  # the queue has work
        self._empty = asyncio.Event()  # the queue is empty and no put is in flight
        self._empty.set()
        self._putting = False  # the feeder is suspended inside writer.put: it is full
        self._feeding = True  # False once the feeder has ended: nothing will take the queue
        self._reading = True
        self._acceptor = Acceptor(
            lambda: Conn(self),
            limits=limits,
            fds=fds,
            counters=counters,
            what=(TRANSPORT, codec.NAME),
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    async def __aenter__(self) -> TcpListener:
        self._loop = asyncio.get_running_loop()
        self.clock = self._loop.time()
        self.port = await self._acceptor.start(self.host, self.port, backlog=4096)
        self._tasks = [
            asyncio.create_task(self._feed(), name=f"tcp-{self.codec.NAME}-feed"),
            asyncio.create_task(self._sweep(), name=f"tcp-{self.codec.NAME}-sweep"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_reading()
        for conn in list(self._conns):
            conn.close()
        await asyncio.sleep(0)  # connection_lost runs: truncated tails become dead letters
        await self.flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)  # failures went to wait()

    async def stop_reading(self) -> None:
        """Stop accepting and reading, and hand everything already read to the writer.

        The first step of a clean shutdown: afterwards ``writer.drain()`` commits it and
        sends the acks while the connections are still open.
        """
        self._reading = False
        self._acceptor.close()
        for conn in self._conns:
            conn.pause()
        await self.flush()

    async def wait(self) -> None:
        """Block while the listener works; raise the error that stopped it (writer failure)."""
        await asyncio.shield(self._tasks[0])

    async def flush(self) -> None:
        """Wait until everything read so far has been accepted by the writer.

        Returns as well once the feeder has ended (the writer failed): nothing more will
        be accepted, and ``wait()`` raises the reason.
        """
        if not self._tasks:  # not entered: nothing can be queued
            return
        feeder = self._tasks[0]
        if feeder.done():
            return
        empty = asyncio.ensure_future(self._empty.wait())
        try:
            await asyncio.wait((empty, feeder), return_when=asyncio.FIRST_COMPLETED)
        finally:
            empty.cancel()

    # -- callbacks from connections ------------------------------------------------

    def opened(self, conn: Conn) -> None:
        self._conns.add(conn)
        self._count("connections_opened")
        if not self._reading:
            conn.close()

    def closed(self, conn: Conn) -> None:
        self._conns.discard(conn)
        self._count("connections_closed")
        conn.transport = None

    def received(self, conn: Conn, data: bytes) -> None:
        """Frame, decode and queue one packet's worth of data."""
        conn.last_seen = self.clock
        self._count("bytes_in", len(data))
        buf = conn.buf + data
        f = frame(self.codec, buf, self.max_frame)
        if f.lost is None and f.rest and (f.frames or not conn.buf):
            conn.partial_since = self.clock  # a new frame began in this read
        conn.buf = f.rest if f.lost is None else b""
        if f.frames:  # before a break too: sound frames are stored (and acked) as usual
            self._decode(conn, f.frames, buf[: f.used])
        if f.lost is not None:  # keep what could not be framed and hang up
            self._count("framing_lost")
            self.dead_letter(conn, *f.lost, f.rest)
            conn.hang_up()

    def dead_letter(self, conn: Conn, code: str, detail: str, raw: bytes) -> None:
        """Keep bytes that could not be used, counted like decoder rejects."""
        self._counters.inc("rejects", protocol=self.codec.NAME, code=code)
        letter = DeadLetter(
            TRANSPORT, self.codec.NAME, conn.peer, conn.device_id, code, detail, raw
        )
        device = conn.device_id or ""
        self._submit(conn, Batch(device, TRANSPORT, self.codec.NAME, dead_letters=(letter,)))

    # -- internals -----------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        self._counters.inc(name, n, transport=TRANSPORT, protocol=self.codec.NAME)

    def _decode(self, conn: Conn, frames: list[bytes], raw: bytes) -> None:
        self._count("frames_in", len(frames))
        decoded = decode_safely(
            lambda: self.codec.decode_frames(frames, session=conn.session),
            frames,
            conn.session,
            f"tcp {conn.peer} {self.codec.NAME}",
        )
        conn.session = decoded.session
        named = decoded.device_id or decoded.session.device_id
        if named:
            conn.device_id = named
        device = conn.device_id or ""
        # Asked for every packet, not just the login: a device disabled while connected
        # must get no reply, least of all an ack for fixes that are only dead-lettered.
        # In its protocol too: a known IMEI in another protocol's login is not the device.
        admission = self._registry.admit(device, self.codec.NAME) if device else Admission.KNOWN
        refused = admission.refused
        payload = b"" if refused else b"".join(decoded.replies)
        # every fix or reject becomes a row to write, so its ack waits for that commit
        writes = not refused and bool(len(decoded.fixes) or decoded.rejects)
        acker = self._acker(conn, payload) if writes and payload else None
        batch = to_batch(
            decoded,
            device_id=device,
            transport=TRANSPORT,
            protocol=self.codec.NAME,
            peer=conn.peer,
            registry=self._registry,
            counters=self._counters,
            raw=raw,
            on_commit=acker,
        )
        if device and not refused and not conn.known and conn.transport is not None:
            conn.known = True  # served with the database and the other devices from now on
            priority.promote(conn.transport)
        if refused:
            self._refuse(conn, decoded, batch, raw, admission)
        elif writes:
            self._submit(conn, batch)
        elif payload:  # nothing to make durable first
            conn.reply(payload)
        self._judge(conn, len(frames), decoded)

    def _judge(self, conn: Conn, frames: int, decoded: Decoded) -> None:
        """Hang up after ``max_bad_frames`` rejects in a row with no good frame between:
        a peer sending only garbage would otherwise be read (and dead-lettered) forever."""
        if len(decoded.rejects) < frames or len(decoded.fixes):
            conn.bad_frames = 0
            return
        conn.bad_frames += len(decoded.rejects)
        if self.max_bad_frames and conn.bad_frames >= self.max_bad_frames and not conn.hanging_up:
            self._count("bad_frames_closed")
            conn.hang_up()

    def _refuse(
        self, conn: Conn, decoded: Decoded, batch: Batch, raw: bytes, admission: Admission
    ) -> None:
        """A device the registry refuses: say so if the protocol can, keep its data, hang up.

        Fixes in the packet were already dead-lettered by ``to_batch``; a packet without
        (a bare login) is kept here, so every refused attempt is in ``dead_letters``.
        """
        if batch.rows:
            self._submit(conn, batch)
        if not len(decoded.fixes):
            detail = "a device not in `devices` (unknown_devices=reject) or disabled"
            if admission is Admission.WRONG_PROTOCOL:
                detail = f"a device registered for another protocol than {self.codec.NAME}"
            self.dead_letter(conn, admission.value, detail, raw)
        if conn.transport is not None:
            self._count("refused_devices")
            conn.reply(decoded.refused_reply)  # after acks owed for what it sent before
            conn.hang_up()

    def _acker(self, conn: Conn, payload: bytes) -> Callable[[], None]:
        """An ``on_commit`` that sends ``payload`` from the loop thread in its turn."""
        slot = Reply(payload, False)
        conn.owed.append(slot)
        assert self._loop is not None

        def write() -> None:
            slot.ready = True
            conn.flush()

        return on_loop(self._loop, write)

    def _submit(self, conn: Conn, batch: Batch) -> None:
        if not self._feeding:  # the writer failed: nobody will ever take it
            self._count("dropped_after_writer_failure")
            return
        self._queue.append((conn, batch))
        conn.queued += 1
        self._empty.clear()
        if self._putting and not conn.paused:  # the writer is full: this device waits
            self._count("reads_paused")
            conn.pause()
        self._wake.set()

    async def _feed(self) -> None:
        """Hand queued batches to the writer in arrival order; resume paused devices.

        If the writer fails, every device is disconnected (it will resend elsewhere or
        later: nothing unacked is lost) and the error surfaces through ``wait()``.
        """
        try:
            while True:
                if not self._queue:
                    self._empty.set()
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                conn, batch = self._queue.popleft()
                self._putting = True
                try:
                    await self._writer.put(batch)
                finally:
                    self._putting = False
                conn.queued -= 1
                if conn.queued == 0 and self._reading:
                    conn.resume()
        except Exception:
            log.exception("tcp %s: the writer failed, closing every connection", self.codec.NAME)
            self._feeding = False
            self._reading = False
            self._acceptor.close()
            for conn in list(self._conns):
                conn.close()
            self._queue.clear()
            self._empty.set()
            raise

    async def _sweep(self) -> None:
        """Advance the coarse clock and close connections idle for ``idle_timeout_s``."""
        loop = asyncio.get_running_loop()
        tick = min(max(self.idle_timeout_s / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(tick)
            self.clock = loop.time()
            if not self._reading:
                continue
            horizon = self.clock - self.idle_timeout_s
            for conn in [c for c in self._conns if not c.paused]:
                if conn.last_seen < horizon:
                    self._count("idle_closed")
                    conn.close()
                elif conn.buf and conn.partial_since < horizon:  # a byte now and then
                    self._count("slow_frames_closed")
                    conn.close()
