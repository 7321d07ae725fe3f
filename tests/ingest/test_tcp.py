"""The T55 TCP listener end to end: real sockets, the real writer, real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from decoders import Codec, Decoded, Session, t55
from ingest.counters import Counters
from ingest.devices import DeviceRegistry
from ingest.errors import StorageError
from ingest.tcp import TcpListener
from ingest.writer import Writer
from simulators.nmea_out import gga, pgid, rmc
from tests.polling import until

pytestmark = pytest.mark.db

T0 = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)


def fix(i: int) -> bytes:
    """RMC+GGA of fix ``i``: one second and 0.0001° east per step, so rows are predictable."""
    t = T0 + timedelta(seconds=i)
    lon = 106.8 + i * 0.0001
    return rmc(t, -6.2, lon, 36.0, 90.0) + gga(
        t, -6.2, lon, satellites=9, hdop=0.8, altitude_m=12.0
    )


def fixes(n: int, start: int = 0) -> bytes:
    return b"".join(fix(i) for i in range(start, start + n))


@dataclass
class Rig:
    """A listener wired to a writer on the test database."""

    dsn: str
    listener: TcpListener
    writer: Writer
    counters: Counters
    registry: DeviceRegistry

    async def settle(self, sent: int) -> None:
        """Wait until ``sent`` bytes were read, then until all of it is committed."""
        await until(lambda: self.counters.get("bytes_in") >= sent)
        await self.listener.flush()
        await self.writer.drain()

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.listener.port)

    def rejects(self, code: str) -> int:
        return self.counters.get("rejects", protocol="t55", code=code)


@contextlib.asynccontextmanager
async def rig(
    dsn: str,
    *,
    policy: str = "register",
    known: Iterable[str] = (),
    idle_timeout_s: float = 30.0,
    max_pending: int = 10_000,
    codec: Codec = t55,
) -> AsyncIterator[Rig]:
    counters = Counters()
    registry = DeviceRegistry(policy=policy, known=known)
    async with (
        Writer(
            dsn,
            counters=counters,
            batch_rows=500,
            batch_delay_ms=5,
            max_pending=max_pending,
            on_registered=registry.mark_registered,
        ) as writer,
        TcpListener(
            codec=codec,
            host="127.0.0.1",
            port=0,
            idle_timeout_s=idle_timeout_s,
            max_line_bytes=1024,
            writer=writer,
            registry=registry,
            counters=counters,
        ) as listener,
    ):
        yield Rig(dsn, listener, writer, counters, registry)


async def close(w: asyncio.StreamWriter) -> None:
    w.close()
    with contextlib.suppress(ConnectionError):
        await w.wait_closed()


async def send(rig_: Rig, data: bytes, *, chunk: int = 0) -> None:
    """One connection sends ``data`` (in ``chunk``-byte writes when set) and hangs up."""
    _, w = await rig_.connect()
    step = chunk or len(data)
    for i in range(0, len(data), step):
        w.write(data[i : i + step])
        await w.drain()
    await close(w)


def query(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def rows(dsn: str, device: str) -> list[tuple[Any, ...]]:
    return query(
        dsn,
        "SELECT fix_time, lat, lon, speed_kmh, course_deg, satellites, hdop, altitude_m"
        " FROM positions WHERE device_id = %s ORDER BY fix_time",
        device,
    )


def letters(dsn: str) -> list[tuple[Any, ...]]:
    return query(
        dsn, "SELECT reason, device_id, raw, peer, transport FROM dead_letters ORDER BY id"
    )


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def test_login_then_fixes_each_stored_once(clean_db: str) -> None:
    async def main() -> None:
        async with rig(clean_db) as r:
            _, w = await r.connect()
            w.write(pgid("DEV1"))
            for i in range(50):  # one packet per fix, as a tracker does
                w.write(fix(i))
                await w.drain()
            w.write(fixes(50))  # the whole lot again: a device resending after a reconnect
            await w.drain()
            await r.settle(len(pgid("DEV1")) + 2 * len(fixes(50)))
            await close(w)

    run(main())
    stored = rows(clean_db, "DEV1")
    assert len(stored) == 50
    assert stored[0][:3] == (T0, -6.2, 106.8)
    assert stored[0][5:] == (9, pytest.approx(0.8), 12.0)
    assert query(clean_db, "SELECT device_id FROM devices") == [("DEV1",)]
    assert letters(clean_db) == []


@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_split_packets_give_the_same_rows(clean_db: str, chunk: int) -> None:
    stream = pgid("WHOLE") + fixes(20)
    split = pgid("SPLIT") + fixes(20)

    async def main() -> None:
        async with rig(clean_db) as r:
            await asyncio.gather(send(r, stream), send(r, split, chunk=chunk))
            await r.settle(len(stream) + len(split))

    run(main())
    whole = rows(clean_db, "WHOLE")
    assert len(whole) == 20
    # An epoch cut between its RMC and GGA reaches the decoder in two calls, which merge
    # nothing across calls: the fix keeps the RMC's time, position and motion, but the
    # GGA's satellites, HDOP and altitude may be missing (the GGA-only fix is a duplicate).
    assert [x[:5] for x in rows(clean_db, "SPLIT")] == [x[:5] for x in whole]


def test_bad_input_is_dead_lettered_and_other_devices_unaffected(clean_db: str) -> None:
    garbage = b"hello\r\n" + b"\x00\xff\x13\x37" * 10 + b"\n"
    bad_checksum = fix(1).replace(b"*", b"0*", 1)
    oversized = b"$GPRMC," + b"9" * 2000

    async def main() -> None:
        async with rig(clean_db) as r:
            long_r, long_w = await r.connect()
            long_w.write(pgid("LONG") + fix(0) + oversized)
            assert await asyncio.wait_for(long_r.read(), 10) == b""  # the server hung up
            await close(long_w)
            sent = r.counters.get("bytes_in")  # the server read only part of it
            noisy_r, noisy = await r.connect()
            noisy.write(fix(0))  # before any identity
            await r.settle(sent + len(fix(0)))
            noisy.write(pgid("NOISY") + fix(1) + garbage + bad_checksum + fix(2))
            await noisy.drain()
            calm = asyncio.create_task(send(r, pgid("CALM") + fixes(30)))
            truncated = pgid("CUT") + fix(0) + fix(1)[:20]
            await send(r, truncated)
            await calm
            sent += len(fix(0)) + len(pgid("NOISY") + fix(1) + garbage + bad_checksum + fix(2))
            sent += len(pgid("CALM") + fixes(30)) + len(truncated)
            await r.settle(sent)
            noisy.write(fix(3))  # still connected: framing was never lost
            await noisy.drain()
            await r.settle(sent + len(fix(3)))
            assert not noisy_r.at_eof()
            await close(noisy)
            assert r.rejects("no_identity") == 2  # the RMC and the GGA
            assert r.rejects("malformed") == 2
            assert r.rejects("bad_checksum") == 1
            assert r.rejects("line_too_long") == 1
            assert r.rejects("truncated") == 1
            assert r.counters.get("framing_lost") == 1

    run(main())
    assert len(rows(clean_db, "CALM")) == 30
    assert [x[0] for x in rows(clean_db, "NOISY")] == [T0 + timedelta(seconds=s) for s in (1, 2, 3)]
    assert len(rows(clean_db, "CUT")) == 1
    assert len(rows(clean_db, "LONG")) == 1
    kept = {(reason, dev): raw for reason, dev, raw, _, _ in letters(clean_db)}
    assert kept[("no_identity", None)] in (fix(0).split(b"\r\n")[0], fix(0).split(b"\r\n")[1])
    assert kept[("malformed", "NOISY")] in (b"hello", garbage.split(b"\r\n")[1].rstrip(b"\n"))
    assert kept[("truncated", "CUT")] == fix(1)[:20]
    assert bytes(kept[("line_too_long", "LONG")]).startswith(b"$GPRMC,999")
    assert {(p.split(":")[0], tr) for *_, p, tr in letters(clean_db)} == {("127.0.0.1", "tcp")}


@pytest.mark.parametrize("policy", ["reject", "register"])
def test_unknown_device_policy(clean_db: str, policy: str) -> None:
    async def main() -> None:
        async with rig(clean_db, policy=policy, known=["KNOWN"]) as r:
            a, b = pgid("KNOWN") + fixes(5), pgid("STRANGER") + fixes(5)
            await asyncio.gather(send(r, a), send(r, b))
            await r.settle(len(a) + len(b))
            assert r.rejects("unknown_device") == (5 if policy == "reject" else 0)

    run(main())
    assert len(rows(clean_db, "KNOWN")) == 5
    registered = query(clean_db, "SELECT device_id FROM devices")
    if policy == "reject":
        assert rows(clean_db, "STRANGER") == []
        assert registered == []
        kept = letters(clean_db)
        assert {(reason, dev) for reason, dev, *_ in kept} == {("unknown_device", "STRANGER")}
        assert b"".join(raw for _, _, raw, _, _ in kept).count(b"GPRMC") == 5
    else:
        assert len(rows(clean_db, "STRANGER")) == 5
        assert registered == [("STRANGER",)]


def test_idle_connections_are_closed(clean_db: str) -> None:
    async def main() -> None:
        async with rig(clean_db, idle_timeout_s=0.2) as r:
            idle_r, idle_w = await r.connect()
            idle_w.write(pgid("SLEEPY"))
            await idle_w.drain()
            assert await asyncio.wait_for(idle_r.read(), 5) == b""
            await close(idle_w)
            assert r.counters.get("idle_closed") == 1
            await until(lambda: r.listener.open_connections == 0)

    run(main())


def test_slow_database_pauses_reading_and_loses_nothing(clean_db: str) -> None:
    sent = 0

    async def main() -> None:
        nonlocal sent
        async with rig(clean_db, max_pending=5) as r:
            lock = await psycopg.AsyncConnection.connect(clean_db)
            async with lock:
                await lock.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
                _, w = await r.connect()
                w.write(pgid("BURST"))
                while not r.counters.get("reads_paused") and sent < 5000:
                    w.write(fix(sent))
                    sent += 1
                    await asyncio.sleep(0)  # let the listener read each fix as its own packet
                assert r.counters.get("reads_paused") == 1
                await lock.rollback()  # the database is fast again
            await r.settle(len(pgid("BURST")) + len(fixes(sent)))
            await close(w)
            assert r.counters.get("fixes_in") == sent

    run(main())
    assert len(rows(clean_db, "BURST")) == sent


def test_random_bytes_never_break_the_listener(clean_db: str) -> None:
    noise = random.Random(7).randbytes(64 * 1024)

    async def main() -> None:
        async with rig(clean_db) as r:
            _, w = await r.connect()
            w.write(pgid("NOISE") + noise)
            await send(r, pgid("GOOD") + fixes(40))
            with contextlib.suppress(ConnectionError):  # a long line makes the server hang up
                await w.drain()
            await until(lambda: len(rows(clean_db, "GOOD")) == 40)
            await close(w)
            assert r.rejects("internal_error") == r.rejects("decoder_error") == 0
            assert r.counters.get("rejects", protocol="t55") > 0

    run(main())
    assert len(rows(clean_db, "GOOD")) == 40
    assert query(clean_db, "SELECT count(*) FROM dead_letters WHERE device_id = 'NOISE'")[0][0] > 0


class AckingT55:
    """T55 with Traccar's ``t55.ack`` option on: ``OK1`` for every packet carrying fixes."""

    NAME = "t55"

    def split_frames(self, buf: bytes) -> tuple[list[bytes], bytes]:
        return t55.split_frames(buf)

    def decode_frames(self, frames: Sequence[bytes], *, session: Session) -> Decoded:
        decoded = t55.decode_frames(frames, session=session)
        return replace(decoded, replies=(b"OK1\r\n",) if len(decoded.fixes) else ())


def test_replies_are_sent_only_after_commit(clean_db: str) -> None:
    async def main() -> None:
        async with rig(clean_db, codec=AckingT55()) as r:
            reader, w = await r.connect()
            w.write(pgid("ACKED") + fix(0))
            assert await asyncio.wait_for(reader.readline(), 10) == b"OK1\r\n"
            assert len(rows(clean_db, "ACKED")) == 1
            lock = await psycopg.AsyncConnection.connect(clean_db)
            async with lock:
                await lock.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
                w.write(fix(1))
                with pytest.raises(TimeoutError):  # read and queued, but not committed
                    await asyncio.wait_for(reader.readline(), 0.3)
                await lock.rollback()
            assert await asyncio.wait_for(reader.readline(), 10) == b"OK1\r\n"
            assert len(rows(clean_db, "ACKED")) == 2
            await close(w)

    run(main())


def test_listener_exits_promptly_after_the_writer_fails(clean_db: str) -> None:
    """A half-received line on a connection the failed feeder closes must not hang shutdown.

    Closing that connection dead-letters its tail after the feeder has died; the batch is
    dropped and counted, and leaving the listener returns at once.
    """
    partial = b"$GPRMC,080000.00,A,06"  # no line end: stays in the connection's buffer

    async def main() -> None:
        counters = Counters()
        async with Writer(clean_db, counters=counters) as writer:
            pass  # a writer that has stopped: put raises StorageError
        async with asyncio.timeout(10):  # without the fix, leaving the listener never returns
            async with TcpListener(
                codec=t55,
                host="127.0.0.1",
                port=0,
                idle_timeout_s=30.0,
                max_line_bytes=1024,
                writer=writer,
                registry=DeviceRegistry(policy="register"),
                counters=counters,
            ) as listener:
                half_r, half_w = await asyncio.open_connection("127.0.0.1", listener.port)
                half_w.write(partial)
                await half_w.drain()
                await until(lambda: counters.get("bytes_in") == len(partial))
                _, w = await asyncio.open_connection("127.0.0.1", listener.port)
                w.write(pgid("DOOMED") + fix(0))  # the first batch: the writer's put raises
                await w.drain()
                with pytest.raises(StorageError):
                    await listener.wait()
                assert await half_r.read() == b""  # the listener hung up on everyone
                await until(lambda: listener.open_connections == 0)
                await close(half_w)
                await close(w)
        assert counters.get("dropped_after_writer_failure", transport="tcp") == 1

    run(main())
