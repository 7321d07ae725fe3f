"""The start-up broker check: a broker that drops queued QoS 1 messages is found and named.

Mosquitto as Debian ships it keeps 1000 messages for an absent session and drops the
rest, so fixes it acknowledged while ``menara serve`` was down are lost without a trace;
the project's configuration keeps them. The probe must tell the two apart, and
``serve`` must say so in its log and on /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.broker_check import PROBE_MESSAGES, BrokerCheckError, probe
from ingest.counters import Counters
from tests.brokers import Broker
from tests.ingest.test_service import http_get, running, settings_for
from tests.ports import free_port

pytestmark = pytest.mark.mqtt


def test_probe_finds_that_debian_defaults_drop_queued_messages(debian_broker: Broker) -> None:
    verdict = probe(debian_broker.host, debian_broker.port)
    assert verdict.sent == PROBE_MESSAGES
    assert 0 < verdict.kept <= 1000 + 20  # max_queued_messages (+ in flight)
    assert verdict.dropped == PROBE_MESSAGES - verdict.kept


def test_probe_finds_that_the_project_config_keeps_them(own_broker: Broker) -> None:
    for _ in range(2):  # the first probe leaves no session behind to confuse the second
        verdict = probe(own_broker.host, own_broker.port)
        assert (verdict.kept, verdict.dropped) == (PROBE_MESSAGES, 0)


def test_probe_runs_as_the_service_user_under_the_production_acl(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "menara", "secret"], check=True)
    broker = Broker(tmp_path, password_file=passwd)
    broker.start()
    try:
        verdict = probe(broker.host, broker.port, username="menara", password="secret")
        assert verdict.dropped == 0
        with pytest.raises(BrokerCheckError, match="refused"):
            probe(broker.host, broker.port, username="menara", password="wrong")
    finally:
        broker.stop()


def test_probe_says_when_it_cannot_tell() -> None:
    with pytest.raises(BrokerCheckError, match="cannot reach"):
        probe("127.0.0.1", free_port())


def _dropped_on_metrics(port: int) -> list[float]:
    _, body = asyncio.run(http_get(port, "/metrics"))
    return [
        s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "menara_mqtt_broker_probe_dropped_total"
    ]


@pytest.mark.db
@pytest.mark.parametrize("check", [True, False])
def test_serve_warns_at_start_about_a_broker_that_drops_queued_fixes(
    debian_broker: Broker, clean_db: str, caplog: pytest.LogCaptureFixture, check: bool
) -> None:
    cfg = settings_for(
        clean_db,
        mqtt_host=debian_broker.host,
        mqtt_port=debian_broker.port,
        mqtt_topic_prefix=f"check{free_port()}/v1",
        mqtt_client_id=f"check-{free_port()}",
        mqtt_session_expiry_s=0,
        mqtt_broker_check=check,
    )
    caplog.set_level(logging.INFO, logger="ingest.broker_check")

    async def main() -> list[float]:
        async with running(cfg, Counters()):
            return await asyncio.to_thread(_dropped_on_metrics, cfg.metrics_port)

    dropped = asyncio.run(main())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if not check:
        assert (warnings, dropped) == ([], [])
        return
    assert len(warnings) == 1, warnings
    assert f"MQTT broker {debian_broker.host}:{debian_broker.port} DROPS" in warnings[0]
    assert "deploy/mosquitto.conf" in warnings[0]
    assert len(dropped) == 1 and dropped[0] >= PROBE_MESSAGES - 1020


@pytest.mark.db
def test_serve_is_quiet_about_a_broker_that_keeps_them(
    own_broker: Broker, clean_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = settings_for(
        clean_db,
        mqtt_host=own_broker.host,
        mqtt_port=own_broker.port,
        mqtt_topic_prefix=f"check{free_port()}/v1",
        mqtt_session_expiry_s=0,
    )
    caplog.set_level(logging.INFO, logger="ingest.broker_check")

    async def main() -> list[float]:
        async with running(cfg, Counters()):
            return await asyncio.to_thread(_dropped_on_metrics, cfg.metrics_port)

    assert asyncio.run(main()) == [0.0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "keeps queued messages" in caplog.text
