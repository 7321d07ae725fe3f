"""The whole service against the simulated fleet: what the fleet delivered is what is stored."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.counters import Counters
from menara import service
from menara.settings import Settings, load
from simulators.fleet import FleetConfig, run_fleet
from simulators.nmea_out import pgid, rmc
from tests.brokers import Broker
from tests.conftest import listeners_off, listeners_off_env
from tests.ports import free_port

pytestmark = pytest.mark.db

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


async def http_get(port: int, path: str) -> tuple[str, str]:
    """(status line, body) of a plain HTTP/1.1 GET."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.decode().partition("\r\n\r\n")
    return head.split("\r\n")[0], body


def settings_for(dsn: str, **changes: object) -> Settings:
    return load(
        environ={},
        overrides={
            **listeners_off(),
            "db_dsn": dsn,
            "tcp_host": "127.0.0.1",
            "api_host": "127.0.0.1",
            "t55_port": free_port(),
            "mqtt_port": 0,
            "metrics_port": free_port(),
            "unknown_devices": "register",
            "writer_batch_delay_ms": 10,
            **changes,
        },
    )


@contextlib.asynccontextmanager
async def running(cfg: Settings, counters: Counters) -> AsyncIterator[None]:
    """``serve`` in a task: ready on entry, stopped (and drained) on exit."""
    stop, ready = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(service.serve(cfg, counters=counters, stop=stop, ready=ready))
    up = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait([up, server], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if server.done():
            server.result()  # serve failed while starting: show why
        assert up.done(), "serve() not ready within 30 s"
        yield
        stop.set()
        await asyncio.wait_for(server, 30)
    finally:
        stop.set()
        up.cancel()
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await up
        with contextlib.suppress(asyncio.CancelledError):
            await server


async def stored(dsn: str, n: int) -> None:
    """Poll until ``n`` positions are stored (fail after 20 s)."""
    async with asyncio.timeout(20):
        while positions(dsn) < n:
            await asyncio.sleep(0.05)


def positions(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM positions").fetchone()
    assert row is not None
    return int(row[0])


def test_fleet_over_tcp_is_stored_exactly(clean_db: str) -> None:
    cfg = settings_for(clean_db)
    counters = Counters()
    fleet = FleetConfig(
        vehicles=20,
        transport="tcp",
        tcp_port=cfg.t55_port,
        realtime=False,
        fixes_per_vehicle=25,
        start_time=T0,
        duplicate=0.1,
        garbage=0.05,
        split=0.2,
        disconnect=0.02,
    )

    async def main() -> int:
        async with running(cfg, counters):
            stats = await run_fleet(fleet)
            assert stats.unique_fixes == 20 * 25
            await stored(clean_db, stats.unique_fixes)
            status, body = await http_get(cfg.metrics_port, "/metrics")
            assert status == "HTTP/1.1 200 OK"
            assert 'menara_fixes_in_total{protocol="t55",transport="tcp"}' in body
            assert "menara_writer_pending_rows " in body
            assert "menara_tower_queued_rounds " in body  # the rules' back-pressure gauge
            assert 'menara_tcp_connections_open{protocol="t55"}' in body
            assert (await http_get(cfg.metrics_port, "/healthz")) == ("HTTP/1.1 200 OK", "ok\n")
            assert (await http_get(cfg.metrics_port, "/nope"))[0] == "HTTP/1.1 404 Not Found"
        return stats.unique_fixes

    expected = asyncio.run(main())
    assert positions(clean_db) == expected
    assert counters.get("rejects", protocol="t55") >= 1  # the junk lines


@pytest.mark.mqtt
def test_mixed_fleet_over_tcp_and_mqtt_is_stored_exactly(
    clean_db: str, project_broker: Broker
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}/v1"
    cfg = settings_for(
        clean_db,
        mqtt_host=project_broker.host,
        mqtt_port=project_broker.port,
        mqtt_topic_prefix=prefix,
        mqtt_client_id=f"ingest-{prefix}",
        metrics_port=0,
    )
    fleet = FleetConfig(
        vehicles=20,
        transport="mixed",
        tcp_port=cfg.t55_port,
        mqtt_host=project_broker.host,
        mqtt_port=project_broker.port,
        topic_prefix=prefix,
        realtime=False,
        fixes_per_vehicle=25,
        start_time=T0,
        duplicate=0.1,
    )

    async def main() -> tuple[int, int]:
        async with running(cfg, Counters()):
            stats = await run_fleet(fleet)
            await stored(clean_db, stats.unique_fixes)
        return stats.unique_fixes, stats.mqtt.fixes_sent

    expected, over_mqtt = asyncio.run(main())
    assert over_mqtt > 0
    assert positions(clean_db) == expected == 20 * 25


def bytes_in(metrics_port: int) -> int:
    """Bytes the T55 listener has read, from the metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        int(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "menara_bytes_in_total" and s.labels == {"protocol": "t55", "transport": "tcp"}
    )


@pytest.mark.parametrize("database_stuck", [False, True])
def test_ctrl_c_stops_cleanly(clean_db: str, database_stuck: bool) -> None:
    """``menara serve`` in its own process: SIGINT drains the writer and exits 0; while
    the drain cannot finish (positions locked), a second SIGINT exits 130 unacked."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        **listeners_off_env(),
        "MENARA_DB_DSN": clean_db,
        "MENARA_TCP_HOST": "127.0.0.1",
        "MENARA_T55_PORT": str(port),
        "MENARA_MQTT_PORT": "0",
        "MENARA_METRICS_PORT": str(metrics_port),
        "MENARA_UNKNOWN_DEVICES": "register",
        "MENARA_WRITER_BATCH_DELAY_MS": "3000",  # nothing is committed before the stop
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "menara", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    lock = psycopg.connect(clean_db)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        with sock:
            payload = pgid("CTRLC") + b"".join(
                rmc(T0 + timedelta(seconds=i), -6.2, 106.8, 20.0, 0.0) for i in range(10)
            )
            sock.sendall(payload)
            while bytes_in(metrics_port) < len(payload):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            if database_stuck:
                lock.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
            proc.send_signal(signal.SIGINT)
            if database_stuck:
                assert proc.stderr is not None
                while "stopping:" not in proc.stderr.readline():
                    assert proc.poll() is None
                proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == (130 if database_stuck else 0)
    finally:
        lock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        log = proc.stderr.read()
        proc.stderr.close()
    assert database_stuck or "t55 listening on tcp 127.0.0.1:" in log
    assert positions(clean_db) == (0 if database_stuck else 10)
