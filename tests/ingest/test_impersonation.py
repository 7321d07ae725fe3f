"""A device is bound to its protocol, fixes from the future are refused, and a row of
another protocol never pre-empts a device's own fix: the real service, real sockets,
real PostgreSQL and Mosquitto (issue 14, item 2).

The attack: a Teltonika tracker's IMEI (printed on its label) sent over OsmAnd HTTP, MQTT
and a GT06 login was stored every time; ten OsmAnd fixes with the tracker's future fix
times then made its genuine packet a silent duplicate (acked, none of it kept).
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import psycopg
import pytest

from decoders import teltonika
from ingest.counters import Counters
from ingest.devices import Admission, DeviceRegistry
from menara.settings import Settings
from simulators import gt06_out, teltonika_out
from simulators.nmea_out import json_fix
from simulators.osmand_out import query
from tests.brokers import Broker
from tests.ingest.test_mqtt import Publisher
from tests.ingest.test_service import running, settings_for
from tests.polling import until
from tests.ports import free_port

pytestmark = [pytest.mark.db, pytest.mark.mqtt]

T0 = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
IMEI = "356307042441013"
TCP_IMEI, UDP_IMEI = "356307042441021", "356307042441039"


def sql(dsn: str, text: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(text, args)
        return cur.fetchall() if cur.description else []


def every_intake(dsn: str, broker: Broker, **changes: object) -> Settings:
    prefix = f"t{uuid.uuid4().hex[:8]}/v1"
    return settings_for(
        dsn,
        teltonika_port=free_port(),
        teltonika_udp_port=free_port(),
        gt06_port=free_port(),
        osmand_port=free_port(),
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        mqtt_topic_prefix=prefix,
        mqtt_client_id=f"ingest-{prefix}",
        metrics_port=0,
        **changes,
    )


def record(t: datetime, *, speed_kmh: int = 40) -> teltonika_out.AvlRecord:
    return teltonika_out.AvlRecord(time=t, lat=-6.2, lon=106.8, speed_kmh=speed_kmh)


async def osmand(cfg: Settings, device: str, t: datetime, key: str = "") -> tuple[int, str]:
    url = f"http://127.0.0.1:{cfg.osmand_port}/?" + query(device, time=t, lat=-7.0, lon=107.0)
    async with aiohttp.ClientSession() as http, http.get(url + key) as r:
        return r.status, await r.text()


async def teltonika_tcp(
    cfg: Settings, device: str, records: list[teltonika_out.AvlRecord]
) -> bytes:
    """Log in, send one AVL packet; what the server answered to both."""
    r, w = await asyncio.open_connection("127.0.0.1", cfg.teltonika_port)
    w.write(teltonika_out.login(device))
    heard = await asyncio.wait_for(r.readexactly(1), 10)
    if heard == teltonika.LOGIN_ACCEPT:
        w.write(teltonika_out.avl_packet(records))
        heard += await asyncio.wait_for(r.readexactly(4), 10)
    w.close()
    return heard


def test_a_teltonika_imei_is_refused_in_other_protocols_and_its_fixes_win(
    clean_db: str, project_broker: Broker
) -> None:
    """The issue's attack, replayed: OsmAnd, MQTT and GT06 in the tracker's name are
    ``wrong_protocol`` (refused, counted, dead-lettered, nothing stored); ten rows of
    another protocol already stored at the tracker's fix times (the attacker's, from
    before) are replaced by the tracker's packet, which is acked."""
    sql(clean_db, "INSERT INTO devices (device_id, protocol) VALUES (%s, 'teltonika')", IMEI)
    times = [T0 + timedelta(seconds=i) for i in range(10)]
    sql(
        clean_db,
        "INSERT INTO positions (device_id, fix_time, received_time, lat, lon, speed_kmh, valid,"
        " transport, protocol) SELECT %s, t, t, -7.0, 107.0, NULL, true, 'http', 'osmand'"
        " FROM unnest(%s::timestamptz[]) t",
        IMEI,
        times,
    )
    cfg = every_intake(clean_db, project_broker, unknown_devices="reject")
    counters = Counters()
    login = gt06_out.login(IMEI, 1)

    async def main() -> None:
        async with running(cfg, counters):
            status, text = await osmand(cfg, IMEI, T0 + timedelta(minutes=1))
            assert (status, text.split(":")[0]) == (403, "wrong_protocol")

            publisher = Publisher(project_broker)
            fix = json_fix(T0 + timedelta(minutes=2), -7.0, 107.0, speed_kmh=5.0, course_deg=0.0)
            publisher.send([(f"{cfg.mqtt_topic_prefix}/{IMEI}/json", json.dumps(fix).encode())])
            publisher.close()
            await until(
                lambda: bool(sql(clean_db, "SELECT 1 FROM dead_letters WHERE transport = 'mqtt'")),
                timeout_s=20,
                what="the MQTT message's dead letter",
            )

            r, w = await asyncio.open_connection("127.0.0.1", cfg.gt06_port)
            w.write(login)
            assert await asyncio.wait_for(r.read(), 10) == b""  # no login ack, hung up
            w.close()

            heard = await teltonika_tcp(cfg, IMEI, [record(t) for t in times])
            assert heard == teltonika.LOGIN_ACCEPT + teltonika_out.ack(10)

    asyncio.run(asyncio.wait_for(main(), 90))
    stored = sql(
        clean_db,
        "SELECT fix_time, lat, speed_kmh, transport, protocol FROM positions ORDER BY fix_time",
    )
    assert stored == [(t, -6.2, 40.0, "tcp", "teltonika") for t in times]
    letters = sql(clean_db, "SELECT transport, protocol, device_id, reason, raw FROM dead_letters")
    assert sorted((t, p, d, reason) for t, p, d, reason, _ in letters) == [
        ("http", "osmand", IMEI, "wrong_protocol"),
        ("mqtt", "menara-json", IMEI, "wrong_protocol"),
        ("tcp", "gt06", IMEI, "wrong_protocol"),
    ]
    assert bytes(next(raw for t, p, *_, raw in letters if p == "gt06")) == login
    for protocol in ("osmand", "menara-json", "gt06"):
        assert counters.get("rejects", protocol=protocol, code="wrong_protocol") == 1
    assert counters.get("rows_merged", transport="tcp") == 10  # replaced, not kept


def test_a_device_without_a_protocol_is_bound_by_its_first_stored_fix(
    clean_db: str, project_broker: Broker
) -> None:
    """Registered with no protocol: its first stored fix binds it, in ``devices`` and at
    once in the running service (no registry reload needed), so the next OsmAnd request
    in its name is refused."""
    sql(clean_db, "INSERT INTO devices (device_id) VALUES (%s)", IMEI)
    cfg = every_intake(clean_db, project_broker, unknown_devices="reject")

    async def main() -> None:
        async with running(cfg, Counters()):
            heard = await teltonika_tcp(cfg, IMEI, [record(T0)])
            assert heard == teltonika.LOGIN_ACCEPT + teltonika_out.ack(1)
            status, text = await osmand(cfg, IMEI, T0 + timedelta(seconds=1))
            assert (status, text.split(":")[0]) == (403, "wrong_protocol")

    asyncio.run(asyncio.wait_for(main(), 60))
    assert sql(clean_db, "SELECT protocol FROM devices") == [("teltonika",)]
    assert sql(clean_db, "SELECT protocol FROM positions") == [("teltonika",)]


def test_fixes_ahead_of_their_receipt_are_refused_on_every_transport(
    clean_db: str, project_broker: Broker
) -> None:
    """A fix more than ``future_fix_s`` ahead is refused ``future_fix`` (counted, kept as a
    dead letter) over HTTP, TCP, UDP and MQTT; the sound fixes beside it are stored and
    the packet acked (resending it could not make it any less future)."""
    cfg = every_intake(clean_db, project_broker, unknown_devices="register")
    now = datetime.now(UTC).replace(microsecond=0)
    past, ahead = now - timedelta(minutes=1), now + timedelta(seconds=cfg.future_fix_s + 600)
    counters = Counters()

    async def main() -> None:
        async with running(cfg, counters):
            status, text = await osmand(cfg, "PHONE-1", ahead)
            assert (status, text.split(":")[0]) == (400, "future_fix")
            assert (await osmand(cfg, "PHONE-1", past))[0] == 200

            heard = await teltonika_tcp(cfg, TCP_IMEI, [record(past), record(ahead)])
            assert heard == teltonika.LOGIN_ACCEPT + teltonika_out.ack(2)

            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.settimeout(10)
                datagram = teltonika_out.udp_datagram(UDP_IMEI, [record(past), record(ahead)])
                udp.sendto(datagram, ("127.0.0.1", cfg.teltonika_udp_port))
                assert await asyncio.to_thread(udp.recv, 64)  # the ack, after commit

            publisher = Publisher(project_broker)
            fixes = [json_fix(t, -6.2, 106.8, speed_kmh=1.0, course_deg=0.0) for t in (past, ahead)]
            publisher.send([(f"{cfg.mqtt_topic_prefix}/MQTT-1/json", json.dumps(fixes).encode())])
            publisher.close()
            await until(
                lambda: bool(sql(clean_db, "SELECT 1 FROM positions WHERE device_id = 'MQTT-1'")),
                timeout_s=20,
                what="the MQTT fix",
            )

    asyncio.run(asyncio.wait_for(main(), 90))
    assert sql(clean_db, "SELECT device_id, fix_time FROM positions ORDER BY 1") == [
        (d, past) for d in (TCP_IMEI, UDP_IMEI, "MQTT-1", "PHONE-1")
    ]
    letters = sql(clean_db, "SELECT device_id, transport, reason FROM dead_letters ORDER BY 1")
    assert letters == [
        (TCP_IMEI, "tcp", "future_fix"),
        (UDP_IMEI, "udp", "future_fix"),
        ("MQTT-1", "mqtt", "future_fix"),
        ("PHONE-1", "http", "future_fix"),
    ]
    assert counters.get("rejects", protocol="teltonika", code="future_fix") == 2
    assert counters.get("rejects", protocol="osmand", code="future_fix") == 1
    assert counters.get("rejects", protocol="menara-json", code="future_fix") == 1


def test_the_first_admitted_protocol_holds_until_the_writer_binds_it() -> None:
    """Two protocols racing for an unbound (or unknown, under ``register``) device: the
    first admitted batch's protocol is held as a claim, the other refused; a reload that
    still shows no protocol keeps the claim, one that shows a protocol replaces it."""
    registry = DeviceRegistry(policy="register", known={"open": None, "set": "gt06"})
    assert registry.admit("set", "gt06") is Admission.KNOWN
    assert registry.admit("set", "osmand") is Admission.WRONG_PROTOCOL
    assert registry.admit("open", "osmand") is Admission.BIND
    assert registry.admit("new", "osmand") is Admission.REGISTER
    registry.claim("open", "teltonika")
    registry.claim("new", "teltonika")
    registry.claim("new", "osmand")  # too late: the first claim stands
    for device in ("open", "new"):
        assert registry.admit(device, "osmand") is Admission.WRONG_PROTOCOL
    assert registry.admit("open", "teltonika") is Admission.BIND  # until the writer says
    registry.replace({"open": None, "new": "osmand"}, [])
    assert registry.admit("open", "osmand") is Admission.WRONG_PROTOCOL
    assert registry.admit("new", "osmand") is Admission.KNOWN  # the database decides
    registry.mark_registered("open", "teltonika")
    assert registry.admit("open", "teltonika") is Admission.KNOWN
