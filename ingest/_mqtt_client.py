"""The MQTT network thread: one buffered paho client, reconnects, PUBACKs after commit.

One thread owns the paho client through paho's external-loop API
(``loop_read``/``loop_write``/``loop_misc`` around our own ``select``). It reads messages
into chunks, turns each into batches with ``to_batches`` (``ingest.mqtt``) and puts them
into the writer. While the writer is full it waits, keeping the connection alive: it
sends PUBACKs and PINGREQs, and reads on up to Receive Maximum messages into the next
chunk, since the PINGRESP queues behind what the broker already sent (paho drops a
connection whose PINGRESP is not read within a keepalive). For QoS 1 the broker sends no
more than that; the rest stays queued there (back-pressure, never a drop). A put is never
abandoned on a timeout, so no batch is accepted twice (twice would mean PUBACKs for
packet ids the broker may have reused since).

Commit callbacks run in the event loop; they only queue the message ids and wake the
thread, which sends the PUBACKs: one thread alone touches the paho client. If it dies
(the writer failed, or a bug) it disconnects and ``wait()`` raises the error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest import backoff
from ingest._mqtt_wire import BufferedClient, Received
from ingest.counters import Counters
from ingest.model import Batch

log = logging.getLogger("ingest.mqtt")  # the log lines operators know, unchanged by the split

# A chunk is decoded and handed to the writer when it holds CHUNK_MESSAGES, when the
# socket has been quiet for IDLE_FLUSH_S, or when its first message is FLUSH_DELAY_S old.
# Big chunks matter: a decoder call costs ~30 us however few sentences it gets.
CHUNK_MESSAGES = 2000  # well below mqtt_receive_maximum, or the broker stops sending
FLUSH_DELAY_S = 0.05
IDLE_FLUSH_S = 0.002
READ_BURST = 500  # packets read per select() wake-up
KEEPALIVE_S = 30
MAX_TICK_S = 1.0  # longest select(); keepalive/8 when shorter, so PINGREQs go out on time


class BatchSink(Protocol):
    """What MQTT ingest needs from the writer (which must run in the ingest's event loop)."""

    async def put(self, batch: Batch) -> None: ...

    async def drain(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Connect:
    """Where and how the network thread connects and what it subscribes to."""

    host: str
    port: int
    client_id: str
    username: str
    password: str
    topics: tuple[str, ...]
    qos: int
    receive_maximum: int
    session_expiry_s: int
    keepalive_s: int = KEEPALIVE_S


class NetworkThread:
    """The paho client on a thread of its own; ``start``, then ``stop_reading``, ``close``.

    ``to_batches`` turns a chunk into writer batches on the network thread; a batch whose
    commit must acknowledge messages carries ``on_commit(mids)`` as its commit callback.
    """

    def __init__(
        self,
        connect: Connect,
        *,
        writer: BatchSink,
        counters: Counters,
        to_batches: Callable[[list[Received]], list[Batch]],
    ) -> None:
        self._connect = connect
        self._writer = writer
        self._counters = counters
        self._to_batches = to_batches
        self._client = self._make_client()
        self._tick = min(MAX_TICK_S, connect.keepalive_s / 8)
        # While the writer is full: read on up to this many messages (see the docstring).
        self._backlog = max(CHUNK_MESSAGES, connect.receive_maximum)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._acks: collections.deque[tuple[int, list[int]]] = collections.deque()
        self._generation = 0  # bumped per connection: message ids are not valid across them
        self._inbox: list[Received] = []
        self._flush_at = 0.0
        self._connects = 0
        self._reading = True  # cleared on exit: read nothing more
        self._closing = threading.Event()  # set on exit once everything read is committed
        self._thread = threading.Thread(target=self._run, name="menara-mqtt", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribed = asyncio.Event()
        self._flushed = asyncio.Event()
        self._finished = asyncio.Event()
        self._error: Exception | None = None

    # --- the event loop's side ---

    def start(self) -> None:
        """Connect in the background; call from the event loop the writer runs in."""
        self._loop = asyncio.get_running_loop()
        c = self._connect
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = c.session_expiry_s
        props.ReceiveMaximum = c.receive_maximum
        self._client.connect_async(
            c.host, c.port, c.keepalive_s, clean_start=False, properties=props
        )
        self._thread.start()

    async def subscribed(self) -> None:
        """Wait until the broker has confirmed the first subscription."""
        await self._subscribed.wait()

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up now (for readiness; a flag read)."""
        return self._client.is_connected()

    async def stop_reading(self) -> None:
        """Read no more messages; returns once everything read is in the writer's hands."""
        self._reading = False
        self._wake()
        await self._flushed.wait()

    async def close(self) -> None:
        """Send the PUBACKs owed, disconnect (keeping the session) and end the thread."""
        self._closing.set()
        self._wake()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)
        self._wake_r.close()
        self._wake_w.close()

    async def wait(self) -> None:
        """Block while the thread runs; raise the error that stopped it, if one did."""
        await self._finished.wait()
        if self._error is not None:
            raise self._error

    def on_commit(self, mids: list[int]) -> Callable[[], None]:
        """The commit callback of a batch holding these messages: it queues their PUBACKs."""
        generation = self._generation

        def ack() -> None:  # in the event loop, after COMMIT
            self._acks.append((generation, mids))
            if len(self._acks) == 1:  # else a wake is pending, or the thread is popping
                self._wake()

        return ack

    # --- paho client and its callbacks (network thread) ---

    def _make_client(self) -> BufferedClient:
        c = self._connect
        client = BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=c.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if c.username:
            client.username_pw_set(c.username, c.password or None)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any
    ) -> None:
        if rc.is_failure:
            log.error("MQTT broker refused the connection: %s", rc)
            return
        self._connects += 1
        if self._connects > 1:
            self._counters.inc("mqtt_reconnects")
        log.info(
            "MQTT connected to %s:%d (session present: %s)",
            self._connect.host,
            self._connect.port,
            flags.session_present,
        )
        qos = SubscribeOptions(qos=self._connect.qos)
        client.subscribe([(t, qos) for t in self._connect.topics])

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, _mid: int, rcs: list[ReasonCode], _p: Any
    ) -> None:
        failed = [str(rc) for rc in rcs if rc.is_failure]
        if failed:
            log.error("MQTT subscription refused: %s", ", ".join(failed))
        elif self._loop is not None:
            log.info("MQTT subscribed to %s", ", ".join(self._connect.topics))
            self._loop.call_soon_threadsafe(self._subscribed.set)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if not self._closing.is_set():
            log.warning("MQTT connection lost: %s", rc)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if not self._inbox:
            self._flush_at = time.monotonic() + FLUSH_DELAY_S
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # brokers refuse these; ingest rejects ""
            topic = ""
        # Keep four fields, not the message: its v5 Properties are ~60 objects that would
        # survive into the GC's old generation and make every collection slow.
        self._inbox.append((topic, bytes(msg.payload), msg.mid, msg.qos))

    # --- the network thread ---

    def _run(self) -> None:
        retry = backoff.delays()
        try:
            while not self._closing.is_set():
                if self._client.socket() is None:
                    self._client.drop_buffer()
                    try:
                        self._client.reconnect()
                    except OSError as exc:
                        delay = next(retry)
                        log.warning("MQTT broker unreachable (%s); retrying in %.1f s", exc, delay)
                        self._wait_offline(delay)
                        continue
                    retry = backoff.delays()
                self._serve()
                self._flush()  # what the lost connection delivered is still committed
                self._generation += 1  # ... but its ids are void: the broker resends
        except Exception as exc:
            log.exception("MQTT ingest stopped")
            self._error = exc
            if self._client.socket() is not None:  # unacked messages stay in the session
                with contextlib.suppress(Exception):
                    self._client.disconnect()
        finally:
            self._signal_flushed()
            self._call_soon(self._finished.set)

    def _wait_offline(self, delay: float) -> None:
        """Back off before a reconnect, but finish at once when we are leaving."""
        deadline = time.monotonic() + delay
        while not self._closing.is_set() and (left := deadline - time.monotonic()) > 0:
            if not self._reading:
                self._done_reading()
            select.select([self._wake_r], [], [], left)
            self._drain_wake()

    def _serve(self) -> None:
        """Run one connection until it is lost or we have disconnected."""
        client = self._client
        sock = client.socket()
        while sock is not None and client.socket() is sock:
            if not self._reading:
                self._done_reading()
                if self._closing.is_set() and not self._acks and not client.want_write():
                    client.disconnect()
                    return
            timeout = IDLE_FLUSH_S if self._inbox else self._tick
            idle = self._tend(sock, limit=CHUNK_MESSAGES, timeout=timeout)
            if client.socket() is not sock:
                return
            if self._inbox and (
                idle or len(self._inbox) >= CHUNK_MESSAGES or time.monotonic() >= self._flush_at
            ):
                self._flush()

    def _tend(self, sock: mqtt.SocketLike, *, limit: int, timeout: float) -> bool:
        """One ``select`` round: PUBACKs and keepalive out, packets in while the inbox is
        below ``limit``. True if nothing arrived; a lost connection shows in ``socket()``."""
        client = self._client
        reading = self._reading and len(self._inbox) < limit
        buffered = reading and client.buffered()
        readers = [sock, self._wake_r] if reading else [self._wake_r]
        writers = [sock] if client.want_write() else []
        readable, _, _ = select.select(readers, writers, [], 0.0 if buffered else timeout)
        self._drain_wake()
        self._send_acks()
        if (buffered or sock in readable) and self._read_burst(limit) != mqtt.MQTT_ERR_SUCCESS:
            return False
        if client.want_write() and client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
            return False
        client.loop_misc()
        return not readable and not buffered

    def _read_burst(self, limit: int) -> MQTTErrorCode:
        """Read packets until the socket has nothing complete left (or the inbox is full).

        PUBLISH packets are parsed by ``read_publishes``; paho's ``loop_read`` takes the
        rest (other packets, a malformed one, one it has begun) and reports a lost socket.
        """
        client, inbox = self._client, self._inbox
        for _ in range(READ_BURST):
            before = len(inbox)
            if client.read_publishes(inbox, limit - before) == 0:
                rc = client.loop_read()
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    return rc
            if not before and inbox:
                self._flush_at = time.monotonic() + FLUSH_DELAY_S
            if len(inbox) == before or len(inbox) >= limit:
                break
        return mqtt.MQTT_ERR_SUCCESS

    def _flush(self) -> None:
        """Hand the chunk read so far to the writer; tend the connection until it is in."""
        if not self._inbox:
            return
        chunk, self._inbox = self._inbox, []
        batches = self._to_batches(chunk)
        assert self._loop is not None
        accepted = asyncio.run_coroutine_threadsafe(self._put(batches), self._loop)
        accepted.add_done_callback(lambda _: self._wake())
        sock = self._client.socket()
        while not accepted.done():
            if sock is not None and self._client.socket() is sock:
                self._tend(sock, limit=self._backlog, timeout=self._tick)
            else:  # lost: the chunk is still committed, its PUBACKs are void
                select.select([self._wake_r], [], [], self._tick)
                self._drain_wake()
        accepted.result()  # the writer's error ends the thread

    async def _put(self, batches: list[Batch]) -> None:
        for batch in batches:
            await self._writer.put(batch)

    def _send_acks(self) -> None:
        owed: list[int] = []
        while self._acks:
            generation, mids = self._acks.popleft()
            if generation == self._generation:  # else void: the broker resends them
                owed += mids
        if owed:  # one write for them all, not a send() per PUBACK
            self._client.ack_all(owed)
            self._counters.inc("mqtt_acks_sent", len(owed))

    def _done_reading(self) -> None:
        """On exit: commit what was read, then tell ``stop_reading`` it may return."""
        self._flush()
        self._signal_flushed()

    def _signal_flushed(self) -> None:
        if not self._flushed.is_set():
            self._call_soon(self._flushed.set)

    def _call_soon(self, fn: Callable[[], Any]) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                self._loop.call_soon_threadsafe(fn)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass
