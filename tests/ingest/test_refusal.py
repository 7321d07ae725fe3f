"""Who is let in on the device protocols, and what a refused device hears: the real service.

A refused device must get its protocol's refusal and nothing else (no login reply, no
ack for fixes that were only dead-lettered), everything it sent must be kept as a dead
letter, and the connection must close. A known device, or an unknown one under the
``register`` policy, must be served as usual, whatever else arrives on its connection.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from decoders import gt06, teltonika
from ingest.counters import Counters
from menara.settings import Settings
from simulators import gps103_out, gt06_out, h02_out, teltonika_out
from tests.ingest.test_service import running, settings_for
from tests.ingest.test_tcp import rig
from tests.ports import free_port

pytestmark = pytest.mark.db

T0 = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
KNOWN = "356307042441013"
STRANGER = "356307042441099"


@dataclass(frozen=True)
class Dialect:
    """What a device of one protocol sends and what it is owed."""

    port_setting: str
    hello: Callable[[str], bytes]  # login (H02: heartbeat), named by the device id
    hello_reply: Callable[[str], bytes]
    fixes: Callable[[str, int], bytes]  # two fixes starting at second ``i``
    fixes_reply: Callable[[str, int], bytes]
    refusal: bytes
    fixes_named: bool  # each fix frame names its device (else it is the connection's)


def _avl(i: int) -> bytes:
    return teltonika_out.avl_packet(
        [
            teltonika_out.AvlRecord(time=T0 + timedelta(seconds=i + k), lat=-6.2, lon=106.8)
            for k in range(2)
        ]
    )


def _gt06(i: int) -> bytes:
    """A location (not acked) and an SOS alarm (acked)."""
    fix = functools.partial(
        gt06_out.location, lat=-6.2, lon=106.8, speed_kmh=10, course_deg=90, satellites=9
    )
    alarm = functools.partial(
        gt06_out.alarm, lat=-6.2, lon=106.8, speed_kmh=10, course_deg=90, satellites=9
    )
    return fix(time=T0 + timedelta(seconds=i), valid=True, serial=10 + i) + alarm(
        time=T0 + timedelta(seconds=i + 1), valid=True, alarm="sos", serial=11 + i
    )


def _gps103(dev: str, i: int) -> bytes:
    """A routine position (no reply) and a help-me (answered)."""
    fix = functools.partial(
        gps103_out.position, dev, lat=-6.2, lon=106.8, speed_kmh=10.0, course_deg=90.0
    )
    return fix(time=T0 + timedelta(seconds=i), valid=True) + fix(
        time=T0 + timedelta(seconds=i + 1), valid=True, keyword="help me"
    )


def _h02(dev: str, i: int) -> bytes:
    fix = functools.partial(
        h02_out.position, dev, lat=-6.2, lon=106.8, speed_kmh=10.0, course_deg=90.0
    )
    return b"".join(fix(time=T0 + timedelta(seconds=i + k), valid=True) for k in range(2))


DIALECTS = {
    "teltonika": Dialect(
        "teltonika_port",
        teltonika_out.login,
        lambda _: teltonika.LOGIN_ACCEPT,
        lambda _, i: _avl(i),
        lambda _, i: teltonika_out.ack(2),
        teltonika.LOGIN_REFUSE,
        False,
    ),
    "gt06": Dialect(
        "gt06_port",
        lambda dev: gt06_out.login(dev, 1),
        lambda _: gt06_out.server_ack(gt06.MSG_LOGIN, 1),
        lambda _, i: _gt06(i),
        lambda _, i: gt06_out.server_ack(gt06.MSG_GPS_LBS_STATUS, 11 + i),  # the alarm's
        b"",
        False,
    ),
    "gps103": Dialect(
        "gps103_port",
        gps103_out.login,
        lambda _: gps103_out.LOGIN_REPLY,
        _gps103,
        lambda dev, i: f"**,imei:{dev},E;".encode(),  # the help-me's
        b"",
        True,
    ),
    "h02": Dialect(
        "h02_port",
        lambda dev: f"*HQ,{dev},HTBT#".encode(),
        lambda dev: f"*HQ,{dev},HTBT#".encode(),
        _h02,
        lambda dev, i: b"",  # H02 positions get no reply
        b"",
        True,
    ),
}


def sql(dsn: str, text: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(text, args).fetchall())


def configured(dsn: str, dialect: Dialect, policy: str) -> Settings:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO devices (device_id) VALUES (%s)", (KNOWN,))
    return settings_for(dsn, **{dialect.port_setting: free_port()}, unknown_devices=policy)


async def everything_until_hangup(reader: asyncio.StreamReader) -> bytes:
    """All the server sends before it closes (bounded: a live connection fails the test)."""
    return await asyncio.wait_for(reader.read(), 10)


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_refused_login_with_fixes_in_the_same_read(clean_db: str, name: str) -> None:
    """Login and fixes in one packet: the refusal only, all of it dead-lettered, a hangup."""
    d = DIALECTS[name]
    cfg = configured(clean_db, d, "reject")
    sent = d.hello(STRANGER) + d.fixes(STRANGER, 0)

    async def main() -> bytes:
        async with running(cfg, Counters()):
            r, w = await asyncio.open_connection("127.0.0.1", getattr(cfg, d.port_setting))
            w.write(sent)
            heard = await everything_until_hangup(r)
            w.close()
            return heard

    assert asyncio.run(main()) == d.refusal
    assert sql(clean_db, "SELECT count(*) FROM positions") == [(0,)]
    letters = sql(clean_db, "SELECT device_id, reason, raw FROM dead_letters ORDER BY id")
    assert {(dev, reason) for dev, reason, _ in letters} == {(STRANGER, "unknown_device")}
    assert b"".join(bytes(raw) for *_, raw in letters) == sent
    assert sql(clean_db, "SELECT device_id FROM devices") == [(KNOWN,)]


@pytest.mark.parametrize("policy", ["reject", "register"])
@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_admitted_devices_are_served(clean_db: str, name: str, policy: str) -> None:
    """A known device's bare login, and an unknown one under ``register``, are answered;
    the fixes that follow are acked after commit and the connection stays up."""
    d = DIALECTS[name]
    cfg = configured(clean_db, d, policy)
    devices = [KNOWN] if policy == "reject" else [KNOWN, STRANGER]

    async def main() -> None:
        async with running(cfg, Counters()):
            for dev in devices:
                r, w = await asyncio.open_connection("127.0.0.1", getattr(cfg, d.port_setting))
                w.write(d.hello(dev))  # the login alone
                hello = d.hello_reply(dev)
                assert await asyncio.wait_for(r.readexactly(len(hello)), 10) == hello
                for i in (0, 10):
                    w.write(d.fixes(dev, i))
                    owed = d.fixes_reply(dev, i)
                    assert await asyncio.wait_for(r.readexactly(len(owed)), 10) == owed
                w.write(d.hello(dev))  # still connected: a heartbeat (or login) is answered
                assert await asyncio.wait_for(r.readexactly(len(hello)), 10) == hello
                w.close()

    asyncio.run(main())
    assert sql(clean_db, "SELECT device_id, count(*) FROM positions GROUP BY 1 ORDER BY 1") == [
        (dev, 4) for dev in devices
    ]
    assert sql(clean_db, "SELECT reason FROM dead_letters") == []
    assert sql(clean_db, "SELECT device_id FROM devices ORDER BY 1") == [(x,) for x in devices]


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_another_identity_mid_connection_earns_no_reply(clean_db: str, name: str) -> None:
    """A known device's connection then speaks for a refused one: all of that is dead-
    lettered and answered with nothing; the known device's next fixes are acked as usual.
    (Teltonika and GT06 fixes name no device: after a login for another one they are still
    the connection's, so only the login is the stranger's there.)"""
    d = DIALECTS[name]
    stranger = d.hello(STRANGER) + (d.fixes(STRANGER, 0) if d.fixes_named else b"")
    cfg = configured(clean_db, d, "reject")
    probe = d.fixes(KNOWN, 20) + d.hello(KNOWN)
    owed = d.fixes_reply(KNOWN, 20) + d.hello_reply(KNOWN)

    async def main() -> None:
        async with running(cfg, Counters()):
            r, w = await asyncio.open_connection("127.0.0.1", getattr(cfg, d.port_setting))
            w.write(d.hello(KNOWN))
            hello = d.hello_reply(KNOWN)
            assert await asyncio.wait_for(r.readexactly(len(hello)), 10) == hello
            w.write(stranger)
            w.write(probe)
            # replies keep their order: anything owed to the stranger would come first
            assert await asyncio.wait_for(r.readexactly(len(owed)), 10) == owed
            w.close()

    asyncio.run(main())
    assert sql(clean_db, "SELECT DISTINCT device_id FROM positions") == [(KNOWN,)]
    letters = sql(clean_db, "SELECT DISTINCT device_id, reason FROM dead_letters")
    assert letters == [(KNOWN, "identity_changed")]


def test_device_disabled_while_connected_gets_no_ack_and_is_hung_up_on(clean_db: str) -> None:
    """Fixes that are only dead-lettered (``unknown_device``) must not be acked: the device
    would delete records that were never stored as positions."""
    first, second = _avl(0), _avl(10)

    async def main() -> None:
        async with rig(clean_db, policy="reject", known=[KNOWN], codec=teltonika) as r:
            reader, w = await r.connect()
            w.write(teltonika_out.login(KNOWN) + first)
            owed = teltonika.LOGIN_ACCEPT + teltonika_out.ack(2)
            assert await asyncio.wait_for(reader.readexactly(len(owed)), 10) == owed
            r.registry.replace(enabled=[], disabled=[KNOWN])  # an operator disables it
            w.write(second)
            assert await everything_until_hangup(reader) == b""
            w.close()
            reader, w = await r.connect()  # the login again, now refused
            w.write(teltonika_out.login(KNOWN))
            assert await everything_until_hangup(reader) == teltonika.LOGIN_REFUSE
            assert r.counters.get("refused_devices") == 2
            w.close()

    asyncio.run(asyncio.wait_for(main(), 60))
    assert sql(clean_db, "SELECT count(*) FROM positions") == [(2,)]
    assert sql(clean_db, "SELECT device_id, reason, raw FROM dead_letters ORDER BY id") == [
        (KNOWN, "unknown_device", second),
        (KNOWN, "unknown_device", teltonika_out.login(KNOWN)),
    ]


def test_a_repeated_login_or_heartbeat_after_a_disable_is_refused(clean_db: str) -> None:
    """No reply of any kind once the device is refused, not only none for fixes."""

    async def main() -> None:
        async with rig(clean_db, policy="reject", known=[KNOWN], codec=gt06) as r:
            for again in (gt06_out.login(KNOWN, 2), gt06_out.heartbeat(2)):
                r.registry.replace(enabled=[KNOWN], disabled=[])
                reader, w = await r.connect()
                w.write(gt06_out.login(KNOWN, 1))
                ack = gt06_out.server_ack(gt06.MSG_LOGIN, 1)
                assert await asyncio.wait_for(reader.readexactly(len(ack)), 10) == ack
                r.registry.replace(enabled=[], disabled=[KNOWN])
                w.write(again)
                assert await everything_until_hangup(reader) == b""
                w.close()

    asyncio.run(asyncio.wait_for(main(), 60))
    assert [reason for (reason,) in sql(clean_db, "SELECT reason FROM dead_letters")] == [
        "unknown_device"
    ] * 2
