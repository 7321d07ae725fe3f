"""Committed rounds over MQTT, from ingest processes to the rule host (``menara rules``).

With ``tower_feed = mqtt`` an ingest process runs no rules: after each commit its
writer's round (the batches it hands to the tower inline) is published on
``rules_topic`` with QoS 1, cut into messages below the broker's size limit. One
``menara rules`` process subscribes and feeds its rule workers, so however many ingest
processes share the device subscription, each vehicle is evaluated in one place.

A message is one part of a round, binary: ``MAGIC``, a little-endian u32 header
length, a JSON header (the fix dtype, and per batch its device id, fix count and
receipt time in µs) and the batches' ``FIX_DTYPE`` records back to back. A dtype
other than this build's is refused, never misread.

Delivery: the broker has a round once it has acknowledged it; while it has not, the
publisher holds it (across reconnects) and the writer waits beyond ``MAX_IN_FLIGHT``
(back-pressure, as from inline rules). A round committed by a process that dies before
the broker acknowledged it is not evaluated (its fixes are stored): counted in
``rules_rounds_lost`` when the process lives to see it (a shutdown with the broker away),
invisible when it does not. The rule host may get a round twice after a reconnect (QoS 1
is at least once); the rules see those fixes as out of order, as a device's resend.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, NamedTuple, Self

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from decoders.model import FIX_DTYPE, FixArray
from ingest.counters import Counters
from menara.settings import Settings
from tower.worker import FixBatch

__all__ = [
    "MAGIC",
    "MAX_MESSAGE_BYTES",
    "RoundBatch",
    "RoundError",
    "RoundPublisher",
    "check_topic",
    "decode",
    "encode",
]

log = logging.getLogger(__name__)

MAGIC = b"MNR1"
MAX_MESSAGE_BYTES = 192 * 1024  # deploy/mosquitto.conf refuses messages above 256 KB
MAX_IN_FLIGHT = 64  # rounds published and not yet acknowledged before the writer waits
CLOSE_WAIT_S = 10.0  # on exit, how long unacknowledged rounds may still be acknowledged
_HEAD = struct.Struct("<4sI")
_DTYPE = json.loads(json.dumps(FIX_DTYPE.descr))  # as it reads back from the header
_PER_BATCH = 40  # header bytes a batch costs besides its device id (count, time, quotes)


class RoundError(ValueError):
    """A rules message that is not a round this build can read."""


class RoundBatch(NamedTuple):
    """One device's committed fixes, as the tower takes them (``FixBatch``)."""

    device_id: str
    fixes: FixArray
    received_us: int


def check_topic(settings: Settings) -> None:
    """Refuse a ``rules_topic`` that is not a plain topic or that the ingest's own device
    subscription would read (``<mqtt_topic_prefix>/<device>/nmea|json``)."""
    topic, prefix = settings.rules_topic, settings.mqtt_topic_prefix
    if not topic or any(c in topic for c in "+#\0") or topic.startswith("$"):
        raise ValueError(
            f"rules_topic {topic!r} must be a plain topic (no wildcards, not $...);"
            " set MENARA_RULES_TOPIC"
        )
    head, sep, rest = topic.partition(prefix + "/")
    levels = rest.split("/")
    if not head and sep and len(levels) == 2 and levels[1] in ("nmea", "json"):
        raise ValueError(
            f"rules_topic {topic!r} is a device topic under mqtt_topic_prefix {prefix!r}:"
            " ingest would read rounds as fixes; choose a topic outside it"
        )


def encode(batches: Sequence[FixBatch]) -> list[bytes]:
    """A round as messages of at most ``MAX_MESSAGE_BYTES`` (a batch larger than that
    is cut into several, in order)."""
    out: list[bytes] = []
    part: list[FixBatch] = []
    size = 0
    for b in _cut(batches):
        cost = len(b.fixes) * FIX_DTYPE.itemsize + len(b.device_id.encode()) + _PER_BATCH
        if part and size + cost > MAX_MESSAGE_BYTES:
            out.append(_message(part))
            part, size = [], 0
        part.append(b)
        size += cost
    if part:
        out.append(_message(part))
    return out


def decode(payload: bytes) -> list[RoundBatch]:
    """The batches of one message; ``RoundError`` when it is not one."""
    try:
        magic, n = _HEAD.unpack_from(payload)
        if magic != MAGIC:
            raise RoundError(f"not a Menara round (starts {payload[:4]!r})")
        head = json.loads(payload[_HEAD.size : _HEAD.size + n])
        devices, counts, received = head["devices"], head["counts"], head["received_us"]
        dtype = head["dtype"]
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise RoundError(f"unreadable round header: {exc}") from exc
    if dtype != _DTYPE:
        raise RoundError("round of another fix layout (an ingest of another version?)")
    start = _HEAD.size + n
    if not len(devices) == len(counts) == len(received) or (
        sum(counts) * FIX_DTYPE.itemsize != len(payload) - start
    ):
        raise RoundError("round header does not match its fixes")
    fixes = np.frombuffer(payload, dtype=FIX_DTYPE, offset=start).copy()
    out, at = [], 0
    for device_id, count, received_us in zip(devices, counts, received, strict=True):
        out.append(RoundBatch(str(device_id), fixes[at : at + count], int(received_us)))
        at += count
    return out


def _cut(batches: Sequence[FixBatch]) -> Iterator[FixBatch]:
    most = MAX_MESSAGE_BYTES // (2 * FIX_DTYPE.itemsize)
    for b in batches:
        if len(b.fixes) <= most:
            yield b
            continue
        for at in range(0, len(b.fixes), most):
            yield RoundBatch(b.device_id, b.fixes[at : at + most], b.received_us)


def _message(batches: Sequence[FixBatch]) -> bytes:
    head = json.dumps(
        {
            "dtype": _DTYPE,
            "devices": [b.device_id for b in batches],
            "counts": [len(b.fixes) for b in batches],
            "received_us": [b.received_us for b in batches],
        },
        separators=(",", ":"),
    ).encode()
    raw = (np.ascontiguousarray(b.fixes, dtype=FIX_DTYPE).tobytes() for b in batches)
    return b"".join([_HEAD.pack(MAGIC, len(head)), head, *raw])


class RoundPublisher:
    """The writer's ``on_committed`` when the rules run elsewhere; an async context manager.

    paho's own network thread (``loop_start``) connects, reconnects (its doubling delay
    capped at 10 s, as ``ingest.backoff``) and resends what the broker has not
    acknowledged; ``__call__`` waits while ``MAX_IN_FLIGHT`` rounds are unacknowledged.
    """

    def __init__(
        self, settings: Settings, *, counters: Counters, close_wait_s: float = CLOSE_WAIT_S
    ) -> None:
        check_topic(settings)
        if settings.mqtt_port <= 0:
            raise ValueError("tower_feed = mqtt publishes rounds to the broker: set mqtt_port")
        self._s = settings
        self._counters = counters
        self._close_wait_s = close_wait_s
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{settings.mqtt_client_id}-rounds",
            protocol=mqtt.MQTTv5,
        )
        if settings.mqtt_username:
            self._client.username_pw_set(settings.mqtt_username, settings.mqtt_password or None)
        self._client.reconnect_delay_set(1, 10)
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._unacked: dict[int, int] = {}  # message id -> its round
        self._rounds: dict[int, int] = {}  # round -> its messages not yet acknowledged
        self._early: dict[int, bool] = {}  # acknowledged before we saw the id: refused?
        self._refused: set[int] = set()  # rounds with a message the broker refused
        self._round = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self._s.mqtt_host, self._s.mqtt_port, keepalive=30)
        self._client.loop_start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Wait a while for the broker to acknowledge what is in flight; count the rest."""
        try:
            async with asyncio.timeout(self._close_wait_s):
                await self._wait(lambda: not self._rounds)
        except TimeoutError:
            with self._lock:
                lost = len(self._rounds)
            self._counters.inc("rules_rounds_lost", lost)
            log.error(
                "%d committed round(s) not acknowledged by the broker within %.0f s:"
                " their fixes are stored, their rules will not run",
                lost,
                self._close_wait_s,
            )
        finally:
            self._client.disconnect()
            await asyncio.to_thread(self._client.loop_stop)

    @property
    def in_flight(self) -> int:
        """Rounds published and not yet acknowledged by the broker."""
        with self._lock:
            return len(self._rounds)

    async def __call__(self, batches: Sequence[FixBatch]) -> None:
        """Publish a committed round; waits while too many are unacknowledged."""
        await self._wait(lambda: len(self._rounds) < MAX_IN_FLIGHT)
        messages = encode(batches)
        with self._lock:
            self._round += 1
            k = self._round
            self._rounds[k] = len(messages)
        for payload in messages:
            # Not under our lock: paho calls on_publish holding its own, which publish takes.
            info = self._client.publish(self._s.rules_topic, payload, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.error("publishing a round failed: %s", mqtt.error_string(info.rc))
                with self._lock:
                    self._acknowledged(k, refused=True)
                continue
            with self._lock:
                early = self._early.pop(info.mid, None)
                if early is None:
                    self._unacked[info.mid] = k
                else:
                    self._acknowledged(k, early)
        self._counters.inc("rules_rounds_published")
        self._counters.inc("rules_messages_published", len(messages))

    async def _wait(self, ready: Callable[[], bool]) -> None:
        while True:
            with self._lock:
                if ready():
                    return
                self._changed.clear()
            await self._changed.wait()

    def _acknowledged(self, k: int, refused: bool) -> None:
        """One message of round ``k`` acknowledged (under the lock)."""
        if refused:
            self._refused.add(k)
        left = self._rounds[k] - 1
        if left:
            self._rounds[k] = left
            return
        del self._rounds[k]
        if k in self._refused:
            self._refused.discard(k)
            self._counters.inc("rules_rounds_lost")

    # -- paho's network thread ------------------------------------------------------

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            log.error("rules publisher: the broker refused the connection: %s", rc)
        else:
            log.info("rules publisher connected to %s:%d", self._s.mqtt_host, self._s.mqtt_port)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:  # e.g. not authorised on rules_topic: never deliverable
            log.error("broker refused a round on %s: %s", self._s.rules_topic, rc)
        with self._lock:
            k = self._unacked.pop(mid, None)
            if k is None:  # acknowledged before publish() returned
                self._early[mid] = rc.is_failure
            else:
                self._acknowledged(k, rc.is_failure)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._changed.set)
