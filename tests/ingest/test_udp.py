"""The Teltonika UDP intake end to end: real datagrams, the real writer, real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from decoders import teltonika
from ingest.counters import Counters
from ingest.devices import DeviceRegistry
from ingest.errors import StorageError
from ingest.udp import UdpListener
from ingest.writer import Writer
from simulators import teltonika_out
from tests.polling import until

pytestmark = pytest.mark.db

T0 = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
IMEI = "356307042441013"
STRANGER = "356307042441099"


def datagram(i: int, *, imei: str = IMEI, n: int = 2) -> bytes:
    """``n`` records from second ``i``; packet id ``i``, AVL packet id ``i % 256``."""
    recs = [
        teltonika_out.AvlRecord(time=T0 + timedelta(seconds=i + k), lat=-6.2, lon=106.8)
        for k in range(n)
    ]
    return teltonika_out.udp_datagram(imei, recs, packet_id=i, avl_packet_id=i % 256)


def reply(i: int, n: int = 2) -> bytes:
    return b"\x00\x05" + i.to_bytes(2, "big") + b"\x01" + bytes([i % 256, n])


class Device(asyncio.DatagramProtocol):
    """A tracker's UDP socket: what the server sends lands in ``replies``."""

    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.replies.put_nowait(data)

    async def heard(self, n: int) -> list[bytes]:
        return [await asyncio.wait_for(self.replies.get(), 10) for _ in range(n)]


@dataclass
class Rig:
    dsn: str
    listener: UdpListener
    writer: Writer
    counters: Counters
    transport: asyncio.DatagramTransport
    device: Device

    def send(self, *datagrams: bytes) -> None:
        for d in datagrams:
            self.transport.sendto(d)


@contextlib.asynccontextmanager
async def rig(
    dsn: str,
    *,
    known: Iterable[str] = (IMEI,),
    max_queued: int = 100,
    max_pending: int = 10_000,
    writer: Writer | None = None,
) -> AsyncIterator[Rig]:
    counters = writer._counters if writer is not None else Counters()
    registry = DeviceRegistry(policy="reject", known=known)
    async with contextlib.AsyncExitStack() as stack:
        if writer is None:
            writer = await stack.enter_async_context(
                Writer(dsn, counters=counters, batch_delay_ms=5, max_pending=max_pending)
            )
        listener = await stack.enter_async_context(
            UdpListener(
                protocol=teltonika.NAME,
                decode=teltonika.decode_datagram,
                host="127.0.0.1",
                port=0,
                writer=writer,
                registry=registry,
                counters=counters,
                max_queued=max_queued,
            )
        )
        transport, device = await asyncio.get_running_loop().create_datagram_endpoint(
            Device, remote_addr=("127.0.0.1", listener.port)
        )
        stack.callback(transport.close)
        yield Rig(dsn, listener, writer, counters, transport, device)


def sql(dsn: str, text: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(text, args).fetchall())


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


@contextlib.asynccontextmanager
async def positions_locked(dsn: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """Nothing commits into ``positions`` until the block ends (or ``rollback()``)."""
    lock = await psycopg.AsyncConnection.connect(dsn)
    async with lock:
        await lock.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
        yield lock


def test_acks_only_after_commit_and_never_to_junk_or_strangers(clean_db: str) -> None:
    junk = [
        b"\x00\x03xyz",  # a length that is not the datagram's
        datagram(1)[:-3],  # cut: the length no longer matches
        datagram(2).replace(IMEI.encode(), b"35630704244101X"),  # not an IMEI
        (21).to_bytes(2, "big") + datagram(3)[2:23],  # the header and IMEI, no AVL data
    ]

    async def main() -> None:
        async with rig(clean_db) as r:
            async with positions_locked(clean_db) as lock:
                r.send(*junk, datagram(4, imei=STRANGER), datagram(5))
                await until(lambda: r.counters.get("frames_in") == len(junk) + 2)
                with pytest.raises(TimeoutError):  # read, but not committed: no ack yet
                    await asyncio.wait_for(r.device.replies.get(), 0.3)
                await lock.rollback()
            assert await r.device.heard(1) == [reply(5)]
            assert sql(clean_db, "SELECT count(*) FROM positions") == [(2,)]
            r.send(datagram(5))  # a resend after a lost ack: acked again, stored once
            assert await r.device.heard(1) == [reply(5)]
            await r.listener.stop_reading()
            await r.writer.drain()
            assert r.device.replies.empty()

    run(main())
    assert sql(clean_db, "SELECT count(*) FROM positions") == [(2,)]
    letters = sql(clean_db, "SELECT device_id, reason FROM dead_letters ORDER BY id")
    assert sorted(letters, key=str) == sorted(
        [(None, "bad_length")] * 3 + [(None, "bad_identity"), (STRANGER, "unknown_device")],
        key=str,
    )


def test_a_full_queue_drops_unacked_and_counts_only_what_it_keeps(clean_db: str) -> None:
    """While the writer is full, datagrams beyond ``max_queued`` are dropped before they are
    decoded: not acked, not stored, not counted as fixes in; the device resends them."""

    async def main() -> None:
        async with rig(clean_db, max_queued=1, max_pending=1) as r:
            async with positions_locked(clean_db) as lock:
                r.send(datagram(0))  # accepted by the writer, which is now full
                await until(lambda: r.writer.pending_rows == 2)
                r.send(datagram(10))  # taken by the feeder, which waits inside put()
                await until(lambda: r.counters.get("frames_in") == 2)
                await until(lambda: r.listener.open_connections == 0)
                r.send(datagram(20))  # queued
                await until(lambda: r.listener.open_connections == 1)
                r.send(datagram(30), datagram(40))  # no room
                await until(lambda: r.counters.get("udp_dropped") == 2)
                await lock.rollback()
            assert sorted(await r.device.heard(3)) == [reply(0), reply(10), reply(20)]
            assert r.counters.get("fixes_in") == 6
            assert r.counters.get("frames_in") == 3
            r.send(datagram(30))  # the device resends: now there is room
            assert await r.device.heard(1) == [reply(30)]

    run(main())
    assert sql(clean_db, "SELECT count(*) FROM positions") == [(8,)]


def test_stop_reading_then_drain_acks_everything_read_before_the_stop(clean_db: str) -> None:
    async def main() -> None:
        async with rig(clean_db) as r:
            async with positions_locked(clean_db) as lock:
                r.send(*(datagram(10 * i) for i in range(20)))
                await until(lambda: r.counters.get("frames_in") == 20)
                stopping = asyncio.create_task(r.listener.stop_reading())

                def ignoring() -> bool:  # probe with junk until the listener stops reading
                    r.send(b"junk")
                    return r.counters.get("udp_ignored_while_stopping") > 0

                await until(ignoring, what="the listener to stop reading")
                r.send(datagram(999))  # after the stop: never acked
                await until(lambda: r.counters.get("udp_ignored_while_stopping") >= 2)
                await lock.rollback()
            await stopping
            await r.writer.drain()  # what the service does next; then the listener closes
            assert sorted(await r.device.heard(20)) == sorted(reply(10 * i) for i in range(20))
            assert r.device.replies.empty()

    run(main())
    assert sql(clean_db, "SELECT count(*) FROM positions") == [(40,)]


def test_a_writer_failure_stops_the_listener_unacked(clean_db: str) -> None:
    async def main() -> None:
        counters = Counters()
        async with Writer(clean_db, counters=counters) as writer:
            pass  # a writer that has stopped: put raises StorageError
        async with rig(clean_db, writer=writer) as r:
            r.send(datagram(0))
            with pytest.raises(StorageError):
                await asyncio.wait_for(r.listener.wait(), 10)
            r.send(datagram(10))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(r.device.replies.get(), 0.3)

    run(main())
    assert sql(clean_db, "SELECT count(*) FROM positions") == [(0,)]
