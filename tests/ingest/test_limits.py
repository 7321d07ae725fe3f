"""Connection limits of the device ports, with real sockets, the real writer and PostgreSQL:
beyond a listener's total, per-address or descriptor limit a connection is closed at once
and counted, and a device within the limits is served as usual."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from decoders import osmand, t55
from ingest import priority
from ingest.counters import Counters
from ingest.devices import DeviceRegistry
from ingest.http import HttpListener
from ingest.limits import FdBudget, Limits, open_descriptors
from ingest.tcp import TcpListener
from ingest.writer import Writer
from simulators import teltonika_out
from simulators.nmea_out import pgid, rmc
from simulators.osmand_out import query
from tests.conftest import listeners_off_env
from tests.polling import until, wait_for
from tests.ports import free_port

pytestmark = pytest.mark.db

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def stored(dsn: str, device: str) -> int:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute("SELECT count(*) FROM positions WHERE device_id = %s", (device,))
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


@contextlib.asynccontextmanager
async def tcp(
    dsn: str, counters: Counters, limits: Limits, fds: FdBudget | None = None
) -> AsyncIterator[TcpListener]:
    registry = DeviceRegistry(policy="register")
    async with (
        Writer(
            dsn, counters=counters, batch_delay_ms=5, on_registered=registry.mark_registered
        ) as writer,
        TcpListener(
            codec=t55,
            host="127.0.0.1",
            port=0,
            idle_timeout_s=30.0,
            max_line_bytes=1024,
            writer=writer,
            registry=registry,
            counters=counters,
            limits=limits,
            fds=fds,
        ) as listener,
    ):
        yield listener


async def connect(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server closed the connection (EOF or reset) within 5 s."""
    try:
        async with asyncio.timeout(5):
            return await reader.read(1) == b""
    except ConnectionResetError:
        return True


def refused(counters: Counters, reason: str) -> int:
    return counters.get("connections_refused", reason=reason)


async def close_all(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
    for _, w in conns:
        w.close()
        with contextlib.suppress(ConnectionError):
            await w.wait_closed()


async def send_fix(port: int, device: str, source: str = "127.0.0.1") -> None:
    r, w = await connect(port, source)
    w.write(pgid(device) + rmc(T0, -6.2, 106.8, 30.0, 90.0))
    await w.drain()
    await close_all([(r, w)])


def test_connections_beyond_the_total_are_closed_at_once_and_counted(clean_db: str) -> None:
    async def main() -> None:
        counters = Counters()
        async with tcp(clean_db, counters, Limits(total=5)) as lis:
            held = [await connect(lis.port) for _ in range(5)]
            await until(lambda: lis.open_connections == 5, what="5 connections open")
            extra = [await connect(lis.port) for _ in range(3)]
            for reader, _ in extra:
                assert await closed_by_server(reader)
            assert refused(counters, "max_connections") == 3
            assert lis.open_connections == 5
            await close_all(held[:1])  # a slot comes free: the next device gets in
            await until(lambda: lis.open_connections == 4, what="a slot to come free")
            await send_fix(lis.port, "WITHIN")
            await until(lambda: stored(clean_db, "WITHIN") == 1, what="the fix stored")
            assert refused(counters, "max_connections") == 3
            await close_all(held + extra)

    asyncio.run(main())


def test_one_address_is_held_to_its_share_and_others_still_get_in(clean_db: str) -> None:
    async def main() -> None:
        counters = Counters()
        async with tcp(clean_db, counters, Limits(total=100, per_peer=4)) as lis:
            crowd = [await connect(lis.port, "127.0.0.2") for _ in range(10)]
            await until(lambda: refused(counters, "max_per_peer") == 6, what="6 refusals")
            assert lis.open_connections == 4
            assert sum([await closed_by_server(r) for r, _ in crowd[4:]]) == 6
            await send_fix(lis.port, "NEIGHBOUR", "127.0.0.3")
            await until(lambda: stored(clean_db, "NEIGHBOUR") == 1, what="the fix stored")
            assert refused(counters, "max_connections") == 0
            await close_all(crowd)

    asyncio.run(main())


def test_the_descriptor_reserve_is_shared_by_every_listener(clean_db: str) -> None:
    async def main() -> None:
        counters = Counters()
        # a budget of 6 device connections beyond what the process holds now
        fds = FdBudget(100, limit=open_descriptors() + 100 + 6)
        async with (
            tcp(clean_db, counters, Limits(), fds) as first,
            tcp(clean_db, counters, Limits(), fds) as second,
        ):
            a = [await connect(first.port) for _ in range(3)]
            b = [await connect(second.port) for _ in range(6)]
            await until(lambda: refused(counters, "fd_reserve") > 0, what="a refusal")
            assert first.open_connections + second.open_connections == fds.held
            assert fds.held <= 6
            await close_all(a + b)
            await until(lambda: fds.held == 0, what="descriptors given back")
            await send_fix(second.port, "AFTER")
            await until(lambda: stored(clean_db, "AFTER") == 1, what="the fix stored")

    asyncio.run(main())


def test_the_osmand_port_has_the_same_limits(clean_db: str) -> None:
    async def main() -> None:
        counters = Counters()
        registry = DeviceRegistry(policy="register")
        async with (
            Writer(clean_db, counters=counters, batch_delay_ms=5) as writer,
            HttpListener(
                codec=osmand,
                host="127.0.0.1",
                port=0,
                max_body_bytes=4096,
                writer=writer,
                registry=registry,
                counters=counters,
                limits=Limits(per_peer=2),
            ) as lis,
        ):
            crowd = [await connect(lis.port, "127.0.0.2") for _ in range(5)]
            await until(lambda: refused(counters, "max_per_peer") == 3, what="3 refusals")
            r, w = await connect(lis.port)
            path = "/?" + query("PHONE", time=T0, lat=-6.2, lon=106.8)
            w.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            assert (await r.read()).startswith(b"HTTP/1.1 200")
            assert stored(clean_db, "PHONE") == 1
            await close_all([*crowd, (r, w)])

    asyncio.run(main())


def test_connections_wait_in_the_second_class_until_they_name_a_device(clean_db: str) -> None:
    """On the service's loop (``ingest.priority``) a connection starts in the rationed
    second class; a TCP device's first admitted packet and an OsmAnd device's stored
    request move theirs to the first; every descriptor leaves the class as it closes."""

    async def main() -> None:
        sel = priority.classes(asyncio.get_running_loop())
        assert sel is not None
        counters = Counters()
        registry = DeviceRegistry(policy="register")
        async with (
            Writer(clean_db, counters=counters, batch_delay_ms=5) as writer,
            TcpListener(
                codec=t55, host="127.0.0.1", port=0, idle_timeout_s=30.0, max_line_bytes=1024,
                writer=writer, registry=registry, counters=counters,
            ) as lis,
            HttpListener(
                codec=osmand, host="127.0.0.1", port=0, max_body_bytes=4096, writer=writer,
                registry=registry, counters=counters,
            ) as web,
        ):  # fmt: skip
            strangers = [await connect(lis.port) for _ in range(3)]
            device = await connect(lis.port)
            phone = await connect(web.port)
            await until(lambda: sel.seconds == 5, what="5 connections in the second class")
            device[1].write(pgid("KNOWN") + rmc(T0, -6.2, 106.8, 30.0, 90.0))
            await until(lambda: stored(clean_db, "KNOWN") == 1, what="the device's fix")
            await until(lambda: sel.seconds == 4, what="the device promoted")
            path = "/?" + query("PHONE", time=T0, lat=-6.2, lon=106.8)
            phone[1].write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert (await phone[0].readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            assert sel.seconds == 3  # the phone's keep-alive connection too
            await close_all([*strangers, device, phone])
            await until(lambda: sel.seconds == 0, what="every descriptor released")

    with asyncio.Runner(loop_factory=priority.new_loop) as runner:
        runner.run(main())


# -- the whole service in its own process, with few descriptors ------------------------

NOFILE = 768  # soft and hard: serve cannot raise it


def metric(port: int, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        return int(r.status)


def _few_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def test_a_connection_flood_leaves_the_api_health_and_a_device_working(clean_db: str) -> None:
    """Issue 14: idle connections beyond the open-file limit made the API and /healthz
    time out and the log grow by megabytes. Here 4 addresses open 900 connections to a
    service allowed 768 descriptors: one address is held to its share, the rest are
    refused before the reserve is touched, and a device still gets its ack."""
    port, api, metrics = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        **listeners_off_env(),
        "MENARA_DB_DSN": clean_db,
        "MENARA_TCP_HOST": "127.0.0.1",
        "MENARA_TELTONIKA_PORT": str(port),
        "MENARA_API_PORT": str(api),
        "MENARA_METRICS_PORT": str(metrics),
        "MENARA_MQTT_PORT": "0",
        "MENARA_TOWER_FEED": "off",
        "MENARA_UNKNOWN_DEVICES": "register",
        "MENARA_TCP_MAX_CONNECTIONS_PER_PEER": "150",
        "MENARA_FD_RESERVE": "256",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "menara", "serve"],
        env=env,
        stderr=subprocess.PIPE,
        preexec_fn=_few_descriptors,
    )
    crowd: list[socket.socket] = []
    try:

        def healthy() -> bool:
            assert proc.poll() is None, "serve exited"
            try:
                return status(f"http://127.0.0.1:{metrics}/healthz") == 200
            except OSError:
                return False

        wait_for(healthy, "serve to answer /healthz")
        device = socket.create_connection(("127.0.0.1", port), timeout=10)
        crowd.append(device)
        device.sendall(teltonika_out.login("356307042441013"))
        assert device.recv(1) == teltonika_out.LOGIN_ACCEPT
        for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
            for _ in range(225):
                crowd.append(socket.create_connection(("127.0.0.1", port), 10, (source, 0)))
            if source == "127.0.0.2":  # the budget is not spent yet: the address's share is
                wait_for(
                    lambda: (
                        metric(metrics, "menara_connections_refused_total", reason="max_per_peer")
                        == 75
                    ),
                    "the first address held to 150",
                )
        wait_for(
            lambda: metric(metrics, "menara_connections_refused_total", reason="fd_reserve") > 0,
            "refusals before the reserve",
        )
        record = teltonika_out.AvlRecord(time=T0, lat=-6.2, lon=106.8, speed_kmh=30)
        device.sendall(teltonika_out.avl_packet([record]))
        assert device.recv(4) == teltonika_out.ack(1)
        assert status(f"http://127.0.0.1:{metrics}/healthz") == 200
        assert status(f"http://127.0.0.1:{api}/api/v1/openapi.json") == 200
    finally:
        for s in crowd:
            s.close()
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    assert b"out of system resource" not in err
    assert len(err) < 20_000  # a few start and stop lines, no line per refusal
    assert stored(clean_db, "356307042441013") == 1


def test_serve_raises_the_soft_descriptor_limit() -> None:
    """What ``FdBudget`` counts on: ``raise_fd_limit`` lifts the soft limit to the hard
    one (checked in a child, which starts with a low soft limit)."""
    code = (
        "import resource;from ingest.limits import raise_fd_limit;"
        "soft,hard=resource.getrlimit(resource.RLIMIT_NOFILE);"
        "resource.setrlimit(resource.RLIMIT_NOFILE,(256,hard));"
        "print(raise_fd_limit()==hard==resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True", out.stderr
