"""Does the broker keep QoS 1 messages queued for a session whose subscriber is away?

Mosquitto's defaults (``max_queued_messages 1000``, as Debian ships them) drop what a
session queues beyond 1,000 messages while its subscriber is gone: when ingest restarts
or crashes under load, fixes the broker has already acknowledged to the devices are lost,
and nothing in Menara can count them. ``deploy/mosquitto.conf`` queues a million.

The probe asks the broker itself, on a private topic nobody else uses: a persistent
session subscribes there (QoS 1) and disconnects, ``PROBE_MESSAGES`` one-byte QoS 1
messages are published to it, the session comes back and counts what was kept. A marker
published after the reconnect ends the count (the broker sends a session's queue in
order, so everything it kept arrives before the marker); the session is then removed.
About 0.3 s on a quiet loopback broker (0.8 s on a busy 2-core machine: paho's
per-packet cost); bounded by ``TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.counters import Counters
from ingest.errors import IngestError
from ingest.mqtt import MqttSettings

__all__ = ["PROBE_MESSAGES", "PROBE_TOPIC", "BrokerCheckError", "Verdict", "check", "probe"]

log = logging.getLogger(__name__)

PROBE_MESSAGES = 1200  # above Debian's max_queued_messages 1000 (+ 20 in flight)
# Under the tree the `menara` user may read and write (deploy/mosquitto/acl), outside
# the device topics; each probe adds /<random id>.
PROBE_TOPIC = "menara/tower/broker-check"
TIMEOUT_S = 3.0  # the whole probe (a loopback broker answers well within 1 s)
PUBLISH_WINDOW = 100  # QoS 1 messages unacknowledged at once, or the broker's Receive Maximum
SESSION_EXPIRY_S = 60  # the probe's session, should the probe die before removing it
QUIET_S = 0.1  # no queued message for this long: the broker has sent what it kept
CLOSE_S = 1.0  # then this long to disconnect cleanly
_MARKER = b"end"
_TICK_S = 0.01


class BrokerCheckError(IngestError):
    """The probe could not finish (broker unreachable, refused, or too slow)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """How many of the probe's queued messages the broker delivered afterwards."""

    sent: int
    kept: int

    @property
    def dropped(self) -> int:
        return self.sent - self.kept


class _Probe:
    """The two clients (the absent subscriber and the publisher), driven by one thread."""

    def __init__(self, host: str, port: int, username: str, password: str) -> None:
        self.host, self.port = host, port
        self.topic = f"{PROBE_TOPIC}/{uuid.uuid4().hex}"
        self.deadline = time.monotonic() + TIMEOUT_S
        self.kept = 0
        self.marker_seen = False
        self.subscribed = False
        self.sent = 0
        self.acked = 0
        self.window = PUBLISH_WINDOW
        self.connected: set[mqtt.Client] = set()
        self.session_present = False
        self.last_message = 0.0
        self.problem = ""
        self.sub = self._client(f"menara-broker-check-{uuid.uuid4().hex[:12]}", username, password)
        self.pub = self._client(f"menara-broker-check-{uuid.uuid4().hex[:12]}", username, password)
        self.sub.on_message = self._on_message
        self.sub.on_subscribe = self._on_subscribe
        self.pub.on_publish = self._on_publish

    def _client(self, client_id: str, username: str, password: str) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username:
            client.username_pw_set(username, password or None)
        client.connect_timeout = TIMEOUT_S
        client.max_inflight_messages_set(0)  # unlimited: paho's own queue costs O(n) per ack
        client.on_connect = self._on_connect
        return client

    # --- callbacks ---

    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            self.problem = f"connection refused: {rc}"
            return
        self.connected.add(client)
        self.session_present = bool(flags.session_present)
        if client is self.pub:  # the broker's Receive Maximum bounds our window
            self.window = min(PUBLISH_WINDOW, getattr(props, "ReceiveMaximum", PUBLISH_WINDOW))

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, _m: int, rcs: list[ReasonCode], _p: Any
    ) -> None:
        if any(rc.is_failure for rc in rcs):
            self.problem = f"subscription to {self.topic} refused: {rcs[0]}"
        self.subscribed = True

    def _on_publish(self, _c: mqtt.Client, _u: Any, _m: int, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self.problem = f"publish to {self.topic} refused: {rc}"
        self.acked += 1

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.last_message = time.monotonic()
        if msg.payload == _MARKER:
            self.marker_seen = True
        else:
            self.kept += 1

    # --- steps ---

    def _published(self) -> bool:
        """Publish on while fewer than ``window`` are unacknowledged; True when done."""
        while self.sent < PROBE_MESSAGES and self.sent - self.acked < self.window:
            self.pub.publish(self.topic, b"x", qos=1)
            self.sent += 1
        return self.acked >= PROBE_MESSAGES

    def _all_or_quiet(self) -> bool:
        return self.kept >= PROBE_MESSAGES or time.monotonic() - self.last_message > QUIET_S

    def pump(self, done: Callable[[], bool], what: str) -> None:
        """Run both clients' network loops until ``done()``; raise on refusal or timeout."""
        while not done():
            if self.problem:
                raise BrokerCheckError(self.problem)
            if time.monotonic() > self.deadline:
                raise BrokerCheckError(f"no answer within {TIMEOUT_S:g} s ({what})")
            self._tick()
        if self.problem:
            raise BrokerCheckError(self.problem)

    def _tick(self) -> None:
        """One ``select`` over both connections (paho's own ``loop`` waits on one)."""
        socks = {c: s for c in (self.sub, self.pub) if (s := c.socket()) is not None}
        writers = [s for c, s in socks.items() if c.want_write()]
        readable, writable, _ = select.select(list(socks.values()), writers, [], _TICK_S)
        for client, sock in socks.items():
            if sock in readable:
                client.loop_read()
            if sock in writable or client.want_write():
                client.loop_write()
            client.loop_misc()

    def connect(self, client: mqtt.Client, *, clean_start: bool) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S if client is self.sub else 0
        props.ReceiveMaximum = 65535
        self.connected.discard(client)
        try:
            client.connect(self.host, self.port, keepalive=10, clean_start=clean_start,
                           properties=props)  # fmt: skip
        except OSError as exc:
            raise BrokerCheckError(f"cannot reach {self.host}:{self.port}: {exc}") from exc
        sock = client.socket()
        if isinstance(sock, socket.socket):  # small packets, each answered: no Nagle delay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pump(lambda: client in self.connected, "connect")

    def disconnect(self, client: mqtt.Client, *, end_session: bool = False) -> None:
        props = None
        if end_session:
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
        client.disconnect(properties=props)
        self.pump(lambda: client.socket() is None, "disconnect")

    def run(self) -> Verdict:
        self.connect(self.sub, clean_start=True)
        self.sub.subscribe(self.topic, options=SubscribeOptions(qos=1))
        self.pump(lambda: self.subscribed, "subscribe")
        self.disconnect(self.sub)  # the session stays, and queues what follows
        self.connect(self.pub, clean_start=True)
        self.pump(self._published, "publish")
        self.connect(self.sub, clean_start=False)
        if not self.session_present:  # the broker forgot the session and all it queued
            return Verdict(sent=PROBE_MESSAGES, kept=0)
        self.last_message = time.monotonic()
        self.pump(self._all_or_quiet, "the queued messages")
        if self.kept < PROBE_MESSAGES:  # dropped, or only slow: the marker queues behind
            self.pub.publish(self.topic, _MARKER, qos=1)
            self.pump(lambda: self.marker_seen, "the marker")
        return Verdict(sent=PROBE_MESSAGES, kept=self.kept)

    def close(self) -> None:
        """Disconnect, removing the probe's session (it holds the broker's memory)."""
        self.deadline, self.problem = time.monotonic() + CLOSE_S, ""
        for client in (self.sub, self.pub):
            if client.socket() is not None:
                try:
                    self.disconnect(client, end_session=client is self.sub)
                except BrokerCheckError:
                    if (sock := client.socket()) is not None:
                        sock.close()


def probe(host: str, port: int, *, username: str = "", password: str = "") -> Verdict:
    """Queue ``PROBE_MESSAGES`` for an absent persistent session; count what comes back.

    Blocking (run it in a thread); raises ``BrokerCheckError`` when it cannot tell.
    """
    p = _Probe(host, port, username, password)
    try:
        return p.run()
    finally:
        p.close()


async def check(settings: MqttSettings, counters: Counters) -> Verdict | None:
    """``menara serve``'s start-up check: probe the broker (in a thread), count what it
    dropped as ``mqtt_broker_probe_dropped`` and warn when that is not zero."""
    s = settings
    where = f"{s.mqtt_host}:{s.mqtt_port}"
    try:
        verdict = await asyncio.to_thread(
            probe, s.mqtt_host, s.mqtt_port, username=s.mqtt_username, password=s.mqtt_password
        )
    except BrokerCheckError as exc:
        acl = (
            f"; user {s.mqtt_username} must read and write {PROBE_TOPIC}/#"
            if s.mqtt_username
            else ""
        )
        log.warning(
            "MQTT broker check: cannot tell whether %s keeps queued messages (%s%s)",
            where,
            exc,
            acl if "refused" in str(exc) else "",
        )
        return None
    counters.inc("mqtt_broker_probe_dropped", verdict.dropped)
    if verdict.dropped:
        log.warning(
            "MQTT broker %s DROPS messages queued while ingest is away: it kept %d of %d"
            " QoS 1 messages queued for an absent session (Mosquitto's default"
            " max_queued_messages is 1000). Fixes it has acknowledged to devices are lost"
            " whenever `menara serve` stops, restarts or falls behind, and no counter shows"
            ' them. Run the broker with deploy/mosquitto.conf (README: "Broker'
            ' configuration"; locally `python -m menara.local_broker`).',
            where,
            verdict.kept,
            verdict.sent,
        )
    else:
        log.info(
            "MQTT broker %s keeps queued messages (%d of %d)", where, verdict.kept, verdict.sent
        )
    return verdict
