"""What `menara serve` exposes (issue 14, item 7): the device listeners, the API and the
unauthenticated metrics bind to their own addresses (metrics: loopback by default), and
the database password shows neither in `menara config` nor in the start-up log."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import aiohttp
import pytest
from psycopg.conninfo import make_conninfo

from ingest.counters import Counters
from menara.cli import main
from tests.ingest.test_service import running, settings_for
from tests.ports import free_port

PASSWORD = "S3cret-pw"  # the test server trusts local connections: any password works


def other_address() -> str | None:
    """This machine's IPv4 address that is not loopback, if it has one (a UDP socket
    "connected" towards a documentation address picks it; no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


def listening(port: int) -> set[str]:
    """The local addresses TCP sockets listen on at ``port``, from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        host, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(host)[::-1]))
    return found


async def refused(host: str, port: int) -> bool:
    """True when a TCP connection to ``host:port`` is refused (nobody listens there)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


@pytest.mark.db
def test_devices_api_and_metrics_bind_their_own_addresses(
    clean_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = other_address()
    api_host = other or "127.0.0.1"
    cfg = settings_for(
        make_conninfo(clean_db, password=PASSWORD),
        tcp_host="0.0.0.0",
        api_host=api_host,
        api_port=free_port(),
        tower_feed="off",
    )
    assert cfg.metrics_host == "127.0.0.1"  # the default
    assert cfg.base_url() == f"http://{api_host}:{cfg.api_port}"
    caplog.set_level(logging.INFO)

    async def go() -> None:
        async with running(cfg, Counters()), aiohttp.ClientSession() as http:
            assert listening(cfg.metrics_port) == {"127.0.0.1"}
            assert listening(cfg.api_port) == {api_host}
            assert listening(cfg.t55_port) == {"0.0.0.0"}
            async with http.get(f"http://127.0.0.1:{cfg.metrics_port}/metrics") as r:
                assert r.status == 200
            async with http.get(f"{cfg.base_url()}/api/v1/openapi.json") as r:
                assert r.status == 200
            if other is not None:  # from the machine's network address
                assert await refused(other, cfg.metrics_port)
                assert not await refused(other, cfg.t55_port)
                assert await refused("127.0.0.1", cfg.api_port)

    asyncio.run(go())
    assert f"metrics on http://127.0.0.1:{cfg.metrics_port}/metrics" in caplog.text
    assert f"api on http://{api_host}:{cfg.api_port}/api/v1" in caplog.text
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://menara:{PASSWORD}@db.example:5432/menara?sslmode=require",
        f"postgresql://menara@db.example/menara?sslmode=require&password={PASSWORD}",
        f"host=db.example user=menara password={PASSWORD} dbname=menara",
        f"host=db.example password = '{PASSWORD} \\' x' dbname=menara",
    ],
)
def test_config_masks_the_database_password_in_url_and_key_value_form(
    dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MENARA_CONFIG", raising=False)
    monkeypatch.setenv("MENARA_DB_DSN", dsn)
    monkeypatch.setenv("MENARA_MQTT_PASSWORD", "mqtt-pw")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out and "mqtt-pw" not in out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("db_dsn = ")]
    assert "db.example" in line and "menara" in line and "********" in line, line
    assert 'mqtt_password = "********"' in out
