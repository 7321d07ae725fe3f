"""MQTT ingest: QoS 1 fixes are acknowledged only after the database commit.

Topic scheme (devices publish, ingest subscribes; ``<prefix>`` is ``mqtt_topic_prefix``,
default ``menara/v1``):

    <prefix>/<device_id>/nmea   one or more NMEA 0183 sentences, newline separated
    <prefix>/<device_id>/json   one menara-json fix object, or an array of them

Other topics are not subscribed, so the broker never delivers them. A delivered message
that cannot be used — a device id that ``decoders.model.valid_device_id`` refuses (empty as
in ``<prefix>//nmea``, longer than 64 characters, not printable ASCII), empty payload, not UTF-8,
larger than ``MAX_PAYLOAD_BYTES``, or content its decoder rejects — is a counted reject kept
as a dead letter with the raw payload, and acknowledged once that dead letter is committed;
other devices are never affected.

Identity: ingest sees a topic, never the broker user that published it, so the device
id in the topic is what binds a message to a device (and to its registered protocol:
``/nmea`` is ``nmea``, ``/json`` is ``menara-json``; the other kind is ``wrong_protocol``).
That a device can publish only under its own id is the broker's job: its user name is
its device id, its password is its secret, and the ACL ``pattern write <prefix>/%u/#``
(``deploy/mosquitto/acl``) confines it to its own topics. A broker that lets anyone
publish lets anyone speak for any device.

Delivery: an MQTT v5 persistent session (clean start off, session expiry) with manual
acks. A QoS 1 message's PUBACK goes out only after the writer has committed the batch
holding it, so after a crash anywhere the broker still has every unacknowledged message
and sends it again; the database de-duplicates on (device, fix time). QoS 0 is best effort.

Decoder sessions (the last UTC date an NMEA stream gave, for GGA sentences that carry
none) are kept per (device id, protocol) only for devices the registry admits, and at
most ``MAX_SESSIONS`` of them, least recently used evicted first: anyone may publish to
``<prefix>/<random id>/nmea``, and that must not grow memory. An evicted device starts
again from an empty session, exactly as after a restart.

Threads: one network thread (``ingest._mqtt_client``) owns the paho client, reads
messages into chunks and hands each chunk to this module, which decodes each device's
share in one decoder call and packages the batches; the network thread puts them into the
writer. While the writer is full it takes no new chunk and reads at most Receive Maximum
messages ahead (the broker queues the rest: back-pressure, never a drop), but keeps the
connection alive. PUBACKs go out from the network thread after the writer's commit
callbacks; if that thread dies, ``wait()`` raises its error.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

from decoders import PROTOCOLS, Decoded, Reject, Session, empty_fixes
from decoders.model import valid_device_id
from ingest._mqtt_client import KEEPALIVE_S, BatchSink, Connect, NetworkThread
from ingest._mqtt_wire import Received
from ingest.counters import Counters
from ingest.devices import DeviceRegistry
from ingest.intake import decode_safely, to_batch
from ingest.model import Batch

__all__ = [
    "KINDS",
    "MAX_PAYLOAD_BYTES",
    "MAX_SESSIONS",
    "BatchSink",
    "Connect",
    "MqttIngest",
    "MqttSettings",
    "NetworkThread",
    "Received",
    "parse_topic",
]  # the network thread too: `menara rules` reads its rounds with it

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {"nmea": "nmea", "json": "menara-json"}  # topic suffix -> protocol
MAX_PAYLOAD_BYTES = 64 * 1024  # the broker refuses above 256 KB (deploy/mosquitto.conf)
MAX_SESSIONS = 100_000  # decoder sessions kept (LRU): ~300 bytes each (UUID ids), 30 MB full
SUBSCRIBE_WAIT_S = 5.0  # entering waits this long for the broker, then goes on retrying

# Reject codes for messages that never reach a decoder.
BAD_TOPIC = "bad_topic"
EMPTY_PAYLOAD = "empty_payload"
PAYLOAD_TOO_LARGE = "payload_too_large"
BAD_UTF8 = "bad_utf8"


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


def parse_topic(topic: str, prefix: str) -> tuple[str, str] | None:
    """``(device_id, protocol)`` for ``<prefix>/<device_id>/<kind>``, else None.

    The device id must pass ``valid_device_id`` (the rule every transport shares), so an
    id the database cannot key on never gets past the topic.
    """
    head, sep, rest = topic.partition(prefix + "/") if prefix else ("", "/", topic)
    if head or not sep:
        return None
    device_id, _, kind = rest.partition("/")
    if kind not in KINDS or not valid_device_id(device_id):
        return None
    return device_id, KINDS[kind]


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
        keepalive_s: int = KEEPALIVE_S,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        s = settings
        self._settings = settings
        self._writer = writer
        self._registry = registry
        self._counters = counters
        self._max_payload = max_payload_bytes
        self._max_sessions = max(1, max_sessions)
        # Admitted devices only, least recently used first; the network thread alone uses it.
        self._sessions: OrderedDict[tuple[str, str], Session] = OrderedDict()
        share = f"$share/{s.mqtt_shared_group}/" if s.mqtt_shared_group else ""
        connect = Connect(
            host=s.mqtt_host,
            port=s.mqtt_port,
            client_id=s.mqtt_client_id,
            username=s.mqtt_username,
            password=s.mqtt_password,
            topics=tuple(f"{share}{s.mqtt_topic_prefix}/+/{kind}" for kind in KINDS),
            qos=s.mqtt_qos,
            receive_maximum=s.mqtt_receive_maximum,
            session_expiry_s=s.mqtt_session_expiry_s,
            keepalive_s=keepalive_s,
        )
        self._net = NetworkThread(
            connect, writer=writer, counters=counters, to_batches=self._batches
        )

    async def __aenter__(self) -> MqttIngest:
        self._net.start()
        try:
            async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                await self._net.subscribed()
        except TimeoutError:
            log.warning("MQTT not subscribed yet; still trying in the background")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.stop_reading()
            await self._writer.drain()
        finally:
            await self._net.close()

    async def stop_reading(self) -> None:
        """Read no more messages; returns once everything read is in the writer's hands."""
        await self._net.stop_reading()

    async def subscribed(self) -> None:
        """Wait until the broker has confirmed the first subscription."""
        await self._net.subscribed()

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up now (for readiness)."""
        return self._net.connected

    async def wait(self) -> None:
        """Block while MQTT intake works; raise the error that stopped it (writer failure)."""
        await self._net.wait()

    @property
    def decoder_sessions(self) -> int:
        """How many decoder sessions are kept (at most ``max_sessions``)."""
        return len(self._sessions)

    # --- decoding (network thread) ---

    def _batches(self, inbox: Sequence[Received]) -> list[Batch]:
        """A chunk as batches: each device's messages decoded together, rejects apart."""
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
        session = self._sessions.pop(key, None) or Session(device_id=g.device_id)
        decoded = decode_safely(
            lambda: PROTOCOLS[g.protocol].decode_frames(g.payloads, session=session),
            g.payloads,
            session,
            f"mqtt {g.topic} {g.protocol}",
        )
        self._keep_session(key, decoded.session)
        return self._batch(g, decoded)

    def _keep_session(self, key: tuple[str, str], session: Session) -> None:
        """Remember an admitted device's session as the most recent; evict beyond the cap.

        A refused device's session is not kept (nor one of a device disabled since).
        """
        if self._registry.admit(*key).refused:
            return
        self._sessions[key] = session  # popped before decoding, so this is the newest end
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)

    def _rejected(
        self, payload: bytes, mids: list[int], topic: str, where: tuple[str, str] | None, code: str
    ) -> Batch:
        device_id, protocol = where or ("", "mqtt")
        detail = {
            BAD_TOPIC: f"topic is not <prefix>/<device id>/{'|'.join(KINDS)} with a device id"
            " of 1-64 printable ASCII characters",
            EMPTY_PAYLOAD: "empty payload",
            PAYLOAD_TOO_LARGE: f"payload of {len(payload)} bytes > {self._max_payload}",
            BAD_UTF8: "payload is not UTF-8 text",
        }[code]
        reject = Reject(code, detail, payload)
        decoded = Decoded(fixes=empty_fixes(), session=Session(), rejects=(reject,))
        return self._batch(_Group(topic, device_id, protocol, [payload], mids), decoded)

    def _batch(self, g: _Group, decoded: Decoded) -> Batch:
        """Count and package like every transport; the batch's commit sends its PUBACKs."""
        return to_batch(
            decoded,
            device_id=g.device_id,
            transport="mqtt",
            protocol=g.protocol,
            peer=g.topic,
            registry=self._registry,
            counters=self._counters,
            raw=b"\n".join(g.payloads),
            on_commit=self._net.on_commit(g.mids) if g.mids else None,
        )
