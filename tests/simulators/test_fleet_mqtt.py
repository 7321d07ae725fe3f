"""Fleets over the real Mosquitto: what the broker acknowledged is exactly what arrives."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pynmea2
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from simulators.fleet import FleetConfig, FleetStats, run_fleet
from tests.ports import free_port

pytestmark = pytest.mark.mqtt

START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


class Collector:
    """A plain paho subscriber on ``<topic_prefix>/#`` keeping messages of one id prefix."""

    def __init__(self, host: str, port: int, id_prefix: str, topic_prefix: str) -> None:
        self.prefix = id_prefix
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        c.on_connect = lambda cl, *_: cl.subscribe(f"{topic_prefix}/#", qos=1)
        c.on_subscribe = lambda *_: self._subscribed.set()
        c.on_message = self._on_message
        c.connect(host, port)
        c.loop_start()
        self.client = c
        assert self._subscribed.wait(5), "subscription not confirmed"

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        device = msg.topic.split("/")[2]
        if device.startswith(self.prefix):
            with self._lock:
                self.messages.append((msg.topic, bytes(msg.payload)))

    def wait_for(self, n: int, timeout_s: float = 10.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _prefix() -> str:
    return "T" + uuid.uuid4().hex[:8].upper()


def _nmea_fixes(device: str, payload: bytes) -> list[tuple[str, datetime]] | None:
    """Fix keys in an RMC+GGA payload, or None when it is not two good sentences."""
    try:
        lines = payload.decode("ascii").split("\r\n")
        rmc, gga = (pynmea2.parse(line, check=True) for line in lines[:2])
    except (UnicodeDecodeError, ValueError, pynmea2.ParseError):
        return None
    if not (isinstance(rmc, pynmea2.RMC) and isinstance(gga, pynmea2.GGA)) or lines[2:] != [""]:
        return None
    return [(device, rmc.datetime)]


def _json_fix(device: str, payload: bytes) -> list[tuple[str, datetime]] | None:
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    return [(device, datetime.fromisoformat(doc["fix_time"]))]


def _run(cfg: FleetConfig, broker: tuple[str, int]) -> tuple[FleetStats, list[tuple[str, bytes]]]:
    col = Collector(*broker, cfg.id_prefix, cfg.topic_prefix)
    try:
        stats = asyncio.run(run_fleet(cfg))
        m = stats.mqtt
        msgs = col.wait_for(m.fixes_sent + m.duplicates_sent + m.garbage_sent)
        # Anything extra would show up within a moment; give it that moment, bounded.
        time.sleep(0.2)
        msgs = col.wait_for(0)
    finally:
        col.close()
    return stats, msgs


def _cfg(broker: tuple[str, int], **kw: object) -> FleetConfig:
    base: dict[str, object] = dict(
        vehicles=10,
        transport="mqtt",
        realtime=False,
        fixes_per_vehicle=20,
        start_time=START,
        id_prefix=_prefix(),
        # never the default menara/v1: a demo's persistent session would queue these
        topic_prefix=f"test{uuid.uuid4().hex[:8]}/v1",
        mqtt_host=broker[0],
        mqtt_port=broker[1],
    )
    return FleetConfig(**{**base, **kw})  # type: ignore[arg-type]


def _classify(msgs: list[tuple[str, bytes]], kind: str) -> tuple[list[tuple[str, datetime]], int]:
    parse = _nmea_fixes if kind == "nmea" else _json_fix
    fixes: list[tuple[str, datetime]] = []
    junk = 0
    for topic, payload in msgs:
        *_, device, suffix = topic.split("/")
        assert suffix == kind
        got = parse(device, payload)
        if got is None:
            junk += 1
        else:
            fixes.extend(got)
    return fixes, junk


def test_every_acknowledged_nmea_fix_arrives_once(mqtt_broker: tuple[str, int]) -> None:
    cfg = _cfg(mqtt_broker)
    stats, msgs = _run(cfg, mqtt_broker)
    fixes, junk = _classify(msgs, "nmea")
    assert stats.mqtt.fixes_sent == stats.unique_fixes == 200
    assert stats.mqtt.publish_failures == 0
    assert len(fixes) == 200 and set(fixes) == stats.sent and junk == 0


def test_json_payload_with_duplicates_and_garbage(mqtt_broker: tuple[str, int]) -> None:
    cfg = _cfg(mqtt_broker, payload="json", duplicate=0.2, garbage=0.2)
    stats, msgs = _run(cfg, mqtt_broker)
    fixes, junk = _classify(msgs, "json")
    m = stats.mqtt
    assert m.duplicates_sent > 0 and m.garbage_sent > 0
    assert len(fixes) == m.fixes_sent + m.duplicates_sent
    assert junk == m.garbage_sent
    assert set(fixes) == stats.sent and len(stats.sent) == 200


def test_qos0_counts_what_was_written(mqtt_broker: tuple[str, int]) -> None:
    cfg = _cfg(mqtt_broker, qos=0, vehicles=3, fixes_per_vehicle=10)
    stats, msgs = _run(cfg, mqtt_broker)
    fixes, _ = _classify(msgs, "nmea")
    assert set(fixes) == stats.sent and len(stats.sent) == 30


def test_mixed_fleet_splits_vehicles(mqtt_broker: tuple[str, int]) -> None:
    async def scenario(cfg: FleetConfig) -> tuple[FleetStats, int]:
        lines = 0

        async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal lines
            while await reader.readline():
                lines += 1
            writer.close()

        async with await asyncio.start_server(count, "127.0.0.1", cfg.tcp_port):
            stats = await run_fleet(cfg)
            deadline = time.monotonic() + 5
            while lines < 2 + 2 * 2 * 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        return stats, lines

    cfg = _cfg(
        mqtt_broker, transport="mixed", vehicles=4, fixes_per_vehicle=5, tcp_port=free_port()
    )
    stats, lines = asyncio.run(scenario(cfg))
    assert (stats.mqtt.vehicles, stats.tcp.vehicles) == (2, 2)
    assert (stats.mqtt.fixes_sent, stats.tcp.fixes_sent) == (10, 10)
    assert lines == 2 + 2 * 2 * 5  # one PGID per device, RMC+GGA per fix
    assert len(stats.sent) == 20


def test_broker_down_gives_up(mqtt_broker: tuple[str, int]) -> None:
    cfg = _cfg(mqtt_broker, mqtt_port=free_port(), duration_s=0.5, vehicles=2)
    stats = asyncio.run(run_fleet(cfg))
    assert stats.fixes_sent == 0 and stats.mqtt.vehicles == 0
    assert stats.mqtt.connect_failures >= 1
