"""Rounds from ingest to the rule host: the wire format, the topic check, the hold that
puts a vehicle's fixes from several ingest processes back in time order, and the
publisher across a broker restart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from decoders.model import FixArray, empty_fixes
from ingest.counters import Counters
from ingest.model import Batch
from menara import rules_cmd
from menara.rules_cmd import Reorder, to_batches
from menara.rules_feed import (
    MAX_MESSAGE_BYTES,
    RoundBatch,
    RoundError,
    RoundPublisher,
    check_topic,
    decode,
    encode,
)
from menara.settings import Settings, load
from tests.brokers import Broker
from tests.polling import until, wait_for
from tower.worker import FixBatch


def fixes(*times_s: int) -> FixArray:
    f = empty_fixes(len(times_s))
    f["fix_time_us"] = [t * 1_000_000 for t in times_s]
    f["lat"], f["lon"] = -6.2, 106.8
    return f


def test_a_round_comes_back_whole_in_messages_the_broker_takes() -> None:
    small = [RoundBatch("A", fixes(1, 2), 10), RoundBatch("B-ü", fixes(3), 11)]
    big = RoundBatch("C", fixes(*range(10_000)), 12)  # ~520 kB: more than one message
    messages = encode([*small, big])
    assert len(messages) >= 3
    assert all(len(m) <= MAX_MESSAGE_BYTES + 4096 < 256 * 1024 for m in messages)
    back = [b for m in messages for b in decode(m)]
    assert [(b.device_id, b.received_us) for b in back[:2]] == [("A", 10), ("B-ü", 11)]
    assert back[0].fixes.tobytes() == small[0].fixes.tobytes()
    rest = np.concatenate([b.fixes for b in back[2:]])
    assert {b.device_id for b in back[2:]} == {"C"}
    assert rest.tobytes() == big.fixes.tobytes()


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "unreadable"),
        (b"XXXX\x00\x00\x00\x00", "not a Menara round"),
        (encode([RoundBatch("A", fixes(1), 1)])[0][:-1], "does not match"),
        (encode([RoundBatch("A", fixes(1), 1)])[0].replace(b"<i8", b"<i4", 1), "another fix"),
    ],
)
def test_what_is_not_a_round_is_refused(payload: bytes, why: str) -> None:
    with pytest.raises(RoundError, match=why):
        decode(payload)


@pytest.mark.parametrize(
    ("topic", "ok"),
    [
        ("menara/tower/v1/rounds", True),
        ("menara/v1/rounds/json", False),  # the device subscription menara/v1/+/json
        ("menara/tower/#", False),
        ("", False),
    ],
)
def test_the_rules_topic_is_outside_the_device_topics(topic: str, ok: bool) -> None:
    settings = load(environ={}, overrides={"rules_topic": topic})
    if ok:
        check_topic(settings)
    else:
        with pytest.raises(ValueError, match="rules_topic"):
            check_topic(settings)


def test_a_vehicle_split_over_two_rounds_is_evaluated_in_time_order() -> None:
    """Ingest A commits fixes 2 and 4, ingest B 1, 3 and 5 a moment later: when A's
    hold ends, B's 1 and 3 go with it (older than A's newest), B's 5 when B's ends."""
    fed: list[list[tuple[str, list[int]]]] = []
    acked: list[str] = []
    now = [0.0]

    async def feed(batches: Sequence[FixBatch]) -> None:
        fed.append([(b.device_id, (b.fixes["fix_time_us"] // 10**6).tolist()) for b in batches])

    async def put(r: Reorder, name: str, times: tuple[int, ...]) -> None:
        await r.put(Batch("V1", "rules", "round", fixes(*times)))
        await r.put(Batch("W1", "rules", "round", fixes(100)))
        await r.put(Batch("", "rules", "round", on_commit=lambda: acked.append(name)))

    async def go() -> None:
        async with Reorder(feed, hold_s=0.05, counters=Counters(), clock=lambda: now[0]) as r:
            await put(r, "A", (2, 4))
            now[0] = 0.01
            await put(r, "B", (1, 3, 5))
            now[0] = 0.055  # A's hold is over, B's is not
            await until(lambda: len(fed) == 1, 5, "A released")
            assert acked == ["A"]
            assert r.held_fixes == 1
            now[0] = 0.07
            await until(lambda: len(fed) == 2, 5, "B released")
            assert r.held_fixes == 0

    asyncio.run(go())
    assert fed == [
        [("V1", [2, 4]), ("W1", [100]), ("V1", [1, 3]), ("W1", [100])],
        [("V1", [5])],
    ]
    assert acked == ["A", "B"]


def test_messages_become_batches_each_ending_with_its_ack() -> None:
    counters = Counters()
    acks: list[list[int]] = []

    def ack(mids: list[int]) -> Callable[[], None]:
        acks.append(mids)
        return lambda: None

    good = encode([RoundBatch("A", fixes(1, 2), 5)])[0]
    out = to_batches([("t", good, 7, 1), ("t", b"junk", 8, 1)], ack, counters)
    assert [(b.device_id, len(b.fixes), b.on_commit is not None) for b in out] == [
        ("A", 2, False),
        ("", 0, True),
        ("", 0, True),
    ]
    assert acks == [[7], [8]]
    assert counters.get("rules_messages_refused") == 1


class Subscriber:
    """A persistent-session reader of one topic on the private broker."""

    def __init__(self, broker: Broker, topic: str) -> None:
        self.got: list[bytes] = []
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sub-{uuid.uuid4().hex[:8]}",
            clean_session=False,
        )
        self._client.on_message = lambda _c, _u, m: self.got.append(bytes(m.payload))
        self._client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(topic, qos=1)
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def publisher_settings(broker: Broker, topic: str) -> Settings:
    return load(
        environ={},
        overrides={
            "mqtt_host": broker.host,
            "mqtt_port": broker.port,
            "mqtt_client_id": f"pub-{uuid.uuid4().hex[:8]}",
            "rules_topic": topic,
        },
    )


@pytest.mark.mqtt
def test_a_round_published_while_the_broker_is_away_arrives_after(own_broker: Broker) -> None:
    topic = f"t-{uuid.uuid4().hex[:8]}/rounds"
    sub = Subscriber(own_broker, topic)
    counters = Counters()
    round_ = [RoundBatch("A", fixes(1, 2), 5), RoundBatch("B", fixes(3), 6)]

    async def go() -> None:
        async with RoundPublisher(publisher_settings(own_broker, topic), counters=counters) as pub:
            await pub(round_)
            await until(lambda: pub.in_flight == 0 and len(sub.got) == 1, 10, "round 1")
            own_broker.stop()
            await pub(round_[:1])
            assert pub.in_flight == 1
            own_broker.start()
            await until(lambda: pub.in_flight == 0, 30, "the broker's ack after its restart")

    try:
        asyncio.run(go())
        wait_for(lambda: len(sub.got) == 2, "round 2 at the subscriber", 30)
    finally:
        sub.close()
    first, second = (decode(m) for m in sub.got)
    assert [(b.device_id, b.fixes.tobytes()) for b in first] == [
        (b.device_id, b.fixes.tobytes()) for b in round_
    ]
    assert [b.device_id for b in second] == ["A"]
    assert counters.get("rules_rounds_published") == 2
    assert counters.get("rules_rounds_lost") == 0


@pytest.mark.mqtt
def test_rounds_the_broker_never_acknowledged_are_counted_lost(own_broker: Broker) -> None:
    settings = publisher_settings(own_broker, "t/rounds")
    own_broker.stop()
    counters = Counters()

    async def go() -> None:
        async with RoundPublisher(settings, counters=counters, close_wait_s=0.2) as pub:
            await pub([RoundBatch("A", fixes(1), 5)])
            await pub([RoundBatch("A", fixes(2), 5)])
            assert pub.in_flight == 2

    asyncio.run(go())
    assert counters.get("rules_rounds_lost") == 2


def test_menara_rules_refuses_a_device_topic(caplog: pytest.LogCaptureFixture) -> None:
    settings = load(environ={}, overrides={"rules_topic": "menara/v1/rounds/json"})
    assert rules_cmd.run_blocking(settings, Counters()) == 1
    assert "is a device topic under mqtt_topic_prefix 'menara/v1'" in caplog.text
