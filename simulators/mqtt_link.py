"""One paho-mqtt (v5) client publishing for every MQTT vehicle, counting what the broker took.

paho runs its network loop in its own thread and calls ``on_publish`` there, sometimes
before ``publish()`` has returned the message id; acknowledgements that arrive early are
parked until the id is registered. No lock is held while calling into paho, so its
internal locks and ours can never be taken in opposite orders.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from simulators.model import FleetConfig, TransportStats

# Unacknowledged messages we allow before publishers wait: bounds memory and keeps
# message ids (16 bits) from wrapping onto ones still in flight.
MAX_PENDING = 10_000
# How long to wait for the last acknowledgements after a stop request.
STOP_GRACE_S = 1.0

Key = tuple[str, datetime]


class MqttLink:
    """The shared publisher; ``start`` before, ``close`` after the vehicles run."""

    def __init__(
        self, cfg: FleetConfig, stats: TransportStats, sent: set[Key], *, stop: asyncio.Event
    ) -> None:
        self._cfg = cfg
        self.stats = stats
        self._sent = sent
        self._stop = stop
        self._lock = threading.Lock()
        self._pending: dict[int, Key | None] = {}
        self._early: dict[int, bool] = {}
        self._connected = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"menara-sim-{uuid.uuid4().hex[:12]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.max_inflight_messages_set(1000)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client

    # --- paho thread -------------------------------------------------------------------

    def _on_connect(
        self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any = None
    ) -> None:
        if rc.is_failure:
            self.stats.connect_failures += 1
        else:
            self._connected.set()

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self.stats.connect_failures += 1

    def _on_disconnect(
        self, _c: mqtt.Client, _u: Any, _f: Any, _rc: ReasonCode, _p: Any = None
    ) -> None:
        self._connected.clear()

    def _on_publish(
        self, _c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any = None
    ) -> None:
        with self._lock:
            if mid in self._pending:
                self._settle(self._pending.pop(mid), not rc.is_failure)
            else:
                self._early[mid] = not rc.is_failure

    def _settle(self, key: Key | None, ok: bool) -> None:
        """Count one message's outcome; call with the lock held."""
        if not ok:
            self.stats.publish_failures += 1
        elif key is not None:
            self.stats.fixes_sent += 1
            self._sent.add(key)

    # --- event loop --------------------------------------------------------------------

    async def start(self, give_up_at: float) -> bool:
        """Connect (paho retries by itself) and wait until connected, stopped or out of time."""
        self._client.connect_async(self._cfg.mqtt_host, self._cfg.mqtt_port, keepalive=30)
        self._client.loop_start()
        loop = asyncio.get_running_loop()
        while not self._connected.is_set():
            if self._stop.is_set() or loop.time() >= give_up_at:
                return False
            await asyncio.sleep(0.01)
        return True

    def topic(self, device_id: str) -> str:
        """``<prefix>/<device>/<payload kind>``."""
        return f"{self._cfg.topic_prefix}/{device_id}/{self._cfg.payload}"

    async def publish(self, device_id: str, payload: bytes, key: Key | None) -> bool:
        """Publish; a fix (``key`` given) counts as sent when the broker acknowledges it."""
        while len(self._pending) >= MAX_PENDING:
            if self._stop.is_set():
                return False
            await asyncio.sleep(0.001)
        info = self._client.publish(self.topic(device_id), payload, qos=self._cfg.qos)
        queued = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self._cfg.qos > 0
        )
        with self._lock:
            if not queued:
                self._early.pop(info.mid, None)
                self._settle(key, False)
            elif info.mid in self._early:
                self._settle(key, self._early.pop(info.mid))
            else:
                self._pending[info.mid] = key
        await asyncio.sleep(0)
        return True

    def device(self, device_id: str) -> MqttDevice:
        """The view of this publisher that one vehicle uses."""
        return MqttDevice(self, device_id)

    async def close(self, ack_timeout_s: float) -> None:
        """Wait for outstanding acknowledgements (bounded), then disconnect.

        Messages still unacknowledged at the end count as publish failures.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ack_timeout_s
        stop_deadline: float | None = None
        while self._pending and loop.time() < deadline:
            if self._stop.is_set():
                stop_deadline = stop_deadline or loop.time() + STOP_GRACE_S
                if loop.time() >= stop_deadline:
                    break
            await asyncio.sleep(0.005)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        with self._lock:
            self.stats.publish_failures += len(self._pending)
            self._pending.clear()
            self._early.clear()


class MqttDevice:
    """One vehicle's side of the shared publisher (a ``DeviceLink``)."""

    def __init__(self, link: MqttLink, device_id: str) -> None:
        self._link = link
        self._id = device_id

    async def send_fix(self, payload: bytes, key: Key) -> bool:
        """Publish one fix."""
        return await self._link.publish(self._id, payload, key)

    async def send_duplicate(self, payload: bytes) -> bool:
        """Publish an already-sent fix again."""
        ok = await self._link.publish(self._id, payload, None)
        self._link.stats.duplicates_sent += ok
        return ok

    async def send_garbage(self, line: bytes) -> bool:
        """Publish one junk payload."""
        ok = await self._link.publish(self._id, line, None)
        self._link.stats.garbage_sent += ok
        return ok

    async def drop(self) -> bool:
        """MQTT vehicles share one connection, so there is nothing of their own to drop."""
        return True
