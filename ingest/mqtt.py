"""MQTT ingest: QoS 1 fixes are acknowledged only after the database commit.

Topic scheme (devices publish, ingest subscribes; ``<prefix>`` is ``mqtt_topic_prefix``,
default ``menara/v1``):

    <prefix>/<device_id>/nmea   one or more NMEA 0183 sentences, newline separated
    <prefix>/<device_id>/json   one menara-json fix object, or an array of them

Other topics are not subscribed, so the broker never delivers them. A delivered message
that cannot be used — empty device id (``<prefix>//nmea``), empty payload, not UTF-8,
larger than ``MAX_PAYLOAD_BYTES``, or content its decoder rejects — is a counted reject kept
as a dead letter with the raw payload, and acknowledged once that dead letter is committed;
other devices are never affected.

Delivery: an MQTT v5 persistent session (clean start off, session expiry) with manual
acks. A QoS 1 message's PUBACK goes out only after the writer has committed the batch
holding it, so after a crash anywhere the broker still has every unacknowledged message
and sends it again; the database de-duplicates on (device, fix time). QoS 0 is best effort.

Threads: one network thread owns the paho client through paho's external-loop API
(``loop_read``/``loop_write``/``loop_misc`` around our own ``select``). It reads messages
into a chunk, decodes each device's share of a chunk in one decoder call, and hands the
batches to ``writer.put_threadsafe``, which blocks while the writer is full: we then stop
reading and the broker queues (back-pressure, never a drop). The writer's commit
callbacks run in the event loop; they only queue the message ids and wake the network
thread, which sends the PUBACKs, so one thread alone ever touches the paho client.
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from decoders import PROTOCOLS, Decoded, DecodeError, Reject, Session, empty_fixes
from ingest import backoff
from ingest.counters import Counters
from ingest.devices import DeviceRegistry
from ingest.intake import to_batch
from ingest.model import Batch

__all__ = ["KINDS", "MAX_PAYLOAD_BYTES", "BatchSink", "MqttIngest", "MqttSettings", "parse_topic"]

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {"nmea": "nmea", "json": "menara-json"}  # topic suffix -> protocol
MAX_PAYLOAD_BYTES = 64 * 1024  # the broker refuses above 256 KB (deploy/mosquitto.conf)
# A chunk is decoded and handed to the writer when it holds CHUNK_MESSAGES, when the
# socket has been quiet for IDLE_FLUSH_S, or when its first message is FLUSH_DELAY_S old.
# Big chunks matter: a decoder call costs ~30 us however few sentences it gets.
CHUNK_MESSAGES = 2000  # well below mqtt_receive_maximum, or the broker stops sending
FLUSH_DELAY_S = 0.05
IDLE_FLUSH_S = 0.002
READ_BURST = 500  # packets read per select() wake-up
READ_BUFFER_BYTES = 256 * 1024
KEEPALIVE_S = 30
SUBSCRIBE_WAIT_S = 5.0  # entering waits this long for the broker, then goes on retrying

# Reject codes for messages that never reach a decoder.
BAD_TOPIC = "bad_topic"
EMPTY_PAYLOAD = "empty_payload"
PAYLOAD_TOO_LARGE = "payload_too_large"
BAD_UTF8 = "bad_utf8"
DECODER_ERROR = "decoder_error"  # a decoder raised instead of returning rejects (a bug)


class MqttSettings(Protocol):
    """The ``mqtt_*`` part of ``menara.settings.Settings`` (ingest may not import menara)."""

    @property
    def mqtt_host(self) -> str: ...
    @property
    def mqtt_port(self) -> int: ...
    @property
    def mqtt_username(self) -> str: ...
    @property
    def mqtt_password(self) -> str: ...
    @property
    def mqtt_topic_prefix(self) -> str: ...
    @property
    def mqtt_client_id(self) -> str: ...
    @property
    def mqtt_shared_group(self) -> str: ...
    @property
    def mqtt_qos(self) -> int: ...
    @property
    def mqtt_receive_maximum(self) -> int: ...
    @property
    def mqtt_session_expiry_s(self) -> int: ...


class BatchSink(Protocol):
    """What MQTT ingest needs from the writer."""

    def put_threadsafe(self, batches: Sequence[Batch], timeout: float | None = None) -> None: ...

    async def drain(self) -> None: ...


def parse_topic(topic: str, prefix: str) -> tuple[str, str] | None:
    """``(device_id, protocol)`` for ``<prefix>/<device_id>/<kind>``, else None."""
    head, sep, rest = topic.partition(prefix + "/") if prefix else ("", "/", topic)
    if head or not sep:
        return None
    device_id, _, kind = rest.partition("/")
    if not device_id or kind not in KINDS:
        return None
    return device_id, KINDS[kind]


_Received = tuple[str, bytes, int, int]  # topic, payload, packet id, QoS


class _BufferedClient(mqtt.Client):
    """paho with buffered reads: one ``recv`` serves hundreds of packets.

    paho 2.x reads each packet with three ``recv`` calls (type, length, body), each a
    syscall that also offers the GIL to the event loop; buffering measured +15-20 %
    messages/s. This overrides paho's private ``_sock_recv`` (paho-mqtt is pinned below 3);
    every MQTT test runs through it.
    """

    _rbuf = b""
    _rpos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(READ_BUFFER_BYTES)  # BlockingIOError when empty
            if not data:
                return data  # end of stream: paho reports the connection lost
            self._rbuf, self._rpos = data, 0
        start = self._rpos
        self._rpos = min(start + bufsize, len(self._rbuf))
        return self._rbuf[start : self._rpos]

    def buffered(self) -> bool:
        """Bytes already read from the socket and not yet parsed (select won't see them)."""
        return self._rpos < len(self._rbuf)

    def drop_buffer(self) -> None:
        """Forget a lost connection's bytes before the next one starts."""
        self._rbuf, self._rpos = b"", 0


@dataclass(slots=True)
class _Group:
    """One topic's messages in a chunk: decoded together, acknowledged together."""

    topic: str
    device_id: str
    protocol: str
    payloads: list[bytes] = field(default_factory=list)
    mids: list[int] = field(default_factory=list)


class MqttIngest:
    """Subscribe to the device topics and feed the writer; an async context manager.

    Leaving the context stops reading, waits until everything read is committed and
    acknowledged, and disconnects without ending the session (the broker keeps queueing).
    """

    def __init__(
        self,
        *,
        settings: MqttSettings,
        writer: BatchSink,
        registry: DeviceRegistry,
        counters: Counters,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self._settings = settings
        self._writer = writer
        self._registry = registry
        self._counters = counters
        self._max_payload = max_payload_bytes
        self._client = self._make_client()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._acks: collections.deque[tuple[int, list[int]]] = collections.deque()
        self._generation = 0  # bumped per connection: message ids are not valid across them
        self._inbox: list[_Received] = []
        self._flush_at = 0.0
        self._sessions: dict[tuple[str, str], Session] = {}
        self._connects = 0
        self._reading = True  # cleared on exit: read nothing more
        self._closing = threading.Event()  # set on exit once everything read is committed
        self._thread = threading.Thread(target=self._run, name="menara-mqtt", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribed = asyncio.Event()
        self._flushed = asyncio.Event()

    async def __aenter__(self) -> MqttIngest:
        self._loop = asyncio.get_running_loop()
        s = self._settings
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = s.mqtt_session_expiry_s
        props.ReceiveMaximum = s.mqtt_receive_maximum
        self._client.connect_async(
            s.mqtt_host, s.mqtt_port, KEEPALIVE_S, clean_start=False, properties=props
        )
        self._thread.start()
        try:
            async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                await self._subscribed.wait()
        except TimeoutError:
            log.warning("MQTT not subscribed yet; still trying in the background")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_reading()
        await self._writer.drain()
        self._closing.set()
        self._wake()
        await asyncio.to_thread(self._thread.join)
        self._wake_r.close()
        self._wake_w.close()

    async def stop_reading(self) -> None:
        """Read no more messages; returns once everything read is in the writer's hands."""
        self._reading = False
        self._wake()
        await self._flushed.wait()

    async def subscribed(self) -> None:
        """Wait until the broker has confirmed the first subscription."""
        await self._subscribed.wait()

    # --- paho client and its callbacks (network thread) ---

    def _make_client(self) -> _BufferedClient:
        s = self._settings
        client = _BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=s.mqtt_client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if s.mqtt_username:
            client.username_pw_set(s.mqtt_username, s.mqtt_password or None)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _topics(self) -> list[str]:
        s = self._settings
        share = f"$share/{s.mqtt_shared_group}/" if s.mqtt_shared_group else ""
        return [f"{share}{s.mqtt_topic_prefix}/+/{kind}" for kind in KINDS]

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
            self._settings.mqtt_host,
            self._settings.mqtt_port,
            flags.session_present,
        )
        qos = SubscribeOptions(qos=self._settings.mqtt_qos)
        client.subscribe([(t, qos) for t in self._topics()])

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, _mid: int, rcs: list[ReasonCode], _p: Any
    ) -> None:
        failed = [str(rc) for rc in rcs if rc.is_failure]
        if failed:
            log.error("MQTT subscription refused: %s", ", ".join(failed))
        elif self._loop is not None:
            log.info("MQTT subscribed to %s", ", ".join(self._topics()))
            self._loop.call_soon_threadsafe(self._subscribed.set)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if not self._closing.is_set():
            log.warning("MQTT connection lost: %s", rc)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if not self._inbox:
            self._flush_at = time.monotonic() + FLUSH_DELAY_S
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # brokers refuse these; parse_topic rejects ""
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
        except Exception:
            log.exception("MQTT ingest stopped")
            raise
        finally:
            self._signal_flushed()

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
            buffered = self._reading and client.buffered()
            timeout = 0.0 if buffered else IDLE_FLUSH_S if self._inbox else 1.0
            readers = [sock, self._wake_r] if self._reading else [self._wake_r]
            writers = [sock] if client.want_write() else []
            readable, _, _ = select.select(readers, writers, [], timeout)
            idle = not readable and not buffered
            self._drain_wake()
            self._send_acks()
            if (buffered or sock in readable) and self._read_burst() != mqtt.MQTT_ERR_SUCCESS:
                return
            if client.want_write() and client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
                return
            if client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
                return
            if self._inbox and (
                idle or len(self._inbox) >= CHUNK_MESSAGES or time.monotonic() >= self._flush_at
            ):
                self._flush()

    def _read_burst(self) -> MQTTErrorCode:
        """Read packets until the socket has nothing complete left (or a chunk is full)."""
        for _ in range(READ_BURST):
            before = len(self._inbox)
            rc = self._client.loop_read()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return rc
            if len(self._inbox) == before or len(self._inbox) >= CHUNK_MESSAGES:
                break
        return mqtt.MQTT_ERR_SUCCESS

    def _send_acks(self) -> None:
        sent = 0
        while self._acks:
            generation, mids = self._acks.popleft()
            if generation != self._generation:
                continue
            for mid in mids:
                self._client.ack(mid, 1)
            sent += len(mids)
        if sent:
            self._counters.inc("mqtt_acks_sent", sent)

    def _done_reading(self) -> None:
        """On exit: commit what was read, then tell ``__aexit__`` it may drain the writer."""
        self._flush()
        self._signal_flushed()

    def _signal_flushed(self) -> None:
        if self._loop is not None and not self._flushed.is_set():
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                self._loop.call_soon_threadsafe(self._flushed.set)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    # --- decoding (network thread) ---

    def _flush(self) -> None:
        """Decode the chunk read so far and hand it to the writer (blocks while it is full)."""
        if not self._inbox:
            return
        inbox, self._inbox = self._inbox, []
        batches = self._batches(inbox)
        self._writer.put_threadsafe(batches)

    def _batches(self, inbox: Sequence[_Received]) -> list[Batch]:
        groups: dict[str, _Group] = {}
        batches: list[Batch] = []
        qos_in = [0, 0, 0]
        prefix = self._settings.mqtt_topic_prefix
        for topic, payload, mid, qos in inbox:
            qos_in[qos] += 1
            g = groups.get(topic)
            where = (g.device_id, g.protocol) if g else parse_topic(topic, prefix)
            code = BAD_TOPIC if where is None else self._payload_problem(payload)
            if where is None or code is not None:
                mids = [mid] if qos else []
                batches.append(self._rejected(payload, mids, topic, where, code or BAD_TOPIC))
                continue
            if g is None:
                g = groups[topic] = _Group(topic, *where)
            g.payloads.append(payload)
            if qos:
                g.mids.append(mid)
        for q, n in enumerate(qos_in):
            if n:
                self._counters.inc("mqtt_messages_in", n, qos=str(q))
        batches.extend(self._decode(g) for g in groups.values())
        return batches

    def _payload_problem(self, payload: bytes) -> str | None:
        if not payload:
            return EMPTY_PAYLOAD
        if len(payload) > self._max_payload:
            return PAYLOAD_TOO_LARGE
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            return BAD_UTF8
        return None

    def _decode(self, g: _Group) -> Batch:
        key = (g.device_id, g.protocol)
        session = self._sessions.get(key) or Session(device_id=g.device_id)
        try:
            decoded = PROTOCOLS[g.protocol].decode_frames(g.payloads, session=session)
        except Exception as exc:  # decoders report bad frames as rejects; this is a backstop
            log.exception("%s decoder failed on %s", g.protocol, g.topic)
            code = exc.code if isinstance(exc, DecodeError) else DECODER_ERROR
            rejects = tuple(Reject(code, str(exc), p) for p in g.payloads)
            decoded = Decoded(fixes=empty_fixes(), session=session, rejects=rejects)
        self._sessions[key] = decoded.session
        return self._batch(g, decoded)

    def _rejected(
        self, payload: bytes, mids: list[int], topic: str, where: tuple[str, str] | None, code: str
    ) -> Batch:
        device_id, protocol = where or ("", "mqtt")
        detail = {
            BAD_TOPIC: f"topic is not <prefix>/<device>/{'|'.join(KINDS)}",
            EMPTY_PAYLOAD: "empty payload",
            PAYLOAD_TOO_LARGE: f"payload of {len(payload)} bytes > {self._max_payload}",
            BAD_UTF8: "payload is not UTF-8 text",
        }[code]
        reject = Reject(code, detail, payload)
        decoded = Decoded(fixes=empty_fixes(), session=Session(), rejects=(reject,))
        return self._batch(_Group(topic, device_id, protocol, [payload], mids), decoded)

    def _batch(self, g: _Group, decoded: Decoded) -> Batch:
        """Count and package like every transport; the batch's commit sends its PUBACKs."""
        generation, mids = self._generation, g.mids

        def ack() -> None:  # in the event loop, after COMMIT
            self._acks.append((generation, mids))
            self._wake()

        return to_batch(
            decoded,
            device_id=g.device_id,
            transport="mqtt",
            protocol=g.protocol,
            peer=g.topic,
            registry=self._registry,
            counters=self._counters,
            raw=b"\n".join(g.payloads),
            on_commit=ack if mids else None,
        )
