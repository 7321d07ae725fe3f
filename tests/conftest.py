"""Shared fixtures: a throwaway PostgreSQL database per test run, the broker address.

Tests talk to the real PostgreSQL and Mosquitto on this machine (``.ci/run`` starts
them); nothing is mocked. Each run gets its own database so parallel runs and a
developer's demo data never meet.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from menara import db

ADMIN_DSN = os.environ.get("MENARA_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
MQTT_HOST = os.environ.get("MENARA_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("MENARA_TEST_MQTT_PORT", "1883"))


def _dsn_for(name: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def db_dsn() -> Iterator[str]:
    """A fresh, migrated database for this test run, dropped afterwards."""
    name = f"menara_test_{uuid.uuid4().hex[:10]}"
    dsn = _dsn_for(name)
    db.ensure_database(dsn)
    db.upgrade(dsn)
    yield dsn
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clean_db(db_dsn: str) -> str:
    """The test database with no devices, positions or dead letters."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE positions, dead_letters, devices")
    return db_dsn


@pytest.fixture(scope="session")
def mqtt_broker() -> tuple[str, int]:
    """(host, port) of the running Mosquitto; fails clearly when it is down."""
    try:
        socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"Mosquitto not reachable at {MQTT_HOST}:{MQTT_PORT} ({exc}); run .ci/run")
    return MQTT_HOST, MQTT_PORT


def listeners_off() -> dict[str, int]:
    """Every device listener port setting at 0: the defaults (5005, 5027 …) would collide
    with a running service or demo; a test turns on the ones it uses with free ports."""
    from menara.service import PORT_SETTINGS

    return dict.fromkeys(PORT_SETTINGS, 0)


def listeners_off_env() -> dict[str, str]:
    """``listeners_off`` as ``MENARA_*`` environment variables, for ``menara`` processes."""
    return {f"MENARA_{k.upper()}": "0" for k in listeners_off()}


from tests.brokers import debian_broker, own_broker, project_broker  # noqa: E402, F401
from tests.demo_day import demo_day  # noqa: E402, F401
from tests.proxy import pg_proxy  # noqa: E402, F401
