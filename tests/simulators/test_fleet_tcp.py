"""Fleets over real TCP sockets to a small line-counting server started by the test."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pynmea2
import pytest

from simulators.fleet import FleetConfig, FleetStats, device_ids, run_fleet, transports
from tests.polling import until
from tests.ports import free_port

START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@dataclass
class LineServer:
    """Keeps every line of every connection, in order; knows when all peers hung up."""

    connections: list[list[bytes]] = field(default_factory=list)
    chunks: int = 0
    open: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines: list[bytes] = []
        self.connections.append(lines)
        self.open += 1
        buf = b""
        try:
            while chunk := await reader.read(65536):
                self.chunks += 1
                buf += chunk
                *done, buf = buf.split(b"\n")
                lines.extend(line + b"\n" for line in done)
        finally:
            self.open -= 1
            writer.close()

    async def all_closed(self, expected_connections: int, timeout_s: float = 5.0) -> None:
        await until(
            lambda: not self.open and len(self.connections) >= expected_connections,
            timeout_s,
            "the server's connections to close",
        )


def _sentence(line: bytes) -> pynmea2.NMEASentence | None:
    """The parsed sentence, or None for a line that is not one with a good checksum."""
    try:
        return pynmea2.parse(line.decode("ascii").rstrip("\r\n"), check=True)
    except (UnicodeDecodeError, pynmea2.ParseError):
        return None


@dataclass
class Tally:
    ids_per_connection: list[str] = field(default_factory=list)
    fixes: list[tuple[str, datetime]] = field(default_factory=list)
    gga: int = 0
    junk: int = 0


def _tally(server: LineServer) -> Tally:
    out = Tally()
    for lines in server.connections:
        assert lines[0].startswith(b"$PGID,"), "identity line must come first"
        device = lines[0][6:].split(b"*")[0].decode()
        out.ids_per_connection.append(device)
        for line in lines[1:]:
            msg = _sentence(line)
            if isinstance(msg, pynmea2.RMC):
                out.fixes.append((device, msg.datetime))
            elif isinstance(msg, pynmea2.GGA):
                out.gga += 1
            else:
                out.junk += 1
    return out


async def _run(cfg: FleetConfig) -> tuple[FleetStats, LineServer]:
    server = LineServer()
    srv = await asyncio.start_server(server.handle, "127.0.0.1", cfg.tcp_port)
    async with srv:
        stats = await run_fleet(cfg)
        await server.all_closed(cfg.vehicles + stats.tcp.reconnects)
    return stats, server


def _cfg(**kw: object) -> FleetConfig:
    base: dict[str, object] = dict(
        vehicles=4,
        transport="tcp",
        realtime=False,
        fixes_per_vehicle=25,
        start_time=START,
        tcp_port=free_port(),
    )
    return FleetConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_t55_devices_send_identity_then_rmc_gga_pairs() -> None:
    cfg = _cfg()
    stats, server = asyncio.run(_run(cfg))
    tally = _tally(server)
    assert sorted(tally.ids_per_connection) == device_ids(cfg)
    assert stats.tcp.fixes_sent == stats.unique_fixes == 4 * 25
    assert set(tally.fixes) == stats.sent and len(tally.fixes) == 100
    for lines in server.connections:
        kinds = [line[3:6] for line in lines[1:]]
        assert kinds == [b"RMC", b"GGA"] * 25
    # Fix times advance by exactly 1/rate from the start time.
    times = sorted(t for d, t in stats.sent if d == device_ids(cfg)[0])
    assert times[0] == START and times[-1] == START.replace(second=24)
    assert (stats.tcp.duplicates_sent, stats.tcp.garbage_sent, stats.tcp.reconnects) == (0, 0, 0)


def test_faults_arrive_as_counted() -> None:
    cfg = _cfg(duplicate=0.2, garbage=0.2, split=0.3, disconnect=0.08, fixes_per_vehicle=40)
    stats, server = asyncio.run(_run(cfg))
    tally = _tally(server)
    tcp = stats.tcp
    assert min(tcp.duplicates_sent, tcp.garbage_sent, tcp.splits, tcp.reconnects) > 0
    assert len(server.connections) == cfg.vehicles + tcp.reconnects
    assert len(tally.fixes) == tally.gga == tcp.fixes_sent + tcp.duplicates_sent
    assert tally.junk == tcp.garbage_sent
    assert set(tally.fixes) == stats.sent and len(stats.sent) == 4 * 40
    assert server.chunks > len(server.connections)


def test_same_seed_same_bytes() -> None:
    port = free_port()
    cfg = _cfg(tcp_port=port, duplicate=0.3, garbage=0.3, vehicles=2, fixes_per_vehicle=10)
    first = asyncio.run(_run(cfg))[1].connections
    second = asyncio.run(_run(cfg))[1].connections
    assert sorted(first) == sorted(second)


def test_server_down_counts_failures_and_gives_up() -> None:
    cfg = _cfg(duration_s=0.6)
    began = time.monotonic()
    stats = asyncio.run(run_fleet(cfg))
    assert time.monotonic() - began < 3.0
    assert stats.fixes_sent == 0 and stats.sent == set()
    assert stats.tcp.connect_failures >= cfg.vehicles


def test_server_coming_up_late_gets_every_fix() -> None:
    cfg = _cfg(duration_s=10.0, vehicles=3, fixes_per_vehicle=5)

    async def scenario() -> tuple[FleetStats, LineServer]:
        server = LineServer()
        fleet = asyncio.create_task(run_fleet(cfg))
        await asyncio.sleep(0.3)
        srv = await asyncio.start_server(server.handle, "127.0.0.1", cfg.tcp_port)
        async with srv:
            stats = await fleet
            await server.all_closed(cfg.vehicles)
        return stats, server

    stats, server = asyncio.run(scenario())
    assert stats.tcp.connect_failures >= cfg.vehicles
    assert set(_tally(server).fixes) == stats.sent and len(stats.sent) == 15


def test_stop_ends_a_realtime_run_promptly() -> None:
    cfg = _cfg(realtime=True, rate_hz=1.0, fixes_per_vehicle=None, duration_s=60.0)
    seen: list[int] = []

    async def scenario() -> tuple[FleetStats, LineServer]:
        stop = asyncio.Event()
        server = LineServer()
        srv = await asyncio.start_server(server.handle, "127.0.0.1", cfg.tcp_port)
        async with srv:
            asyncio.get_running_loop().call_later(1.5, stop.set)
            stats = await run_fleet(cfg, stop=stop, progress=lambda s: seen.append(s.fixes_sent))
            await server.all_closed(cfg.vehicles)
        return stats, server

    began = time.monotonic()
    stats, server = asyncio.run(scenario())
    assert time.monotonic() - began < 3.0
    assert 4 <= stats.fixes_sent <= 4 * 2
    assert set(_tally(server).fixes) == stats.sent
    assert seen and seen[-1] == stats.fixes_sent


def test_device_ids_and_transport_split() -> None:
    cfg = FleetConfig(vehicles=5)
    assert device_ids(cfg) == ["SIM00000", "SIM00001", "SIM00002", "SIM00003", "SIM00004"]
    assert list(transports(cfg).values()) == ["mqtt", "mqtt", "tcp", "tcp", "tcp"]
    imeis = device_ids(FleetConfig(vehicles=3, imei=True))
    assert all(len(i) == 15 and i.isdigit() for i in imeis)
    assert all(_luhn_ok(i) for i in [*imeis, "359853000144328"])
    assert not _luhn_ok("359853000144329")


def _luhn_ok(number: str) -> bool:
    digits = [int(c) for c in reversed(number)]
    doubled = [sum(divmod(2 * d, 10)) for d in digits[1::2]]
    return (sum(digits[0::2]) + sum(doubled)) % 10 == 0


@pytest.mark.parametrize(
    "bad", [dict(vehicles=0), dict(rate_hz=0.0), dict(garbage=1.5), dict(transport="udp")]
)
def test_bad_config_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FleetConfig(**bad)  # type: ignore[arg-type]


def test_server_hanging_up_makes_the_device_reconnect() -> None:
    cfg = _cfg(vehicles=1, fixes_per_vehicle=200)
    conns: list[list[bytes]] = []
    finished = 0

    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Hangs up on the first connection after five lines; keeps later ones to the end."""
        nonlocal finished
        lines: list[bytes] = []
        conns.append(lines)
        while (len(conns) > 1 or len(lines) < 5) and (line := await reader.readline()):
            lines.append(line)
        writer.close()
        finished += 1

    async def scenario() -> FleetStats:
        async with await asyncio.start_server(rude, "127.0.0.1", cfg.tcp_port):
            stats = await run_fleet(cfg)
            deadline = time.monotonic() + 5
            while finished < len(conns) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        return stats

    stats = asyncio.run(scenario())
    assert stats.tcp.reconnects >= 1 and len(conns) >= 2
    assert all(c[0].startswith(b"$PGID,") for c in conns)
    last = max(stats.sent)
    received = {
        (last[0], m.datetime)
        for c in conns
        for m in map(_sentence, c[1:])
        if isinstance(m, pynmea2.RMC)
    }
    assert received <= stats.sent and last in received
