"""The network thread's own PUBLISH parser against paho's, on the same bytes.

``BufferedClient.read_publishes`` (``ingest._mqtt_wire``) takes whole PUBLISH packets
out of the read buffer instead of paho; whatever else arrives still goes through paho,
and a packet a read cut in two through either. The bytes come over a real socket pair,
cut at many places; the messages must be exactly those paho alone delivers, in order.
No broker or database.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest._mqtt_client import Connect, NetworkThread
from ingest._mqtt_wire import Received
from ingest.counters import Counters
from ingest.model import Batch


class _NoSink:
    """The writer ``NetworkThread`` wants; these tests only read."""

    async def put(self, batch: Batch) -> None:
        raise AssertionError("nothing is put here")

    async def drain(self) -> None:
        return None


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = n >> 7, n & 0x7F
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: bytes, payload: bytes, *, qos: int, mid: int, props: bytes | None) -> bytes:
    """A PUBLISH packet as a broker sends it; ``props`` None for MQTT 3.1.1."""
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if props is not None:
        body += props
    body += payload
    return bytes([0x30 | qos << 1]) + _varint(len(body)) + body


def _v5_props() -> bytes:
    p = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    p.UserProperty = ("fleet", "north")
    p.ContentType = "text/plain"
    p.PayloadFormatIndicator = 1
    return bytes(p.pack())  # type: ignore[no-untyped-call]


PINGRESP = b"\xd0\x00"
EMPTY_PROPS = b"\x00"


def stream(v5: bool) -> tuple[bytes, list[Received]]:
    """Packets of every shape ingest can be sent, and the messages they carry."""
    props = EMPTY_PROPS if v5 else None
    rich = _v5_props() if v5 else None
    msgs: list[tuple[bytes, bytes, int, int, bytes | None]] = [
        (b"menara/v1/d1/nmea", b"$GPRMC,1*00", 1, 1, props),
        (b"menara/v1/d2/nmea", b"$GPRMC,2*00", 0, 0, props),
        (b"menara/v1/d3/json", b'{"lat":1}', 1, 65535, rich),
        (b"menara/v1/d4/nmea", b"", 1, 7, props),  # empty payload
        (b"menara/v1/\xff\xfe/nmea", b"x", 1, 8, props),  # topic not UTF-8
        (b"menara/v1/d5/nmea", bytes(range(256)) * 40, 1, 9, props),  # 10 KB: 2-byte length
        (b"menara/v1/d6/nmea", b"y" * 130, 0, 0, rich),
    ]
    wire = bytearray()
    want: list[Received] = []
    for n, (topic, payload, qos, mid, p) in enumerate(msgs):
        wire += publish(topic, payload, qos=qos, mid=mid, props=p)
        if n == 2:
            wire += PINGRESP  # paho's to handle, between two PUBLISHes
        name = topic.decode() if topic.isascii() else ""
        want.append((name, payload, mid if qos else 0, qos))
    return bytes(wire) * 3, want * 3


def _no_batches(_: list[Received]) -> list[Batch]:
    raise AssertionError("nothing is flushed here")


@pytest.fixture
def wired() -> Iterator[tuple[NetworkThread, socket.socket]]:
    with wired_thread() as pair:
        yield pair


@contextlib.contextmanager
def wired_thread() -> Iterator[tuple[NetworkThread, socket.socket]]:
    """A network thread whose client reads from a socket pair; the broker's end."""
    connect = Connect("127.0.0.1", 1, "wire-test", "", "", ("menara/v1/+/nmea",), 1, 100, 60)
    net = NetworkThread(connect, writer=_NoSink(), counters=Counters(), to_batches=_no_batches)
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    net._client._sock = ours
    try:
        yield net, broker
    finally:
        net._client._sock = None
        ours.close()
        broker.close()
        asyncio.run(net.close())


def feed(
    net: NetworkThread, broker: socket.socket, wire: bytes, cuts: list[int], limit: int = 10**6
) -> list[Received]:
    """Send ``wire`` in pieces ending at ``cuts``, reading all after each; what was read."""
    start = 0
    for end in [*cuts, len(wire)]:
        if end > start:
            broker.sendall(wire[start:end])
            start = end
        for _ in range(100_000):  # until a round changes nothing
            c = net._client
            before = (len(net._inbox), c._rbuf, c._rpos, c._in_packet["to_process"])
            net._read_burst(limit)
            if (len(net._inbox), c._rbuf, c._rpos, c._in_packet["to_process"]) == before:
                break
    assert not net._client.buffered()
    inbox, net._inbox = net._inbox, []
    return inbox


def cut_plans(size: int) -> list[list[int]]:
    """Where reads end: nowhere, after every byte, every 7, at random."""
    rng = random.Random(5)
    return [
        [],
        list(range(1, size)),
        list(range(7, size, 7)),
        sorted(rng.sample(range(1, size), 40)),
    ]


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_mqtt_fast_parser_delivers_what_paho_delivers(
    wired: tuple[NetworkThread, socket.socket], v5: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    net, broker = wired
    if not v5:
        net._client._protocol = mqtt.MQTTv311
    wire, want = stream(v5)
    for cuts in cut_plans(len(wire)):
        assert feed(net, broker, wire, cuts) == want
    parsed = 0
    real = net._client.read_publishes

    def counted(out: list[Received], limit: int) -> int:
        nonlocal parsed
        n = real(out, limit)
        parsed += n
        return n

    monkeypatch.setattr(net._client, "read_publishes", counted)
    assert feed(net, broker, wire, []) == want
    assert parsed == len(want)  # all in one read: paho parsed none of them
    monkeypatch.setattr(net._client, "read_publishes", lambda out, limit: 0)
    for cuts in cut_plans(len(wire))[::2]:
        assert feed(net, broker, wire, cuts) == want  # paho alone: the reference


def test_mqtt_fast_parser_stops_at_the_inbox_limit(
    wired: tuple[NetworkThread, socket.socket],
) -> None:
    net, broker = wired
    wire, want = stream(v5=True)
    broker.sendall(wire)
    got: list[Received] = []
    while len(got) < len(want):
        net._read_burst(4)
        assert 0 < len(net._inbox) <= 4
        got += net._inbox
        net._inbox = []
    assert got == want


def test_mqtt_fast_parser_leaves_qos2_and_malformed_packets_to_paho(
    wired: tuple[NetworkThread, socket.socket],
) -> None:
    net, broker = wired
    client = net._client
    qos2 = publish(b"a/b", b"x", qos=2, mid=3, props=EMPTY_PROPS)
    no_mid = bytes([0x32, 5]) + struct.pack("!H", 3) + b"a/b"  # QoS 1, packet id missing
    no_props = publish(b"a/b", b"", qos=1, mid=4, props=None)  # v5 without property length
    too_long = b"\x32\xff\xff\xff\xff\x01"  # remaining length of five bytes
    for packet in (qos2, no_mid, no_props, too_long, PINGRESP):
        broker.sendall(packet)
        assert client.read_publishes(net._inbox, 10) == 0
        assert client._rbuf[client._rpos :] == packet and not net._inbox  # all for paho
        client.drop_buffer()


def test_mqtt_pubacks_go_out_in_one_write_as_paho_would_send_them(
    wired: tuple[NetworkThread, socket.socket],
) -> None:
    net, broker = wired
    mids = [1, 2, 300, 65535]
    for mid in mids:
        net._client.ack(mid, 1)
    one_by_one = broker.recv(1024)
    net._client.ack_all(mids)
    assert (
        broker.recv(1024)
        == one_by_one
        == b"".join(b"\x40\x02" + struct.pack("!H", m) for m in mids)
    )


_packets = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=30).map(str.encode),  # topic, UTF-8
        st.binary(max_size=300),  # payload
        st.sampled_from([0, 1]),
        st.integers(1, 65535),
    ),
    max_size=12,
)


@hyp_settings(max_examples=150, deadline=None)
@given(st.booleans(), _packets, st.lists(st.integers(1, 5000), max_size=6), st.binary(max_size=64))
def test_mqtt_fast_parser_takes_any_stream_apart_and_never_raises(
    v5: bool, packets: list[tuple[bytes, bytes, int, int]], cuts: list[int], junk: bytes
) -> None:
    """Random well-formed packets, cut anywhere, come out whole and in order; whatever
    bytes follow them are more packets or left for paho, never an error."""
    wire, want = bytearray(), []
    for topic, payload, qos, mid in packets:
        wire += publish(topic, payload, qos=qos, mid=mid, props=EMPTY_PROPS if v5 else None)
        want.append((topic.decode(), payload, mid if qos else 0, qos))
    with wired_thread() as (net, broker):
        client = net._client
        if not v5:
            client._protocol = mqtt.MQTTv311
        start = 0
        for end in sorted({c % (len(wire) + 1) for c in cuts} | {len(wire)}):
            broker.sendall(bytes(wire[start:end]))
            start = end
            while client.read_publishes(net._inbox, 10**6):
                pass
        assert net._inbox == want and not client.buffered()
        broker.sendall(junk)
        while client.read_publishes(net._inbox, 10**6):
            pass  # no exception; it stops at the first byte that is not its to take
        assert len(net._inbox) >= len(want) and 0 <= client._rpos <= len(client._rbuf)
