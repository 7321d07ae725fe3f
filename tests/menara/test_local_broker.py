"""Menara's local broker: setup and the demo run Mosquitto from ``deploy/mosquitto.conf``.

A broker with Debian's defaults lost 3,735 of 20,000 acknowledged fixes across a
SIGKILL of ``menara serve``; the local broker keeps the production queue limits
(``tests/ingest/test_crash.py`` kills serve against this very configuration).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from ingest.broker_check import probe
from menara import local_broker
from menara.settings import load
from tests.brokers import Broker
from tests.polling import wait_for
from tests.ports import free_port

pytestmark = pytest.mark.mqtt

ROOT = Path(__file__).resolve().parents[2]
LOCAL_CHANGES = {"listener", "persistence_location", "password_file", "acl_file"}
LOCAL_CHANGES |= {"allow_anonymous", "user", "pid_file"}


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            found.setdefault(key, []).append(value)
    return found


def test_local_config_changes_only_what_a_local_run_must(tmp_path: Path) -> None:
    prod = directives(local_broker.PROJECT_CONF.read_text())
    local = directives(local_broker.local_config(18830, tmp_path))
    assert {k: v for k, v in local.items() if k not in LOCAL_CHANGES} == {
        k: v for k, v in prod.items() if k not in LOCAL_CHANGES
    }
    assert int(local["max_queued_messages"][0]) >= 1_000_000  # not Debian's 1000
    assert local["listener"] == ["18830 127.0.0.1"]  # anonymous, but loopback only
    assert local["allow_anonymous"] == ["true"]
    assert "password_file" not in local and "acl_file" not in local
    assert local["persistence_location"] == [f"{tmp_path}/"]


def test_setup_starts_the_local_broker_and_it_keeps_queued_messages(tmp_path: Path) -> None:
    cfg = load(environ={}, overrides={"mqtt_port": free_port()})
    said: list[str] = []
    assert local_broker.start_for_setup(cfg, tmp_path / "broker", said.append) == 0
    pid = int((tmp_path / "broker" / "mosquitto.pid").read_text())
    try:
        assert said == [
            f"started Menara's local broker on 127.0.0.1:{cfg.mqtt_port}"
            f" (config {tmp_path / 'broker' / 'mosquitto.conf'})"
        ]
        assert probe("127.0.0.1", cfg.mqtt_port).dropped == 0
        # Run again: the broker is there and keeps them, nothing else starts.
        assert local_broker.start_for_setup(cfg, tmp_path / "other", said.append) == 0
        assert (
            said[1] == f"MQTT broker on 127.0.0.1:{cfg.mqtt_port} keeps queued messages: using it"
        )
        assert not (tmp_path / "other").exists()
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not local_broker.listening("127.0.0.1", cfg.mqtt_port), "broker exit")


def test_setup_names_a_broker_that_drops_and_leaves_it_alone(
    debian_broker: Broker, tmp_path: Path
) -> None:
    cfg = load(environ={}, overrides={"mqtt_port": debian_broker.port})
    said: list[str] = []
    assert local_broker.start_for_setup(cfg, tmp_path / "broker", said.append) == 0
    assert len(said) == 1 and said[0].startswith("WARNING: another broker on 127.0.0.1:")
    assert "drops messages queued for an absent subscriber" in said[0]
    assert not (tmp_path / "broker").exists()


def test_setup_replaces_mosquitto_run_with_debians_stock_file(
    debian_broker: Broker, tmp_path: Path
) -> None:
    """What the machine (or an older setup) started from Debian's file is replaced."""
    cfg = load(environ={}, overrides={"mqtt_port": debian_broker.port})
    said: list[str] = []
    stock = debian_broker.conf  # stands in for the package's /etc/mosquitto/mosquitto.conf
    assert local_broker.start_for_setup(cfg, tmp_path / "broker", said.append, stock=stock) == 0
    pid = int((tmp_path / "broker" / "mosquitto.pid").read_text())
    try:
        assert said[0].startswith("stopped Mosquitto with Debian's defaults")
        assert said[1].startswith(f"started Menara's local broker on 127.0.0.1:{cfg.mqtt_port}")
        assert probe("127.0.0.1", cfg.mqtt_port).dropped == 0
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not local_broker.listening("127.0.0.1", cfg.mqtt_port), "broker exit")


def test_the_demo_runs_its_own_broker_instead_of_one_that_drops(debian_broker: Broker) -> None:
    cfg = load(environ={}, overrides={"mqtt_port": debian_broker.port})
    said: list[str] = []
    with local_broker.for_demo(cfg, said.append) as served:
        assert served.mqtt_port != debian_broker.port
        assert probe(served.mqtt_host, served.mqtt_port).dropped == 0
        assert "drops messages queued while ingest is away" in said[0]
        assert (
            f"Menara's local broker (deploy/mosquitto.conf) on 127.0.0.1:{served.mqtt_port}"
            in (said[0])
        )
    assert not local_broker.listening(served.mqtt_host, served.mqtt_port)


def test_the_demo_uses_a_broker_that_keeps(own_broker: Broker) -> None:
    cfg = load(environ={}, overrides={"mqtt_port": own_broker.port})
    with local_broker.for_demo(cfg, lambda _: None) as served:
        assert served == cfg


def test_setup_runs_the_local_broker_not_the_system_default() -> None:
    setup = (ROOT / ".ci" / "setup").read_text()
    assert "-m menara.local_broker" in setup
    assert "/etc/mosquitto" not in setup
