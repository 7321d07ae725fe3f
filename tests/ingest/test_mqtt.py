"""MQTT ingest end to end: a private Mosquitto, the real writer, real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from decoders import nmea as nmea_codec
from ingest.counters import Counters
from ingest.devices import DeviceRegistry
from ingest.errors import StorageError
from ingest.mqtt import MAX_PAYLOAD_BYTES, MAX_SESSIONS, MqttIngest, parse_topic
from ingest.writer import Writer
from menara import service
from menara.settings import Settings
from simulators.nmea_out import json_fix, rmc
from tests import polling
from tests.brokers import Broker
from tests.conftest import listeners_off

pytestmark = [pytest.mark.db, pytest.mark.mqtt]

T0 = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)


def nmea(i: int) -> bytes:
    """RMC of fix ``i``: one second and 0.0001° east per step."""
    return rmc(T0 + timedelta(seconds=i), -6.2, 106.8 + i * 0.0001, 36.0, 90.0)


def jfix(i: int) -> dict[str, object]:
    t = T0 + timedelta(seconds=i)
    return json_fix(t, -6.2, 106.8 + i * 0.0001, speed_kmh=36.0, course_deg=90.0)


until = functools.partial(polling.until, timeout_s=20.0)  # broker round trips: allow more


class Publisher:
    """A device-side paho client; ``send`` waits for the broker's PUBACKs."""

    def __init__(self, broker: Broker) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, messages: Iterable[tuple[str, bytes]], qos: int = 1) -> int:
        infos = [self.client.publish(t, p, qos=qos) for t, p in messages]
        for info in infos:
            info.wait_for_publish(timeout=10)
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Rig:
    prefix: str
    counters: Counters
    ingest: MqttIngest
    writer: Writer
    dsn: str

    def rows(self, sql: str = "SELECT count(*) FROM positions") -> int:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])

    def rejects(self, code: str) -> int:
        return self.counters.get("rejects", code=code)


def mqtt_settings(broker: Broker, prefix: str, *, qos: int = 1, group: str = "") -> Settings:
    return Settings().replace(
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        mqtt_topic_prefix=prefix,
        mqtt_client_id=f"ingest-{uuid.uuid4().hex[:8]}",
        mqtt_qos=qos,
        mqtt_shared_group=group,
    )


@contextlib.asynccontextmanager
async def rig(
    broker: Broker,
    dsn: str,
    *,
    qos: int = 1,
    group: str = "",
    prefix: str = "",
    max_pending: int = 100_000,
    keepalive_s: int = 30,
    policy: str = "register",
    known: Iterable[str] = (),
    max_sessions: int = MAX_SESSIONS,
) -> AsyncIterator[Rig]:
    prefix = prefix or f"t{uuid.uuid4().hex[:8]}/v1"
    settings = mqtt_settings(broker, prefix, qos=qos, group=group)
    counters = Counters()
    registry = DeviceRegistry(policy=policy, known=known)
    async with Writer(
        dsn,
        counters=counters,
        batch_rows=500,
        batch_delay_ms=5,
        max_pending=max_pending,
        on_registered=registry.mark_registered,
    ) as writer:
        ingest = MqttIngest(
            settings=settings,
            writer=writer,
            registry=registry,
            counters=counters,
            keepalive_s=keepalive_s,
            max_sessions=max_sessions,
        )
        async with ingest:
            await ingest.subscribed()
            yield Rig(prefix, counters, ingest, writer, dsn)


def test_parse_topic() -> None:
    assert parse_topic("menara/v1/ab12/nmea", "menara/v1") == ("ab12", "nmea")
    assert parse_topic("menara/v1/ab12/json", "menara/v1") == ("ab12", "menara-json")
    assert parse_topic(f"menara/v1/{'d' * 64}/nmea", "menara/v1") == ("d" * 64, "nmea")
    for bad in (
        "menara/v1//nmea",
        f"menara/v1/{'d' * 65}/nmea",  # device ids are at most 64 characters
        "menara/v1/caf\u00e9/nmea",  # printable ASCII only
        "menara/v1/tab\there/nmea",
        "menara/v1/ ab12/nmea",
        "menara/v1/ab12/xml",
        "menara/v1/a/b/nmea",
        "x/menara/v1/a/nmea",
    ):
        assert parse_topic(bad, "menara/v1") is None


@pytest.mark.parametrize("qos", [0, 1])
def test_fixes_over_nmea_and_json_stored_exactly_once(
    project_broker: Broker, clean_db: str, qos: int
) -> None:
    async def main() -> None:
        async with rig(project_broker, clean_db, qos=qos) as r:
            pub = Publisher(project_broker)
            try:
                msgs = [(f"{r.prefix}/dev{d}/nmea", nmea(i)) for d in range(3) for i in range(300)]
                msgs += [
                    (f"{r.prefix}/dev9/json", json.dumps(jfix(i)).encode()) for i in range(100)
                ]
                # An array of 50 fixes is one message, 50 rows.
                array = [jfix(i) for i in range(100, 150)]
                msgs.append((f"{r.prefix}/dev9/json", json.dumps(array).encode()))
                # Several sentences in one message; each fix is new.
                msgs.append((f"{r.prefix}/dev8/nmea", b"".join(nmea(i) for i in range(10))))
                sent = pub.send(msgs, qos=1)
                # The same fixes again (a device resending after a lost PUBACK): stored once.
                pub.send(msgs[:100], qos=1)
            finally:
                pub.close()
            expected = 3 * 300 + 150 + 10
            await until(
                lambda: r.rows() == expected and r.counters.get("mqtt_messages_in") == sent + 100
            )
            await r.ingest.stop_reading()
            await until(lambda: r.counters.get("mqtt_acks_sent") == (sent + 100 if qos else 0))
            assert r.counters.get("mqtt_messages_in", qos=str(qos)) == sent + 100
            assert r.rows() == expected
            assert r.rows("SELECT count(*) FROM dead_letters") == 0

    asyncio.run(main())


def test_bad_input_is_dead_lettered_and_acked(project_broker: Broker, clean_db: str) -> None:
    async def main() -> None:
        async with rig(project_broker, clean_db) as r:
            p = r.prefix
            bad = [
                (f"{p}//nmea", nmea(0)),  # empty device id
                (f"{p}/bad1/nmea", nmea(1)[:25]),  # truncated sentence
                (f"{p}/bad2/nmea", b"$GPRMC," + b"9" * (MAX_PAYLOAD_BYTES + 1)),  # too large
                (f"{p}/bad3/nmea", bytes(range(256))),  # binary garbage
                (f"{p}/bad4/json", b'{"fix_time": "2026-01-05T08:00:00Z", "lat": '),  # bad JSON
                (f"{p}/bad5/json", b""),  # empty payload
            ]
            good = [(f"{p}/good/nmea", nmea(i)) for i in range(200)]
            pub = Publisher(project_broker)
            try:
                # Bad messages among the good ones, so they share chunks.
                sent = pub.send(good[:100] + bad + good[100:])
            finally:
                pub.close()
            await until(lambda: r.counters.get("mqtt_acks_sent") >= sent)
            assert r.rows() == 200
            assert r.rejects("bad_topic") == 1
            assert r.rejects("payload_too_large") == 1
            assert r.rejects("bad_utf8") == 1
            assert r.rejects("empty_payload") == 1
            assert r.rejects("bad_json") == 1
            with psycopg.connect(clean_db) as conn:
                letters = conn.execute(
                    "SELECT reason, peer, raw FROM dead_letters ORDER BY id"
                ).fetchall()
            assert sorted(bytes(raw) for _, _, raw in letters) == sorted(p for _, p in bad)
            reason = {peer: why for why, peer, _ in letters}
            assert reason[f"{p}/bad1/nmea"] in nmea_codec.REJECT_CODES.values()  # the decoder's
            assert reason[f"{p}/bad4/json"] == "bad_json"
            assert r.counters.get("mqtt_acks_sent") == sent

    asyncio.run(main())


def test_puback_only_after_commit(project_broker: Broker, clean_db: str) -> None:
    """While the table is locked nothing commits, so nothing may be acknowledged."""

    async def main() -> None:
        async with rig(project_broker, clean_db) as r:
            lock = await psycopg.AsyncConnection.connect(clean_db)
            await lock.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
            pub = Publisher(project_broker)
            try:
                sent = pub.send((f"{r.prefix}/lock/nmea", nmea(i)) for i in range(50))
                await until(lambda: r.counters.get("mqtt_messages_in") == sent)
                await asyncio.sleep(0.3)  # a writer batch delay many times over
                assert r.counters.get("mqtt_acks_sent") == 0
                await lock.rollback()
                await until(lambda: r.counters.get("mqtt_acks_sent") == sent)
                assert r.rows() == sent
            finally:
                pub.close()
                await lock.close()

    asyncio.run(main())


def test_broker_restart_reconnects_and_keeps_the_session(own_broker: Broker, clean_db: str) -> None:
    async def main() -> None:
        async with rig(own_broker, clean_db) as r:
            pub = Publisher(own_broker)
            pub.send((f"{r.prefix}/rs/nmea", nmea(i)) for i in range(100))
            pub.close()
            await until(lambda: r.rows() == 100)
            own_broker.stop()
            own_broker.start()
            await until(lambda: r.counters.get("mqtt_reconnects") >= 1)
            pub = Publisher(own_broker)
            pub.send((f"{r.prefix}/rs/nmea", nmea(i)) for i in range(100, 200))
            pub.close()
            await until(lambda: r.rows() == 200)

    asyncio.run(main())


def test_shared_subscription_splits_the_stream(project_broker: Broker, clean_db: str) -> None:
    """Two workers in one $share group: every fix stored once, both did some of the work."""

    async def main() -> None:
        prefix = f"sh{uuid.uuid4().hex[:8]}/v1"
        async with (
            rig(project_broker, clean_db, group="g1", prefix=prefix) as a,
            rig(project_broker, clean_db, group="g1", prefix=prefix) as b,
        ):
            pub = Publisher(project_broker)
            try:
                sent = pub.send((f"{a.prefix}/sh{i % 7}/nmea", nmea(i)) for i in range(700))
            finally:
                pub.close()

            def received() -> int:
                return a.counters.get("mqtt_messages_in") + b.counters.get("mqtt_messages_in")

            await until(lambda: received() == sent and a.rows() == sent)
            assert a.counters.get("mqtt_messages_in") > 0
            assert b.counters.get("mqtt_messages_in") > 0

    asyncio.run(main())


def test_keepalive_while_the_writer_is_full(project_broker: Broker, clean_db: str) -> None:
    """The database blocks the full writer for 3.5 keepalives: the connection stays up.

    Without PINGREQs Mosquitto drops us after 1.5 keepalives (2.0.11: after about 3 with
    2 s), and paho drops the connection itself when a PINGRESP is not read within one
    keepalive; either shows as a reconnect and the broker resending what was unacked.
    """
    keepalive_s = 2
    devices, fixes = 20, 10

    async def main() -> None:
        async with rig(project_broker, clean_db, max_pending=1, keepalive_s=keepalive_s) as r:
            lock = await psycopg.AsyncConnection.connect(clean_db)
            await lock.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
            pub = Publisher(project_broker)
            try:
                # One fix fills the writer (max_pending=1), and nothing commits.
                sent = pub.send([(f"{r.prefix}/ka0/nmea", nmea(0))])
                await until(lambda: r.writer.pending_rows == 1)
                sent += pub.send(
                    (f"{r.prefix}/ka{d}/nmea", nmea(i))
                    for d in range(devices)
                    for i in range(1, fixes + 1)
                )
                # A chunk of these is decoded: the network thread waits to put it.
                await until(lambda: r.counters.get("mqtt_messages_in") > 1)
                await asyncio.sleep(3.5 * keepalive_s)  # the deliberate lock hold
                assert r.counters.get("mqtt_acks_sent") == 0
                await lock.rollback()
                # One more fix after the unlock: its PUBACK can only go out on a connection
                # that is up, so a drop during the hold has been noticed and counted by then
                # (the held PUBACKs alone may still be written into a dead socket).
                sent += pub.send([(f"{r.prefix}/ka0/nmea", nmea(fixes + 1))])
                await until(lambda: r.counters.get("mqtt_acks_sent") >= sent == r.rows())
                assert r.counters.get("mqtt_reconnects") == 0
                assert r.counters.get("mqtt_messages_in") == sent  # nothing redelivered
                assert r.counters.get("mqtt_acks_sent") == sent
                assert r.rows() == sent == devices * fixes + 2
            finally:
                pub.close()
                await lock.close()

    asyncio.run(main())


def test_wait_raises_when_the_writer_has_failed(project_broker: Broker, clean_db: str) -> None:
    async def main() -> None:
        prefix = f"t{uuid.uuid4().hex[:8]}/v1"
        counters = Counters()
        registry = DeviceRegistry(policy="register")
        async with Writer(clean_db, counters=counters) as writer:
            pass  # a writer that has stopped: put raises StorageError
        ingest = MqttIngest(
            settings=mqtt_settings(project_broker, prefix),
            writer=writer,
            registry=registry,
            counters=counters,
        )
        async with ingest:
            await ingest.subscribed()
            pub = Publisher(project_broker)
            try:
                pub.send([(f"{prefix}/dead/nmea", nmea(0))])
            finally:
                pub.close()
            with pytest.raises(StorageError):
                async with asyncio.timeout(20):
                    await ingest.wait()
        assert counters.get("mqtt_acks_sent") == 0

    asyncio.run(main())


def test_serve_exits_non_zero_when_mqtt_intake_dies(
    project_broker: Broker,
    clean_db: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug on the network thread stops ``menara serve`` with exit code 1 and a log line."""

    def bug(self: MqttIngest, inbox: object) -> list[object]:
        raise RuntimeError("bug in MQTT ingest")

    monkeypatch.setattr(MqttIngest, "_batches", bug)
    prefix = f"t{uuid.uuid4().hex[:8]}/v1"
    topic = f"{prefix}/retained/nmea"
    pub = Publisher(project_broker)
    try:  # retained, so the service gets it on subscribing: no need to know when that is
        pub.client.publish(topic, nmea(0), qos=1, retain=True).wait_for_publish(timeout=10)
        settings = mqtt_settings(project_broker, prefix).replace(
            **listeners_off(), db_dsn=clean_db, metrics_port=0
        )
        assert service.run_blocking(settings, Counters()) == 1
    finally:
        pub.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(timeout=10)
        pub.close()
    assert "mqtt intake stopped (RuntimeError('bug in MQTT ingest'))" in caplog.text


def test_refused_devices_get_no_decoder_session(project_broker: Broker, clean_db: str) -> None:
    """Random device ids under unknown_devices=reject: dead letters, no session kept."""
    strangers = 300

    async def main() -> None:
        async with rig(project_broker, clean_db, policy="reject", known=["KNOWN"]) as r:
            pub = Publisher(project_broker)
            try:
                sent = pub.send(
                    (f"{r.prefix}/{uuid.uuid4()}/nmea", nmea(i)) for i in range(strangers)
                )
                sent += pub.send((f"{r.prefix}/KNOWN/nmea", nmea(i)) for i in range(10))
            finally:
                pub.close()
            await until(lambda: r.counters.get("mqtt_acks_sent") == sent)
            assert r.rejects("unknown_device") == strangers
            assert r.rows() == 10
            assert r.ingest.decoder_sessions == 1  # KNOWN's

    asyncio.run(main())


def test_decoder_sessions_are_capped(project_broker: Broker, clean_db: str) -> None:
    """Registered devices beyond ``max_sessions``: the least recently used are forgotten."""

    async def main() -> None:
        async with rig(project_broker, clean_db, max_sessions=3) as r:
            pub = Publisher(project_broker)
            try:
                sent = pub.send((f"{r.prefix}/cap{d}/nmea", nmea(d)) for d in range(10))
            finally:
                pub.close()
            await until(lambda: r.counters.get("mqtt_acks_sent") == sent)
            assert r.rows() == 10
            assert r.ingest.decoder_sessions == 3

    asyncio.run(main())


def test_oversized_device_id_in_topic_is_dead_lettered(
    project_broker: Broker, clean_db: str
) -> None:
    """A 6,000-character device id is refused before it reaches the writer; others go on."""
    huge = "x" * 6000

    async def main() -> None:
        async with rig(project_broker, clean_db) as r:
            pub = Publisher(project_broker)
            try:
                good = [(f"{r.prefix}/good/json", json.dumps(jfix(i)).encode()) for i in range(50)]
                bad = (f"{r.prefix}/{huge}/json", json.dumps(jfix(0)).encode())
                sent = pub.send([*good[:25], bad, *good[25:]])
                sent += pub.send(  # and the writer still takes more afterwards
                    (f"{r.prefix}/good/json", json.dumps(jfix(i)).encode()) for i in range(50, 60)
                )
            finally:
                pub.close()
            await until(lambda: r.counters.get("mqtt_acks_sent") == sent)
            assert r.rejects("bad_topic") == 1
            assert r.rows() == 60
            assert r.rows("SELECT count(*) FROM devices") == 1  # good only
            assert r.ingest.decoder_sessions == 1
            with psycopg.connect(clean_db) as conn:
                letters = conn.execute(
                    "SELECT reason, device_id, peer FROM dead_letters"
                ).fetchall()
            assert letters == [("bad_topic", None, bad[0])]

    asyncio.run(main())
