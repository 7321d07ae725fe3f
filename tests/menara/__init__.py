"""Helpers shared by the ``menara`` command tests."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import listeners_off_env
from tests.ports import free_port


def demo_env(
    monkeypatch: pytest.MonkeyPatch,
    dsn: str,
    broker: tuple[str, int],
    workdir: Path,
    **ports: int,
) -> None:
    """Point ``menara demo`` at the test database and broker: every listener off except
    T55 (and ``ports``, e.g. ``MENARA_GT06_PORT``) on free ports, its own MQTT topics; it
    runs in ``workdir`` (its ePOD files and customer mailbox are written there)."""
    monkeypatch.chdir(workdir)
    tag = f"demo{uuid.uuid4().hex[:10]}"
    env = {
        **listeners_off_env(),
        "MENARA_DB_DSN": dsn,
        "MENARA_T55_PORT": str(free_port()),
        "MENARA_METRICS_PORT": "0",
        "MENARA_TCP_HOST": "127.0.0.1",
        "MENARA_MQTT_HOST": broker[0],
        "MENARA_MQTT_PORT": str(broker[1]),
        "MENARA_MQTT_TOPIC_PREFIX": tag,
        "MENARA_MQTT_CLIENT_ID": tag,
        "MENARA_MQTT_SESSION_EXPIRY_S": "0",
        **{k: str(v) for k, v in ports.items()},
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
