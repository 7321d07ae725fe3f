"""MQTT ingest throughput against a plain paho subscriber, measured in one run.

    .venv/bin/python bench/bench_mqtt.py [--messages 200000] [--devices 200] [--publishers 2]

Starts a private Mosquitto from ``deploy/mosquitto.conf`` (the project's queue limits) and
a throwaway database (dropped at the end). For each consumer, its persistent session is
created first, then ``--messages`` unique NMEA fixes are published at QoS 1 by several
publisher processes while it is away, so the broker holds the whole backlog; then the
consumer connects and the drain is timed. The consumer alone sets the pace, and both see
exactly the same broker work:

(a) a plain paho subscriber: QoS 1, automatic PUBACK, counts messages and nothing else,
    on MQTT 5 and (a') on MQTT 3.1.1, each drained once like (b);
(b) ``MqttIngest`` + ``Writer`` end to end: decoded, committed to PostgreSQL, then acked;
    timed until the last row is committed.

Loss is counted (unique fixes published vs rows stored); the figure of merit is (b) over
the faster of (a) and (a'), with a goal of 1.0×.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from decoders import PROTOCOLS, Session
from ingest.counters import Counters
from ingest.devices import DeviceRegistry
from ingest.mqtt import MqttIngest
from ingest.writer import Writer
from menara import db, service
from menara.local_broker import LocalBroker
from menara.settings import Settings
from simulators.nmea_out import rmc

HOST = "127.0.0.1"
T0 = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)


def payloads(devices: int, per_device: int) -> list[tuple[str, bytes]]:
    """(device, RMC) pairs, fix time advancing one second per round over all devices."""
    out = []
    for i in range(per_device):
        t = T0 + timedelta(seconds=i)
        for d in range(devices):
            out.append((f"bench{d:04d}", rmc(t, -6.2 + d * 0.001, 106.8 + i * 1e-5, 36.0, 90.0)))
    return out


def publish(port: int, prefix: str, part: list[tuple[str, bytes]]) -> None:
    """One publisher process: QoS 1, returns when the broker has acknowledged everything."""
    acked = 0
    done = threading.Event()

    def on_publish(_c: mqtt.Client, _u: object, _mid: int, _rc: object, _p: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(part):
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect(HOST, port)
    client.loop_start()
    for n, (device, payload) in enumerate(part):
        # paho's packet ids are 16 bits: never have 65535 messages outstanding.
        while n - acked > 20_000:
            time.sleep(0.001)
        client.publish(f"{prefix}/{device}/nmea", payload, qos=1)
    if not done.wait(timeout=600):
        raise SystemExit(f"publisher: only {acked} of {len(part)} acknowledged")
    client.disconnect()
    client.loop_stop()


def publish_backlog(port: int, prefix: str, msgs: list[tuple[str, bytes]], procs: int) -> float:
    """Publish ``msgs`` from ``procs`` processes; returns messages/s."""
    ctx = mp.get_context("spawn")  # fork is unsafe here: the caller has threads
    workers = [
        ctx.Process(target=publish, args=(port, prefix, msgs[i::procs])) for i in range(procs)
    ]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
        if w.exitcode != 0:
            raise SystemExit("a publisher failed")
    return len(msgs) / (time.perf_counter() - t0)


def plain_subscriber(
    port: int, prefix: str, msgs: list[tuple[str, bytes]], procs: int, v5: bool = True
) -> float:
    """(a): paho with automatic PUBACKs, counting only. Returns messages/s over the drain."""
    client_id = f"bench-plain-{uuid.uuid4().hex[:8]}"
    got = 0
    last = 0.0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        nonlocal got, last
        got += 1
        if got == len(msgs):
            last = time.perf_counter()
            done.set()

    def on_connect(c: mqtt.Client, _u: object, _f: object, _rc: object, _p: object) -> None:
        c.subscribe(f"{prefix}/+/nmea", qos=1)

    def client() -> mqtt.Client:
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
        )
        c.on_message = on_message
        c.on_connect = on_connect
        c.on_subscribe = lambda *_: subscribed.set()
        if v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
            c.connect(HOST, port, clean_start=False, properties=props)
        else:
            c.connect(HOST, port)
        return c

    first = client()
    first.loop_start()
    wait(subscribed.is_set, "plain subscriber SUBACK")
    first.disconnect()
    first.loop_stop()
    publish_backlog(port, prefix, msgs, procs)
    t0 = time.perf_counter()
    second = client()
    second.loop_start()
    if not done.wait(timeout=600):
        raise SystemExit(f"plain subscriber: {got} of {len(msgs)} received")
    second.disconnect()
    second.loop_stop()
    return len(msgs) / (last - t0)


async def aiomqtt_rate(port: int, prefix: str, msgs: list[tuple[str, bytes]], procs: int) -> float:
    """aiomqtt (MQTT 5, auto-ack, count only), drained like (a); for comparison."""
    import aiomqtt  # type: ignore[import-not-found,unused-ignore]  # optional, bench only

    ident = f"bench-aiomqtt-{uuid.uuid4().hex[:8]}"

    def connect() -> aiomqtt.Client:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        v5 = aiomqtt.ProtocolVersion.V5
        return aiomqtt.Client(
            HOST, port, identifier=ident, protocol=v5, clean_start=False, properties=props
        )

    async with connect() as c:
        await c.subscribe(f"{prefix}/+/nmea", qos=1)
    await asyncio.to_thread(publish_backlog, port, prefix, msgs, procs)
    got = 0
    t0 = time.perf_counter()
    async with connect() as c:
        async for _ in c.messages:
            got += 1
            if got == len(msgs):
                break
    return len(msgs) / (time.perf_counter() - t0)


async def gmqtt_rate(port: int, prefix: str, msgs: list[tuple[str, bytes]], procs: int) -> float:
    """gmqtt (MQTT 5, auto-ack, count only), drained like (a); for comparison."""
    import gmqtt  # type: ignore[import-untyped,import-not-found,unused-ignore]  # optional

    ident = f"bench-gmqtt-{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}/+/nmea"
    done = asyncio.Event()
    subscribed = asyncio.Event()
    got = 0

    def on_message(*_: object) -> int:
        nonlocal got
        got += 1
        if got == len(msgs):
            done.set()
        return 0  # PUBACK reason: success

    async def connect() -> Any:
        c = gmqtt.Client(ident, clean_session=False, session_expiry_interval=3600)
        c.on_message = on_message
        c.on_subscribe = lambda *_: subscribed.set()
        await c.connect(HOST, port, version=gmqtt.constants.MQTTv50)
        return c

    c = await connect()
    c.subscribe(topic, qos=1)
    await subscribed.wait()
    await c.disconnect()
    await asyncio.to_thread(publish_backlog, port, prefix, msgs, procs)
    t0 = time.perf_counter()
    c = await connect()
    await asyncio.wait_for(done.wait(), 600)
    rate = len(msgs) / (time.perf_counter() - t0)
    await c.disconnect()
    return rate


async def ingest_run(
    port: int, dsn: str, prefix: str, msgs: list[tuple[str, bytes]], procs: int
) -> tuple[float, int]:
    """(b): MqttIngest + Writer. Returns (fixes committed/s over the drain, rows stored)."""
    settings = Settings().replace(
        db_dsn=dsn,
        mqtt_host=HOST,
        mqtt_port=port,
        mqtt_topic_prefix=prefix,
        mqtt_client_id=f"bench-ingest-{uuid.uuid4().hex[:8]}",
        unknown_devices="register",
    )

    def parts() -> tuple[Counters, DeviceRegistry, Writer]:
        counters = Counters()
        registry = DeviceRegistry(policy="register")
        writer = service.make_writer(settings, counters, registry)
        return counters, registry, writer

    counters, registry, writer = parts()
    async with (
        writer,
        MqttIngest(
            settings=settings, writer=writer, registry=registry, counters=counters
        ) as ingest,
    ):
        await ingest.subscribed()  # the session and its subscription now exist
    await asyncio.to_thread(publish_backlog, port, prefix, msgs, procs)
    counters, registry, writer = parts()
    t0 = time.perf_counter()
    async with (
        writer,
        MqttIngest(settings=settings, writer=writer, registry=registry, counters=counters),
    ):
        deadline = time.monotonic() + 600
        while counters.get("rows_written") < len(msgs) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - t0
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM positions").fetchone()
    assert row is not None
    acks = counters.get("mqtt_acks_sent")
    if acks != len(msgs):
        print(f"  warning: {acks} PUBACKs sent for {len(msgs)} messages")
    return counters.get("rows_written") / elapsed, int(row[0])


def wait(cond: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument(
        "--others", action="store_true", help="also aiomqtt and gmqtt (pip install them first)"
    )
    args = ap.parse_args()
    per = max(1, args.messages // args.devices)
    msgs = payloads(args.devices, per)
    PROTOCOLS["nmea"].decode_frames([msgs[0][1]], session=Session())  # load the numba kernel

    dsn = f"postgresql://postgres@127.0.0.1:5432/menara_bench_{uuid.uuid4().hex[:8]}"
    db.ensure_database(dsn)
    db.upgrade(dsn)
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        broker = LocalBroker(Path(work), port)  # deploy/mosquitto.conf, as setup runs it
        broker.start()
        try:
            print(
                f"{len(msgs)} QoS 1 NMEA messages, {args.devices} devices, "
                f"{args.publishers} publisher processes, broker backlog drained by:"
            )
            v5 = plain_subscriber(port, "plain/v1", msgs, args.publishers)
            print(f"  (a) plain paho subscriber, MQTT 5 (auto-ack, count only): {v5:9,.0f} msg/s")
            v311 = plain_subscriber(port, "plain311/v1", msgs, args.publishers, v5=False)
            print(f"  (a') the same on MQTT 3.1.1 (no v5 properties to parse): {v311:9,.0f} msg/s")
            rate, stored = asyncio.run(ingest_run(port, dsn, "ingest/v1", msgs, args.publishers))
            print(f"  (b) MqttIngest end to end (decoded, committed, acked): {rate:9,.0f} fixes/s")
            print(f"  stored {stored} of {len(msgs)} unique fixes: lost {len(msgs) - stored}")
            fastest = max(v5, v311)
            print(
                f"  ratio (b) / fastest plain paho: {rate / fastest:.2f}x (goal >= 1.0x);"
                f" (b)/(a) {rate / v5:.2f}x, (b)/(a') {rate / v311:.2f}x"
            )
            for name, run in (("aiomqtt", aiomqtt_rate), ("gmqtt", gmqtt_rate)):
                if args.others:
                    rate = asyncio.run(run(port, name, msgs, args.publishers))
                    print(f"      {name}, MQTT 5 (auto-ack, count only): {rate:9,.0f} msg/s")
        finally:
            broker.stop()
            drop_database(dsn)


def drop_database(dsn: str) -> None:
    base, _, name = dsn.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
