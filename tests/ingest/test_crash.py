"""Exactly once across a crash: SIGKILL ``menara serve`` mid-stream, restart it, count rows.

The service acknowledges a QoS 1 message only after its row is committed and keeps a
persistent session, so whatever was in flight when it died is resent by the broker and
de-duplicated by the database: the stored fixes must equal the published ones exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from ingest.broker_check import PROBE_MESSAGES
from simulators.nmea_out import rmc
from tests.brokers import Broker  # project_broker: menara.local_broker.local_config
from tests.conftest import listeners_off_env
from tests.polling import wait_for
from tests.ports import free_port

pytestmark = [pytest.mark.db, pytest.mark.mqtt]

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
DEVICES = 20
FIXES_PER_DEVICE = 1500  # 30k messages: several seconds of publishing on a small machine


def count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


class Service:
    """``python -m menara serve`` as a child process, with its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "menara", "serve"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.mark = log.stat().st_size

    def wait_subscribed(self) -> None:
        def subscribed() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited: {self.log.read_text()[-3000:]}")
            with self.log.open("rb") as fh:
                fh.seek(self.mark)
                return b"MQTT subscribed" in fh.read()

        wait_for(subscribed, "the service to subscribe")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def metric(port: int, name: str) -> int:
    """Sum of a counter on the service's /metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        int(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == f"menara_{name}_total"
    )


def publish_all(broker: Broker, prefix: str, killed: threading.Event) -> None:
    """Publish every fix at QoS 1; the second half only once the service has been killed."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = []
        for i in range(FIXES_PER_DEVICE):
            if i == FIXES_PER_DEVICE // 2:
                killed.wait(timeout=60)  # the rest is queued by the broker while we are down
            t = T0 + timedelta(seconds=i)
            for d in range(DEVICES):
                payload = rmc(t, -6.2 + d * 0.01, 106.8 + i * 0.0001, 36.0, 90.0)
                infos.append(client.publish(f"{prefix}/crash{d:02d}/nmea", payload, qos=1))
        for info in infos:
            info.wait_for_publish(timeout=60)
    finally:
        client.disconnect()
        client.loop_stop()


def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    project_broker: Broker, clean_db: str, tmp_path: Path
) -> None:
    prefix = f"crash{uuid.uuid4().hex[:8]}/v1"
    env = {
        **os.environ,
        **listeners_off_env(),
        "MENARA_DB_DSN": clean_db,
        "MENARA_MQTT_HOST": project_broker.host,
        "MENARA_MQTT_PORT": str(project_broker.port),
        "MENARA_MQTT_TOPIC_PREFIX": prefix,
        "MENARA_MQTT_CLIENT_ID": f"ingest-{prefix}",
        "MENARA_T55_PORT": "0",
        "MENARA_METRICS_PORT": "0",
        "MENARA_UNKNOWN_DEVICES": "register",
    }
    log = tmp_path / "serve.log"
    published = DEVICES * FIXES_PER_DEVICE
    rows = "SELECT count(*) FROM positions"

    first = Service(env, log)
    first.wait_subscribed()
    killed = threading.Event()
    publisher = threading.Thread(target=publish_all, args=(project_broker, prefix, killed))
    publisher.start()
    try:
        # Kill once rows are landing and the publisher is still going: mid-stream.
        wait_for(lambda: count(clean_db, rows) >= published // 10, "the first rows")
        first.kill()
        killed.set()
        at_kill = count(clean_db, rows)
        assert at_kill < published // 2, "the first half was all stored before the kill"
        metrics_port = free_port()
        second = Service({**env, "MENARA_METRICS_PORT": str(metrics_port)}, log)
        second.wait_subscribed()
        # Menara's local broker (setup's and the demo's configuration) passed the check.
        assert f"keeps queued messages ({PROBE_MESSAGES} of {PROBE_MESSAGES})" in log.read_text()
        publisher.join(timeout=120)
        assert not publisher.is_alive()
        wait_for(lambda: count(clean_db, rows) >= published, "every fix to be stored", 120)
        # Fixes stored before the kill but not acknowledged came back and were dropped.
        resent = metric(metrics_port, "rows_duplicate")
        received_after = metric(metrics_port, "mqtt_messages_in")
        assert second.stop() == 0
    finally:
        publisher.join(timeout=120)
    stored = count(clean_db, rows)
    unique = count(clean_db, "SELECT count(DISTINCT (device_id, fix_time)) FROM positions")
    print(
        f"\ncrash test: published {published}, stored {stored} ({unique} unique), "
        f"{at_kill} stored at SIGKILL, {received_after} received after the restart "
        f"({resent} of them already stored: de-duplicated), "
        f"lost {published - unique}, duplicated {stored - unique}"
    )
    assert unique == published
    assert stored == published
    assert count(clean_db, "SELECT count(*) FROM dead_letters") == 0
