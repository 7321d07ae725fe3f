"""The OsmAnd HTTP intake end to end: aiohttp as the phone, the real writer, real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import psycopg
import pytest

from decoders import osmand
from ingest.counters import Counters
from ingest.devices import DeviceRegistry
from ingest.errors import StorageError
from ingest.http import HttpListener
from ingest.writer import Writer
from simulators.osmand_out import json_body, query
from tests.polling import until

pytestmark = pytest.mark.db

T0 = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
MAX_BODY = 4096


@dataclass
class Rig:
    dsn: str
    listener: HttpListener
    writer: Writer
    counters: Counters

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.port}/"


@contextlib.asynccontextmanager
async def rig(
    dsn: str,
    *,
    policy: str = "register",
    known: Iterable[str] = (),
    delay_ms: int = 5,
    commit_timeout_s: float = 10.0,
) -> AsyncIterator[Rig]:
    counters = Counters()
    registry = DeviceRegistry(policy=policy, known=known)
    async with (
        Writer(
            dsn, counters=counters, batch_delay_ms=delay_ms, on_registered=registry.mark_registered
        ) as writer,
        HttpListener(
            codec=osmand,
            host="127.0.0.1",
            port=0,
            max_body_bytes=MAX_BODY,
            writer=writer,
            registry=registry,
            counters=counters,
            commit_timeout_s=commit_timeout_s,
        ) as listener,
    ):
        yield Rig(dsn, listener, writer, counters)


def q(device: str, i: int = 0) -> str:
    """Fix ``i`` of ``device``: one second and 0.0001° east per step."""
    t = T0 + timedelta(seconds=i)
    return query(device, time=t, lat=-6.2, lon=106.8 + i * 0.0001, speed_kmh=36.0, bearing=90.0)


def sql(dsn: str, text: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(text, params).fetchall()


def rows(dsn: str, device: str) -> list[tuple[Any, ...]]:
    return sql(
        dsn,
        "SELECT fix_time, lat, lon, speed_kmh, course_deg FROM positions"
        " WHERE device_id = %s ORDER BY fix_time",
        device,
    )


def letters(dsn: str) -> list[tuple[Any, ...]]:
    return sql(dsn, "SELECT reason, device_id, raw, transport FROM dead_letters ORDER BY id")


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as resp:
        return resp.status, await resp.text()


def test_200_comes_only_after_the_row_is_committed(clean_db: str) -> None:
    async def main() -> None:
        async with rig(clean_db, delay_ms=50) as r, aiohttp.ClientSession() as phone:
            for i in range(3):
                async with phone.get(r.url + "?" + q("PHONE1", i)) as resp:
                    assert resp.status == 200
                    assert len(rows(clean_db, "PHONE1")) == i + 1  # already there
            body = json_body("PHONE1", time=T0 + timedelta(seconds=9), lat=1.5, lon=2.5)
            async with phone.post(r.url + "any/path", data=body) as resp:
                assert resp.status == 200
                assert len(rows(clean_db, "PHONE1")) == 4
            form = q("PHONE1", 20).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            async with phone.post(r.url, data=form, headers=headers) as resp:
                assert resp.status == 200
            assert r.counters.get("frames_in", transport="http") == 5

    run(main())
    got = rows(clean_db, "PHONE1")
    assert got[0] == (T0, -6.2, 106.8, pytest.approx(36.0), 90.0)
    assert got[3][1:3] == (1.5, 2.5)


def test_bad_input_is_400_with_a_reason_and_a_dead_letter(clean_db: str) -> None:
    async def main() -> None:
        async with rig(clean_db) as r, aiohttp.ClientSession() as phone:
            bad = q("PHONE2").replace("lat=-6.2", "lat=north")
            status, text = await get(phone, r.url + "?" + bad)
            assert (status, text.split(":")[0]) == (400, "bad_number")
            assert letters(clean_db) == [("bad_number", "PHONE2", bad.encode(), "http")]
            status, text = await get(phone, r.url + "?lat=1&lon=2&timestamp=1767600000")
            assert (status, text.split(":")[0]) == (400, "no_identity")
            status, _ = await get(phone, r.url)  # a health check or a browser: nothing kept
            assert status == 400
            status, _ = await get(phone, r.url + "?" + q("PHONE2"))  # the phone recovers
            assert status == 200
            assert r.counters.get("rejects", protocol="osmand", code="bad_number") == 1

    run(main())
    assert len(letters(clean_db)) == 2 and len(rows(clean_db, "PHONE2")) == 1


def test_unknown_device_is_403_under_the_reject_policy(clean_db: str) -> None:
    async def main() -> None:
        async with (
            rig(clean_db, policy="reject", known=["KNOWN"]) as r,
            aiohttp.ClientSession() as phone,
        ):
            status, text = await get(phone, r.url + "?" + q("STRANGER"))
            assert (status, text) == (403, "unknown device STRANGER")
            assert [ln[:2] for ln in letters(clean_db)] == [("unknown_device", "STRANGER")]
            assert (await get(phone, r.url + "?" + q("KNOWN")))[0] == 200

    run(main())
    assert rows(clean_db, "STRANGER") == [] and len(rows(clean_db, "KNOWN")) == 1


def test_oversized_body_is_413_and_counted(clean_db: str) -> None:
    async def main() -> None:
        async with rig(clean_db) as r, aiohttp.ClientSession() as phone:
            huge = q("PHONE3").encode() + b"&pad=" + b"x" * MAX_BODY
            async with phone.post(r.url, data=huge) as resp:
                assert resp.status == 413
            assert r.counters.get("rejects", code="body_too_large") == 1
            assert (await get(phone, r.url + "?" + q("PHONE3")))[0] == 200

    run(main())
    assert letters(clean_db) == []


def test_a_replayed_request_is_200_and_stored_once(clean_db: str) -> None:
    async def main() -> None:
        async with rig(clean_db) as r, aiohttp.ClientSession() as phone:
            for _ in range(3):  # the phone never saw the first 200 and resends
                assert (await get(phone, r.url + "?" + q("PHONE4", 7)))[0] == 200

    run(main())
    assert len(rows(clean_db, "PHONE4")) == 1


def test_concurrent_phones_all_stored(clean_db: str) -> None:
    phones, each = 20, 10

    async def phone(r: Rig, n: int) -> list[int]:
        async with aiohttp.ClientSession() as s:
            return [(await get(s, r.url + "?" + q(f"P{n:02d}", i)))[0] for i in range(each)]

    async def main() -> None:
        async with rig(clean_db) as r:
            results = await asyncio.gather(*(phone(r, n) for n in range(phones)))
            assert all(status == 200 for statuses in results for status in statuses)

    run(main())
    assert sql(clean_db, "SELECT count(*) FROM positions") == [(phones * each,)]


async def refused(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:  # refused, or reset while the listening socket closes
        return True
    w.close()
    return False


def test_stop_reading_lets_in_flight_requests_finish(clean_db: str) -> None:
    async def main() -> None:
        async with rig(clean_db) as r, aiohttp.ClientSession() as phone:
            lock = await psycopg.AsyncConnection.connect(clean_db)
            async with lock:
                await lock.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
                pending = asyncio.create_task(get(phone, r.url + "?" + q("PHONE5")))
                await until(lambda: r.listener.open_connections == 1, what="request in flight")
                stopping = asyncio.create_task(r.listener.stop_reading())
                await until(lambda: refused(r.listener.port), what="the port to close")
                assert not stopping.done()  # it waits for the request in flight
                await lock.rollback()  # the database is free: the commit goes through
            await stopping
            assert await pending == (200, "")
            assert r.listener.open_connections == 0

    run(main())
    assert len(rows(clean_db, "PHONE5")) == 1


def test_writer_failure_is_503_and_surfaces_through_wait(clean_db: str) -> None:
    async def main() -> None:
        counters = Counters()
        async with Writer(clean_db, counters=counters) as writer:
            pass  # a writer that has stopped: put raises StorageError
        async with (
            HttpListener(
                codec=osmand,
                host="127.0.0.1",
                port=0,
                max_body_bytes=MAX_BODY,
                writer=writer,
                registry=DeviceRegistry(policy="register"),
                counters=counters,
            ) as listener,
            aiohttp.ClientSession() as phone,
        ):
            url = f"http://127.0.0.1:{listener.port}/?" + q("PHONE6")
            assert (await get(phone, url))[0] == 503
            with pytest.raises(StorageError):
                await listener.wait()
            assert (await get(phone, url))[0] == 503

    run(main())
    assert rows(clean_db, "PHONE6") == []


def test_query_string_and_body_together(clean_db: str) -> None:
    """As Traccar: a JSON body wins; otherwise the query string wins over a form body."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    async def main() -> None:
        async with rig(clean_db) as r, aiohttp.ClientSession() as phone:
            async with phone.post(
                r.url + "?" + q("QUERY", 1), data=q("FORM", 2), headers=form
            ) as a:
                assert a.status == 200
            body = json_body("JSON", time=T0 + timedelta(seconds=3), lat=1.5, lon=2.5)
            async with phone.post(r.url + "?" + q("QUERY", 4), data=body) as b:
                assert b.status == 200
            async with phone.post(r.url + "?id=QUERY", data=q("QUERY", 5), headers=form) as c:
                assert (c.status, (await c.text()).split(":")[0]) == (400, "no_fix")

    run(main())
    stored = sql(clean_db, "SELECT device_id, fix_time FROM positions ORDER BY fix_time")
    assert stored == [("QUERY", T0 + timedelta(seconds=1)), ("JSON", T0 + timedelta(seconds=3))]
    assert [(reason, bytes(raw)) for reason, _, raw, _ in letters(clean_db)] == [
        ("no_fix", b"id=QUERY")
    ]


def test_a_stuck_database_is_503_and_the_resend_is_stored_once(clean_db: str) -> None:
    """A phone must not wait forever: no commit within the bound is 503 (retry later).
    The fix may still be committed afterwards; the phone's resend is then a duplicate."""

    async def main() -> None:
        async with rig(clean_db, commit_timeout_s=0.3) as r, aiohttp.ClientSession() as phone:
            lock = await psycopg.AsyncConnection.connect(clean_db)
            async with lock:
                await lock.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
                status, _ = await asyncio.wait_for(get(phone, r.url + "?" + q("PHONE7")), 10)
                assert status == 503
                assert r.listener.open_connections == 0
                await lock.rollback()
            assert (await get(phone, r.url + "?" + q("PHONE7")))[0] == 200

    run(main())
    assert len(rows(clean_db, "PHONE7")) == 1


def test_a_slow_body_does_not_hold_up_the_stop(clean_db: str) -> None:
    """A client still sending its body when the intake stops owns nothing we must commit:
    stopping does not wait for it, and if it ever finishes it is told 503."""
    body = q("PHONE8").encode()

    async def main() -> None:
        async with rig(clean_db) as r:
            reader, w = await asyncio.open_connection("127.0.0.1", r.listener.port)
            w.write(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
                + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            await w.drain()
            await until(lambda: r.listener.open_connections == 1, what="the request to start")
            await asyncio.wait_for(r.listener.stop_reading(), 5)
            w.write(body[10:])
            answer = await asyncio.wait_for(reader.read(), 10)
            assert answer.startswith(b"HTTP/1.1 503 ")
            w.close()

    run(main())
    assert rows(clean_db, "PHONE8") == []
