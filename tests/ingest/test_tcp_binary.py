"""The TCP listener with binary protocols: frame sizes, lost framing, slow senders, reply order.

Real sockets, the real writer, real PostgreSQL; rigs and helpers from ``test_tcp``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest

from decoders import gt06, teltonika
from ingest.counters import Counters
from menara import service
from simulators import gt06_out, teltonika_out
from tests.ingest.test_service import settings_for
from tests.ingest.test_tcp import T0, Rig, close, letters, query, rig, run
from tests.polling import until
from tests.ports import free_port

pytestmark = pytest.mark.db


IMEI = "356307042441013"


def avl(i: int, n: int = 1, **io: bytes) -> bytes:
    """A Teltonika packet of ``n`` records from second ``i``; ``io`` values force 8 Extended."""
    recs = [
        teltonika_out.AvlRecord(
            time=T0 + timedelta(seconds=i + k),
            lat=-6.2,
            lon=106.8,
            io={int(key[2:]): v for key, v in io.items()},
        )
        for k in range(n)
    ]
    return teltonika_out.avl_packet(recs, codec=teltonika_out.CODEC_8E if io else 8)


async def logged_in(r: Rig) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, w = await r.connect()
    w.write(teltonika_out.login(IMEI))
    assert await asyncio.wait_for(reader.readexactly(1), 10) == teltonika.LOGIN_ACCEPT
    return reader, w


def test_teltonika_packets_over_the_line_limit_are_accepted(clean_db: str) -> None:
    """8 Extended packets up to 64 KiB are real: ``tcp_max_line_bytes`` is for text lines."""
    big = avl(0, 2, io300=bytes(range(256)) * 100)  # 2 x 25.6 KB of IO 300
    assert 50_000 < len(big) <= teltonika.MAX_FRAME

    async def main() -> None:
        async with rig(clean_db, known=[IMEI], codec=teltonika) as r:
            reader, w = await logged_in(r)
            for i in range(0, len(big), 1000):  # as TCP segments
                w.write(big[i : i + 1000])
                await w.drain()
            assert await asyncio.wait_for(reader.readexactly(4), 10) == teltonika_out.ack(2)
            assert r.counters.get("framing_lost") == 0
            await close(w)

    run(main())
    stored = query(clean_db, "SELECT attributes->>'io300' FROM positions")
    assert [len(a) for (a,) in stored] == [2 * 25_600, 2 * 25_600]  # hex
    assert letters(clean_db) == []


def test_lost_framing_keeps_and_acks_the_packets_before_it(clean_db: str) -> None:
    """Good packets in the same buffer as bytes that break framing are stored and acked
    before the hangup; only the bytes from the break on are dead-lettered."""
    good = avl(0, 2)
    junk = b"\x00\x00\x00\x07" + bytes(20)  # a preamble that is not four zero bytes

    async def main() -> None:
        async with rig(clean_db, known=[IMEI], codec=teltonika) as r:
            reader, w = await logged_in(r)
            w.write(good[:-1])  # the packet is buffered, waiting for its last byte ...
            await until(lambda: r.counters.get("bytes_in") == 17 + len(good) - 1)
            w.write(good[-1:] + junk)  # ... which comes in one read with the junk
            assert await asyncio.wait_for(reader.read(), 10) == teltonika_out.ack(2)
            assert r.counters.get("framing_lost") == 1
            await close(w)

    run(main())
    assert query(clean_db, "SELECT count(*) FROM positions") == [(2,)]
    assert [(reason, bytes(raw)) for reason, _, raw, *_ in letters(clean_db)] == [
        ("bad_preamble", junk)
    ]


def test_a_partial_frame_then_silence_is_hung_up_and_kept(clean_db: str) -> None:
    part = avl(0)[:30]

    async def main() -> None:
        async with rig(clean_db, known=[IMEI], codec=teltonika, idle_timeout_s=0.2) as r:
            reader, w = await logged_in(r)
            w.write(part)
            assert await asyncio.wait_for(reader.read(), 10) == b""
            await close(w)
            await until(lambda: r.listener.open_connections == 0)

    run(main())
    assert [(reason, dev, bytes(raw)) for reason, dev, raw, *_ in letters(clean_db)] == [
        ("truncated", IMEI, part)
    ]


def test_a_frame_trickled_slower_than_the_idle_timeout_is_hung_up(clean_db: str) -> None:
    """A sender that keeps one frame open with a byte now and then (slowloris) is not idle,
    but a frame must be complete within ``idle_timeout_s`` of its first byte."""
    packet = avl(0)

    async def main() -> None:
        async with rig(clean_db, known=[IMEI], codec=teltonika, idle_timeout_s=0.3) as r:
            reader, w = await logged_in(r)

            async def hangup() -> bytes:
                try:
                    return await reader.read()
                except ConnectionResetError:  # a byte written after the close: also a hangup
                    return b""

            hung_up = asyncio.create_task(hangup())
            sent = 0
            while not hung_up.done() and sent < len(packet) - 1:
                w.write(packet[sent : sent + 1])
                sent += 1
                await asyncio.wait([hung_up], timeout=0.05)  # the slow sender's pace
            assert hung_up.done() and hung_up.result() == b"", "never hung up"
            assert r.counters.get("slow_frames_closed") == 1
            await close(w)

    run(main())
    ((reason, raw),) = [(reason, bytes(raw)) for reason, _, raw, *_ in letters(clean_db)]
    assert reason == "truncated" and packet.startswith(raw)


def test_replies_keep_their_order_while_a_commit_is_pending(clean_db: str) -> None:
    """A GT06 alarm is acked after commit; a heartbeat that follows, though it needs no
    commit, must not be answered before it (devices match replies in order)."""
    alarm = gt06_out.alarm(
        time=T0,
        lat=-6.2,
        lon=106.8,
        speed_kmh=10,
        course_deg=90,
        satellites=9,
        valid=True,
        alarm="sos",
        serial=2,
    )
    owed = gt06_out.server_ack(0x16, 2) + gt06_out.server_ack(0x13, 3)

    async def main() -> None:
        async with rig(clean_db, known=[IMEI], codec=gt06) as r:
            reader, w = await r.connect()
            w.write(gt06_out.login(IMEI, 1))
            login_ack = gt06_out.server_ack(0x01, 1)
            assert await asyncio.wait_for(reader.readexactly(len(login_ack)), 10) == login_ack
            lock = await psycopg.AsyncConnection.connect(clean_db)
            async with lock:
                await lock.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
                w.write(alarm)
                await until(lambda: r.counters.get("fixes_in") == 1)
                w.write(gt06_out.heartbeat(3))
                await until(lambda: r.counters.get("frames_in") == 3)
                with pytest.raises(TimeoutError):  # nothing may overtake the alarm's ack
                    await asyncio.wait_for(reader.readexactly(1), 0.3)
                await lock.rollback()
            assert await asyncio.wait_for(reader.readexactly(len(owed)), 10) == owed
            await close(w)

    run(main())
    assert query(clean_db, "SELECT count(*) FROM positions") == [(1,)]


async def port_closed(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    await close(w)
    return False


def test_a_clean_stop_acks_what_was_read_before_it(clean_db: str) -> None:
    """The service stops reading, drains the writer, and only then hangs up: a packet read
    before the stop but committed after it is still acked on its open connection."""
    cfg = settings_for(clean_db, teltonika_port=free_port())
    counters = Counters()
    packet = avl(0, 2)

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        server = asyncio.create_task(service.serve(cfg, counters=counters, stop=stop, ready=ready))
        await asyncio.wait_for(ready.wait(), 30)
        reader, w = await asyncio.open_connection("127.0.0.1", cfg.teltonika_port)
        w.write(teltonika_out.login(IMEI))
        assert await asyncio.wait_for(reader.readexactly(1), 10) == teltonika.LOGIN_ACCEPT
        lock = await psycopg.AsyncConnection.connect(clean_db)
        async with lock:
            await lock.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
            w.write(packet)
            await until(lambda: counters.get("fixes_in") == 2)
            stop.set()
            await until(lambda: port_closed(cfg.teltonika_port), what="the service to stop reading")
            await lock.rollback()
        assert await asyncio.wait_for(reader.read(), 10) == teltonika_out.ack(2)  # then EOF
        await asyncio.wait_for(server, 30)
        await close(w)

    run(main())
    assert query(clean_db, "SELECT count(*) FROM positions") == [(2,)]
