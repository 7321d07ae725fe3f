"""Device protocols end to end: the service on real sockets, simulated trackers, PostgreSQL.

Every protocol's vehicles log in, wait for the replies a real device waits for, resend
what was not acknowledged and reconnect; the database must then hold exactly the fixes
the simulator delivered, once each, and every junk frame as a dead letter.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ingest.counters import Counters
from menara.service import LISTENER_PORTS
from menara.settings import Settings
from simulators import gt06_out, teltonika_out
from simulators.fleet import FleetConfig, run_fleet
from simulators.model import DEVICE_PROTOCOLS, protocols
from tests.ingest.test_service import running, settings_for
from tests.ports import free_port

pytestmark = pytest.mark.db

T0 = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
IMEI = "356307042441013"


def all_ports(dsn: str, **changes: object) -> Settings:
    ports = {setting: free_port() for setting in LISTENER_PORTS.values()}
    return settings_for(dsn, **ports, **changes)


def rows(dsn: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(sql, args).fetchall())


def test_every_protocol_stores_exactly_what_was_delivered(clean_db: str) -> None:
    cfg = all_ports(clean_db)
    fleet = FleetConfig(
        vehicles=24,
        transport="tcp",
        protocols=DEVICE_PROTOCOLS,
        imei=True,
        tcp_host="127.0.0.1",
        tcp_port=cfg.t55_port,
        ports={p: int(getattr(cfg, s)) for p, s in LISTENER_PORTS.items()},
        realtime=False,
        fixes_per_vehicle=30,
        start_time=T0,
        duplicate=0.05,
        garbage=0.05,
        split=0.1,
        disconnect=0.03,
        lose_ack=0.1,
        ack_timeout_s=5.0,
    )

    async def main() -> tuple[int, int, set[tuple[str, datetime]]]:
        counters = Counters()
        async with running(cfg, counters):
            stats = await run_fleet(fleet)
        return stats.tcp.garbage_sent + stats.http.garbage_sent, stats.tcp.resends, stats.sent

    junk, resends, sent = asyncio.run(main())
    stored = rows(clean_db, "SELECT device_id, fix_time, protocol FROM positions")
    assert len(sent) == 24 * 30
    assert {(d, t) for d, t, _ in stored} == sent
    spoken = protocols(fleet)
    assert all(spoken[str(d)] == p for d, _, p in stored)
    assert {p for _, _, p in stored} == set(DEVICE_PROTOCOLS)
    assert resends > 0, "lose_ack=0.1 over 120 Teltonika fixes must have resent some"
    letters = rows(clean_db, "SELECT protocol, reason FROM dead_letters")
    assert len(letters) == junk, letters
    assert junk > 0


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed(reader: asyncio.StreamReader) -> bool:
    """True once the server hangs up (bounded: a live connection fails the test)."""
    return await asyncio.wait_for(reader.read(), 10) == b""


def _record(i: int) -> teltonika_out.AvlRecord:
    return teltonika_out.AvlRecord(
        time=T0 + timedelta(seconds=i), lat=-6.2 + i * 1e-4, lon=106.8, satellites=9
    )


def _register(dsn: str, device_id: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO devices (device_id) VALUES (%s)", (device_id,))


@pytest.fixture
def strict(clean_db: str) -> Settings:
    """All listeners up, unknown devices refused, ``IMEI`` known."""
    _register(clean_db, IMEI)
    return all_ports(clean_db, unknown_devices="reject")


def test_teltonika_refused_login_gets_0x00_a_dead_letter_and_a_hangup(strict: Settings) -> None:
    async def main() -> bytes:
        async with running(strict, Counters()):
            r, w = await _connect(strict.teltonika_port)
            w.write(teltonika_out.login("356307042441099"))
            reply = await asyncio.wait_for(r.readexactly(1), 10)
            assert await _closed(r)
            w.close()
            return reply

    assert asyncio.run(main()) == b"\x00"
    letters = rows(strict.db_dsn, "SELECT device_id, reason FROM dead_letters")
    assert letters == [("356307042441099", "unknown_device")]


def test_teltonika_ack_comes_after_commit_and_bad_crc_gets_none(strict: Settings) -> None:
    good = teltonika_out.avl_packet([_record(0), _record(1)])
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])

    async def main() -> None:
        async with running(strict, Counters()):
            r, w = await _connect(strict.teltonika_port)
            w.write(teltonika_out.login(IMEI))
            assert await asyncio.wait_for(r.readexactly(1), 10) == teltonika_out.LOGIN_ACCEPT
            w.write(bad + teltonika_out.avl_packet([_record(2)]))
            # the first ack is the good packet's: the bad one earned nothing
            assert await asyncio.wait_for(r.readexactly(4), 10) == teltonika_out.ack(1)
            assert rows(strict.db_dsn, "SELECT count(*) FROM positions") == [(1,)]
            w.write(good)
            assert await asyncio.wait_for(r.readexactly(4), 10) == teltonika_out.ack(2)
            assert rows(strict.db_dsn, "SELECT count(*) FROM positions") == [(3,)]
            w.close()

    asyncio.run(main())
    assert rows(strict.db_dsn, "SELECT reason FROM dead_letters") == [("bad_crc",)]


def test_lost_framing_closes_that_connection_only(strict: Settings) -> None:
    async def main() -> None:
        async with running(strict, Counters()):
            r1, w1 = await _connect(strict.teltonika_port)
            r2, w2 = await _connect(strict.teltonika_port)
            for w in (w1, w2):
                w.write(teltonika_out.login(IMEI))
            for r in (r1, r2):
                assert await asyncio.wait_for(r.readexactly(1), 10) == b"\x01"
            w1.write(b"\x00\x00\x00\x07" + bytes(20))  # a preamble that is not four zeros
            assert await _closed(r1)
            w2.write(teltonika_out.avl_packet([_record(5)]))
            assert await asyncio.wait_for(r2.readexactly(4), 10) == teltonika_out.ack(1)
            w1.close()
            w2.close()

    asyncio.run(main())
    (reason,) = rows(strict.db_dsn, "SELECT reason FROM dead_letters")
    assert reason[0] != "unknown_device"
    assert rows(strict.db_dsn, "SELECT count(*) FROM positions") == [(1,)]


def test_gt06_login_heartbeat_and_location(strict: Settings) -> None:
    async def main() -> None:
        async with running(strict, Counters()):
            r, w = await _connect(strict.gt06_port)
            w.write(gt06_out.login(IMEI, 1))
            ack = gt06_out.server_ack(0x01, 1)
            assert await asyncio.wait_for(r.readexactly(len(ack)), 10) == ack
            fix = gt06_out.location(
                time=T0,
                lat=-6.175392,
                lon=106.827153,
                speed_kmh=42,
                course_deg=271,
                satellites=9,
                valid=True,
                serial=2,
            )
            w.write(fix + gt06_out.heartbeat(3))
            hb = gt06_out.server_ack(0x13, 3)
            assert await asyncio.wait_for(r.readexactly(len(hb)), 10) == hb
            w.close()

    asyncio.run(main())
    ((lat, lon, speed, course, valid),) = rows(
        strict.db_dsn, "SELECT lat, lon, speed_kmh, course_deg, valid FROM positions"
    )
    assert abs(float(lat) + 6.175392) < 1e-5 and abs(float(lon) - 106.827153) < 1e-5  # type: ignore[arg-type]
    assert (speed, course, valid) == (42.0, 271.0, True)


class _Device(asyncio.DatagramProtocol):
    """A UDP tracker's socket: every datagram the server sends lands in ``replies``."""

    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.replies.put_nowait(data)


def test_teltonika_udp_acks_after_commit_and_refuses_unknown_devices(strict: Settings) -> None:
    cfg = strict.replace(teltonika_udp_port=free_port())
    good = teltonika_out.udp_datagram(IMEI, [_record(0), _record(1)], packet_id=7, avl_packet_id=9)
    stranger = teltonika_out.udp_datagram("356307042441099", [_record(2)], avl_packet_id=3)

    async def main() -> None:
        async with running(cfg, Counters()):
            loop = asyncio.get_running_loop()
            transport, device = await loop.create_datagram_endpoint(
                _Device, remote_addr=("127.0.0.1", cfg.teltonika_udp_port)
            )
            transport.sendto(stranger)
            transport.sendto(b"\x00\x03xyz")  # a length that is not the datagram's
            transport.sendto(good)
            # the only reply is the good datagram's: 0005, packet id, 01, AVL id, count
            reply = await asyncio.wait_for(device.replies.get(), 10)
            assert reply == bytes.fromhex("00050007010902")
            assert rows(cfg.db_dsn, "SELECT count(*) FROM positions") == [(2,)]
            transport.sendto(good)  # a resend after a lost ack: acked again, stored once
            assert await asyncio.wait_for(device.replies.get(), 10) == reply
            assert device.replies.empty()
            transport.close()

    asyncio.run(main())
    assert rows(cfg.db_dsn, "SELECT count(*) FROM positions") == [(2,)]
    letters = rows(cfg.db_dsn, "SELECT transport, reason FROM dead_letters ORDER BY id")
    assert sorted(letters) == [("udp", "bad_length"), ("udp", "unknown_device")]
