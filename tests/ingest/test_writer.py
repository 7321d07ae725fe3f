"""The batch writer against the real PostgreSQL: exact rows, idempotence, acks, recovery."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from collections import Counter as Tally
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest

from decoders.model import FixArray, empty_fixes
from ingest.counters import Counters
from ingest.errors import StorageError
from ingest.model import Batch, DeadLetter
from ingest.writer import Writer
from tests.polling import until
from tests.ports import free_port

pytestmark = pytest.mark.db

T0_US = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z
T0 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def fixes(n: int, *, start: int = 0, lat: float = -6.0, lon: float = 106.0) -> FixArray:
    """``n`` fixes one second apart from ``T0 + start`` s, position known, the rest unknown."""
    f = empty_fixes(n)
    f["fix_time_us"] = T0_US + (start + np.arange(n, dtype=np.int64)) * 1_000_000
    f["lat"], f["lon"], f["valid"] = lat, lon, True
    return f


def rows(dsn: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params or None).fetchall()


def test_rows_nulls_and_attributes(clean_db: str) -> None:
    f = fixes(3)
    f["speed_kmh"][0], f["course_deg"][0], f["altitude_m"][0] = 36.5, 90.0, 12.0
    f["satellites"][0], f["hdop"][0], f["ignition"][0], f["odometer_m"][0] = 9, 0.75, 1, 1234.5
    f["ignition"][1] = 0
    f["valid"][2] = False
    counters = Counters()
    batch = Batch(
        "dev1", "tcp", "t55", f, attributes=({"fuel": 50}, {}, {"io": [1, 2]}), received_us=T0_US
    )

    async def go() -> None:
        async with Writer(clean_db, counters=counters) as w:
            await w.put(batch)

    run(go())
    got = rows(
        clean_db,
        "SELECT fix_time, received_time, lat, lon, speed_kmh, course_deg, altitude_m, satellites,"
        " hdop, valid, ignition, odometer_m, attributes FROM positions ORDER BY fix_time",
    )
    s = timedelta(seconds=1)
    assert got == [
        (T0, T0, -6.0, 106.0, 36.5, 90.0, 12.0, 9, 0.75, True, True, 1234.5, {"fuel": 50}),
        (T0 + s, T0, -6.0, 106.0, None, None, None, None, None, True, False, None, None),
        (
            T0 + 2 * s,
            T0,
            -6.0,
            106.0,
            None,
            None,
            None,
            None,
            None,
            False,
            None,
            None,
            {"io": [1, 2]},
        ),
    ]
    who = "SELECT DISTINCT device_id, transport, protocol FROM positions"
    assert rows(clean_db, who) == [("dev1", "tcp", "t55")]
    assert counters.get("rows_written", transport="tcp") == 3
    assert counters.get("rows_duplicate") == 0
    assert counters.get("batches_committed") == 1


def test_duplicates_within_and_across_batches_are_stored_once(clean_db: str) -> None:
    counters = Counters()
    twice = np.concatenate([fixes(2), fixes(1)])  # fix 0 appears twice in one batch
    acks: Tally[str] = Tally()

    async def go() -> None:
        async with Writer(clean_db, counters=counters, batch_delay_ms=1000) as w:
            await w.put(
                Batch("d1", "udp", "teltonika", twice, on_commit=lambda: acks.update(["a"]))
            )
            await w.put(
                Batch("d1", "udp", "teltonika", fixes(3), on_commit=lambda: acks.update(["b"]))
            )
            await w.drain()  # both in one flush: the resend meets its original in one statement
            # the same protocol over another transport (Teltonika's TCP after its UDP)
            await w.put(
                Batch("d1", "tcp", "teltonika", fixes(4), on_commit=lambda: acks.update(["c"]))
            )

    run(go())
    assert rows(clean_db, "SELECT count(*), count(DISTINCT fix_time) FROM positions") == [(4, 4)]
    assert counters.get("rows_written") == 4
    assert counters.get("rows_duplicate", transport="udp") == 2 + 3 - 2
    assert counters.get("rows_duplicate", transport="tcp") == 3
    assert counters.get("rows_written", transport="tcp") == 1
    assert acks == {"a": 1, "b": 1, "c": 1}


def test_rmc_and_gga_of_one_epoch_in_separate_batches_become_one_row(clean_db: str) -> None:
    """A packet boundary between an RMC and its GGA must not lose the GGA's columns."""
    rmc = fixes(1)
    rmc["speed_kmh"], rmc["course_deg"] = 40.0, 180.0
    gga = fixes(1, lat=-6.00001)  # GGA's own position: the first one stored wins
    gga["satellites"], gga["hdop"], gga["altitude_m"] = 8, 0.9, 12.5
    counters = Counters()

    async def go() -> None:
        async with Writer(clean_db, counters=counters) as w:
            await w.put(Batch("d1", "tcp", "t55", rmc))
            await w.drain()
            await w.put(Batch("d1", "tcp", "t55", gga))
            await w.drain()
            await w.put(Batch("d1", "tcp", "t55", gga))  # an exact resend changes nothing

    run(go())
    got = rows(
        clean_db,
        "SELECT lat, speed_kmh, course_deg, satellites, hdop, altitude_m, valid FROM positions",
    )
    assert got == [(-6.0, 40.0, 180.0, 8, pytest.approx(0.9), 12.5, True)]
    assert counters.get("rows_written") == 1
    assert counters.get("rows_merged") == 1
    assert counters.get("rows_duplicate") == 1


def test_on_commit_runs_after_rows_are_visible_elsewhere(clean_db: str) -> None:
    seen: list[int] = []

    with psycopg.connect(clean_db, autocommit=True) as observer:

        def ack(device: str) -> Callable[[], None]:
            def cb() -> None:
                q = "SELECT count(*) FROM positions WHERE device_id = %s"
                row = observer.execute(q, (device,)).fetchone()
                seen.append(row[0] if row else -1)

            return cb

        async def go() -> None:
            async with Writer(clean_db, counters=Counters(), batch_rows=5) as w:
                for i in range(6):
                    await w.put(Batch(f"d{i}", "mqtt", "nmea", fixes(5), on_commit=ack(f"d{i}")))
                    await w.drain()

        run(go())
    assert seen == [5] * 6


def test_dead_letters_keep_raw_bytes(clean_db: str) -> None:
    raw = b"\x00\xff$GPRMC,garbage\r\n"
    letter = DeadLetter("tcp", "t55", "10.0.0.7:5123", None, "bad_checksum", "xor 0x41", raw, T0_US)
    counters = Counters()
    acked = threading.Event()

    async def go() -> None:
        async with Writer(clean_db, counters=counters) as w:
            await w.put(Batch("", "tcp", "t55", dead_letters=(letter,), on_commit=acked.set))

    run(go())
    assert acked.is_set()
    assert rows(
        clean_db,
        "SELECT received_time, transport, protocol, peer, device_id, reason, detail, raw"
        " FROM dead_letters",
    ) == [(T0, "tcp", "t55", "10.0.0.7:5123", None, "bad_checksum", "xor 0x41", raw)]
    assert counters.get("dead_letters_written") == 1


def test_register_device_inserts_it_and_reports_it(clean_db: str) -> None:
    registered: list[tuple[str, str]] = []

    def report(device_id: str, protocol: str) -> None:
        registered.append((device_id, protocol))

    async def go() -> None:
        async with Writer(clean_db, counters=Counters(), on_registered=report) as w:
            await w.put(Batch("new1", "tcp", "t55", fixes(2), register_device=True))
            await w.put(Batch("known", "tcp", "t55", fixes(2)))
            await w.drain()
            await w.put(Batch("new1", "tcp", "t55", fixes(1, start=5), register_device=True))

    run(go())
    assert rows(clean_db, "SELECT device_id, protocol, enabled FROM devices") == [
        ("new1", "t55", True)
    ]
    # the second insert is a no-op, the answer the same
    assert registered == [("new1", "t55"), ("new1", "t55")]


def test_a_device_without_a_protocol_is_bound_to_its_first_stored_fix(clean_db: str) -> None:
    """Binding updates only a registered device with no protocol: never inserts one (a
    device deleted meanwhile stays deleted), never changes a protocol already set."""
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("INSERT INTO devices (device_id) VALUES ('open'), ('set')")
        conn.execute("UPDATE devices SET protocol = 'gt06' WHERE device_id = 'set'")
    registered: list[tuple[str, str]] = []

    def report(device_id: str, protocol: str) -> None:
        registered.append((device_id, protocol))

    async def go() -> None:
        async with Writer(clean_db, counters=Counters(), on_registered=report) as w:
            for dev in ("open", "set", "gone"):
                await w.put(Batch(dev, "tcp", "teltonika", fixes(1), bind_device=True))
            await w.put(Batch("open", "http", "osmand", fixes(1, start=9), bind_device=True))

    run(go())
    assert rows(clean_db, "SELECT device_id, protocol FROM devices ORDER BY 1") == [
        ("open", "teltonika"),
        ("set", "gt06"),
    ]
    assert sorted(registered) == [("open", "teltonika"), ("set", "gt06")]


def test_a_stored_fix_of_another_protocol_is_replaced_by_the_devices_own(clean_db: str) -> None:
    """Another protocol's row at the device's fix time neither blocks nor blends into the
    device's fix (an impersonator's, or one stored before the device was bound); a row of
    the same protocol is still filled in, never overwritten."""
    counters = Counters()
    theirs = fixes(3, lat=-7.0)
    theirs["speed_kmh"] = 99.0
    ours = fixes(3)
    ours["speed_kmh"] = np.nan  # an RMC-less record: nothing to blend in either
    gga = fixes(1, lat=-8.0)
    gga["satellites"] = 7

    async def go() -> None:
        async with Writer(clean_db, counters=counters) as w:
            await w.put(Batch("d1", "http", "osmand", theirs))
            await w.drain()
            await w.put(Batch("d1", "tcp", "teltonika", ours))
            await w.drain()
            await w.put(Batch("d1", "udp", "teltonika", gga))

    run(go())
    got = rows(
        clean_db,
        "SELECT lat, speed_kmh, satellites, transport, protocol FROM positions ORDER BY fix_time",
    )
    assert got == [
        (-6.0, None, 7, "tcp", "teltonika"),  # the GGA filled a gap, its position lost
        (-6.0, None, None, "tcp", "teltonika"),
        (-6.0, None, None, "tcp", "teltonika"),
    ]
    assert counters.get("rows_merged", transport="tcp") == 3


async def waits_on_lock(conn: psycopg.AsyncConnection[Any], pid: int | None) -> bool:
    cur = await conn.execute(
        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)
    )
    row = await cur.fetchone()
    return bool(row and row[0])


def test_put_blocks_at_max_pending_until_rows_commit(clean_db: str) -> None:
    opts: dict[str, Any] = {"batch_rows": 10, "batch_delay_ms": 1, "max_pending": 20}

    async def go() -> None:
        # the locker is closed (its lock released) before the writer's exit flushes
        async with (
            Writer(clean_db, counters=Counters(), **opts) as w,
            await psycopg.AsyncConnection.connect(clean_db) as locker,
        ):
            await locker.execute("LOCK TABLE positions IN SHARE MODE")  # stalls every INSERT
            await w.put(Batch("d", "mqtt", "nmea", fixes(10)))
            await w.put(Batch("d", "mqtt", "nmea", fixes(10, start=10)))
            third = asyncio.create_task(w.put(Batch("d", "mqtt", "nmea", fixes(5, start=20))))
            await until(lambda: waits_on_lock(locker, w.backend_pid))
            await asyncio.sleep(0)
            assert not third.done()
            assert w.pending_rows == 20
            await locker.rollback()  # release: the first flush commits, room opens
            await asyncio.wait_for(third, 10)
            await w.drain()
            assert w.pending_rows == 0

    run(go())
    assert rows(clean_db, "SELECT count(*) FROM positions") == [(25,)]


def test_recovers_when_the_backend_is_killed_mid_stream(clean_db: str) -> None:
    counters = Counters()
    acks: Tally[int] = Tally()

    def batch(i: int) -> Batch:
        return Batch(
            f"d{i % 7}", "mqtt", "nmea", fixes(10, start=i * 10), on_commit=lambda: acks.update([i])
        )

    async def go() -> None:
        async with (
            Writer(clean_db, counters=counters, batch_rows=50, batch_delay_ms=5) as w,
            await psycopg.AsyncConnection.connect(clean_db, autocommit=True) as admin,
            await psycopg.AsyncConnection.connect(clean_db) as locker,
        ):
            for i in range(30):
                await w.put(batch(i))
            await w.drain()
            # 1. killed while idle: the next flush finds the connection gone
            await admin.execute("SELECT pg_terminate_backend(%s)", (w.backend_pid,))
            for i in range(30, 60):
                await w.put(batch(i))
            await w.drain()
            # 2. killed inside a transaction, its INSERT stalled on a lock
            await locker.execute("LOCK TABLE positions IN SHARE MODE")
            for i in range(60, 90):
                await w.put(batch(i))
            pid = w.backend_pid
            await until(lambda: waits_on_lock(admin, pid))
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            await locker.rollback()
            for i in range(90, 120):
                await w.put(batch(i))
            await w.drain()

    run(go())
    assert rows(
        clean_db, "SELECT count(*), count(DISTINCT (device_id, fix_time)) FROM positions"
    ) == [(1200, 1200)]
    assert acks == {i: 1 for i in range(120)}
    assert counters.get("writer_retries") >= 2
    assert counters.get("rows_written") == 1200


def test_refused_fixes_become_dead_letters_and_the_stream_goes_on(clean_db: str) -> None:
    bad = fixes(2, lat=95.0)  # past the CHECK; decoders never emit it, the DB still guards
    counters = Counters()
    acks: list[str] = []

    async def go() -> None:
        async with Writer(clean_db, counters=counters, batch_delay_ms=1000) as w:
            await w.put(Batch("good", "tcp", "t55", fixes(3), on_commit=lambda: acks.append("g")))
            await w.put(Batch("bad", "tcp", "t55", bad, on_commit=lambda: acks.append("b")))
            await w.put(Batch("after", "tcp", "t55", fixes(1), on_commit=lambda: acks.append("a")))

    run(go())
    assert rows(clean_db, "SELECT device_id, count(*) FROM positions GROUP BY 1 ORDER BY 1") == [
        ("after", 1),
        ("good", 3),
    ]
    [(device, reason, detail, raw)] = rows(
        clean_db, "SELECT device_id, reason, detail, raw FROM dead_letters"
    )
    assert (device, reason, raw) == ("bad", "db_rejected", bad.tobytes())
    assert "positions_lat_check" in detail
    assert acks == ["g", "b", "a"]
    assert counters.get("rejects", code="db_rejected") == 2


def test_callback_errors_are_counted_not_fatal(clean_db: str) -> None:
    counters = Counters()

    def boom() -> None:
        raise RuntimeError("sender went away")

    async def go() -> None:
        async with Writer(clean_db, counters=counters) as w:
            await w.put(Batch("d", "tcp", "t55", fixes(1), on_commit=boom))
            await w.drain()
            await w.put(Batch("d", "tcp", "t55", fixes(1, start=1)))

    run(go())
    assert counters.get("writer_callback_errors") == 1
    assert rows(clean_db, "SELECT count(*) FROM positions") == [(2,)]


def test_put_threadsafe_from_another_thread(clean_db: str) -> None:
    async def go() -> None:
        async with Writer(clean_db, counters=Counters()) as w:
            with pytest.raises(RuntimeError, match="await put"):
                w.put_threadsafe([])
            batches = [Batch(f"d{i}", "mqtt", "nmea", fixes(4)) for i in range(5)]
            await asyncio.to_thread(w.put_threadsafe, batches, 10.0)
            await w.drain()

    run(go())
    assert rows(clean_db, "SELECT count(*) FROM positions") == [(20,)]


def test_put_threadsafe_blocks_the_thread_while_full(clean_db: str) -> None:
    opts: dict[str, Any] = {"batch_rows": 10, "batch_delay_ms": 1, "max_pending": 10}
    accepted = threading.Event()

    async def go() -> None:
        async with (
            Writer(clean_db, counters=Counters(), **opts) as w,
            await psycopg.AsyncConnection.connect(clean_db) as locker,
        ):
            await locker.execute("LOCK TABLE positions IN SHARE MODE")
            await w.put(Batch("d", "mqtt", "nmea", fixes(10)))
            await until(lambda: waits_on_lock(locker, w.backend_pid))

            def mqtt_thread() -> None:
                w.put_threadsafe([Batch("d", "mqtt", "nmea", fixes(3, start=10))])
                accepted.set()

            thread = asyncio.create_task(asyncio.to_thread(mqtt_thread))
            with pytest.raises(TimeoutError):  # a bounded look: still blocked after 0.2 s
                await asyncio.to_thread(w.put_threadsafe, [], 0.2)
            assert not accepted.is_set()
            await locker.rollback()
            await asyncio.wait_for(thread, 10)
            await w.drain()

    run(go())
    assert accepted.is_set()
    assert rows(clean_db, "SELECT count(*) FROM positions") == [(13,)]


def test_unreachable_database_at_start_is_a_storage_error() -> None:
    async def go() -> None:
        dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/menara"
        async with Writer(dsn, counters=Counters()):
            pass

    with pytest.raises(StorageError, match="cannot connect"):
        run(go())


def test_a_row_the_index_cannot_hold_is_dead_lettered_not_retried_forever(clean_db: str) -> None:
    """ProgramLimitExceeded is an OperationalError but a property of the row, not the link."""
    counters = Counters()

    async def go() -> None:
        async with Writer(clean_db, counters=counters) as w:
            huge = base64.b64encode(os.urandom(4500)).decode()  # incompressible, 6000 chars
            await w.put(Batch(huge, "mqtt", "menara-json", fixes(1)))
            await w.put(Batch("good", "mqtt", "menara-json", fixes(1)))
            await asyncio.wait_for(w.drain(), timeout=30)

    run(go())
    assert rows(clean_db, "SELECT device_id FROM positions") == [("good",)]
    assert rows(clean_db, "SELECT reason, length(device_id) FROM dead_letters") == [
        ("db_rejected", 6000)
    ]
    assert counters.get("writer_retries") == 0


def test_on_committed_sees_only_committed_fixes(clean_db: str) -> None:
    """The rules get each batch with fixes after its COMMIT (the rows are visible from
    another connection by then); dead-letter-only batches are not handed on."""
    seen: list[tuple[str, int, int]] = []

    async def hook(batches: Any) -> None:
        for b in batches:
            stored = rows(
                clean_db, "SELECT count(*) FROM positions WHERE device_id = %s", b.device_id
            )
            seen.append((b.device_id, len(b.fixes), stored[0][0]))

    letter = DeadLetter("tcp", "t55", "peer", None, "bad_frame", "", b"x")

    async def go() -> None:
        async with Writer(clean_db, counters=Counters(), on_committed=hook) as w:
            await w.put(Batch("dev1", "tcp", "t55", fixes(3)))
            await w.put(Batch("dev2", "tcp", "t55", dead_letters=(letter,)))
            await w.drain()

    run(go())
    assert seen == [("dev1", 3, 3)]


def test_a_failing_on_committed_hook_does_not_stop_the_writer(clean_db: str) -> None:
    counters = Counters()

    async def hook(batches: Any) -> None:
        raise RuntimeError("a bug in the next stage")

    async def go() -> None:
        async with Writer(clean_db, counters=counters, on_committed=hook) as w:
            await w.put(Batch("dev1", "tcp", "t55", fixes(2)))
            await w.drain()
            await w.put(Batch("dev1", "tcp", "t55", fixes(2, start=2)))
            await w.drain()

    run(go())
    assert rows(clean_db, "SELECT count(*) FROM positions")[0][0] == 4
    assert counters.get("writer_callback_errors") == 2


def test_commits_go_on_while_the_loops_default_executor_is_busy(clean_db: str) -> None:
    """The API runs its database calls on the loop's default executor; a burst of slow
    ones must not hold up the commit devices wait for (the writer has its own thread)."""

    async def store() -> None:
        async with Writer(clean_db, counters=Counters()) as w:
            await w.put(Batch("busy", "tcp", "t55", fixes(3)))
            await w.drain()

    async def go() -> None:
        loop = asyncio.get_running_loop()
        release = threading.Event()
        busy = [loop.run_in_executor(None, release.wait, 30.0) for _ in range(64)]
        try:
            await asyncio.wait_for(store(), 15.0)
            assert not any(f.done() for f in busy)  # they held every thread meanwhile
        finally:
            release.set()
            await asyncio.gather(*busy)

    run(go())
    assert rows(clean_db, "SELECT count(*) FROM positions WHERE device_id = 'busy'") == [(3,)]
