"""Liveness and readiness of ``menara serve``: ``/healthz`` answers while the process
does; ``/readyz`` is 503 naming the database or the broker while either is unreachable
(a cut TCP proxy to PostgreSQL, a stopped Mosquitto) and 200 once both are back."""

from __future__ import annotations

import asyncio

import pytest

from ingest.counters import Counters
from tests.brokers import Broker
from tests.ingest.test_service import http_get, running, settings_for
from tests.polling import until
from tests.proxy import TcpProxy

pytestmark = [pytest.mark.db, pytest.mark.mqtt]
READY = ("HTTP/1.1 200 OK", "ready\n")
ALIVE = ("HTTP/1.1 200 OK", "ok\n")
UNAVAILABLE = "HTTP/1.1 503 Service Unavailable"


def test_readyz_names_what_is_unreachable_while_healthz_stays_up(
    clean_db: str, pg_proxy: TcpProxy, own_broker: Broker
) -> None:
    cfg = settings_for(
        pg_proxy.dsn(clean_db),
        mqtt_host=own_broker.host,
        mqtt_port=own_broker.port,
        mqtt_client_id="readiness-test",
        mqtt_topic_prefix="readiness/v1",
    )
    port = cfg.metrics_port

    async def answers(path: str, status: str, text: str = "") -> bool:
        got = await http_get(port, path)
        return got[0] == status and text in got[1]

    async def main() -> None:
        async with running(cfg, Counters()):
            assert await http_get(port, "/readyz") == READY
            pg_proxy.cut()
            await until(lambda: answers("/readyz", UNAVAILABLE), 10, "readyz to fail")
            body = (await http_get(port, "/readyz"))[1]
            assert body.startswith("database: unreachable: ") and "mqtt" not in body
            assert await http_get(port, "/healthz") == ALIVE
            pg_proxy.restore()
            await until(lambda: answers("/readyz", *READY), 10, "readyz with the database")

            await asyncio.to_thread(own_broker.stop)
            broker = f"mqtt: not connected to the broker at {own_broker.host}:{own_broker.port}"
            await until(lambda: answers("/readyz", UNAVAILABLE, broker), 10, "mqtt named")
            assert "database" not in (await http_get(port, "/readyz"))[1]
            assert await http_get(port, "/healthz") == ALIVE
            await asyncio.to_thread(own_broker.start)
            await until(lambda: answers("/readyz", *READY), 30, "readyz with the broker")

    asyncio.run(main())
