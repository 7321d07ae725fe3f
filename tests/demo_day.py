"""A simulated day in its own database, made once per test run by ``menara demo``.

Reports and dashboard panels are judged on what a real day leaves behind: positions
from the simulated fleet, planned and driven trips, ePODs with their outcomes, perfect-
delivery rows, alerts from the scripted faults, complaints none. Running the demo costs
about a minute, so every test that needs such a day shares this one (read-only: a test
that writes must use its own database).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest

from menara import db, demo_oms
from menara.cli import main
from tests.conftest import ADMIN_DSN, _dsn_for, listeners_off_env
from tests.ports import free_port

# A day whose 90 orders need five of the six vans (orders are drawn per day).
DAY = date(2026, 12, 1)


@pytest.fixture(scope="session")
def demo_day(
    mqtt_broker: tuple[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """DSN of a database holding one finished simulated day (treat it as read-only)."""
    name = f"menara_test_{uuid.uuid4().hex[:10]}_day"
    dsn = _dsn_for(name)
    db.ensure_database(dsn)
    work: Path = tmp_path_factory.mktemp("demo_day")
    tag = f"day{uuid.uuid4().hex[:10]}"
    env = {
        **listeners_off_env(),
        "MENARA_DB_DSN": dsn,
        "MENARA_T55_PORT": str(free_port()),
        "MENARA_GT06_PORT": str(free_port()),
        "MENARA_METRICS_PORT": "0",
        "MENARA_TCP_HOST": "127.0.0.1",
        "MENARA_MQTT_HOST": mqtt_broker[0],
        "MENARA_MQTT_PORT": str(mqtt_broker[1]),
        "MENARA_MQTT_TOPIC_PREFIX": tag,
        "MENARA_MQTT_CLIENT_ID": tag,
        "MENARA_MQTT_SESSION_EXPIRY_S": "0",
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        for key, value in env.items():
            mp.setenv(key, value)
        mp.setattr(demo_oms, "today", lambda: DAY)
        args = ["demo", "--vehicles", "6", "--orders", "90", "--speedup", "1000"]
        assert main(args) == 0, "menara demo failed to make the simulated day"
    assert os.environ.get("MENARA_DB_DSN") != dsn
    yield dsn
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
