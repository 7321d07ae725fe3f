"""The live alert stream over a real server and database: an alert raised in another
connection reaches the clients whose depot/type filter it passes, the token may come
in the query, slow clients lose their oldest events, the listener comes back after the
database dropped it, and shutting the server down ends open streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from deviation.model import Event
from oms_core.alerts import store
from oms_core.alerts.stream import APPLICATION_NAME, Hub, Subscription
from oms_core.api import Role, create_token, make_app
from oms_core.api.alerts import HUB
from oms_core.api.spec import PREFIX
from tests.oms_core import NOW, World, one
from tests.oms_core.test_alerts_store import T0, Fleet, add_fleet
from tests.oms_core.test_api import Api, api_for, serve, stop
from tests.polling import until

pytestmark = pytest.mark.db
READ_S = 10.0  # bound on waiting for one SSE block


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


def second_depot(conn: psycopg.Connection[Any], w: World) -> Fleet:
    depot = one(
        conn,
        "INSERT INTO depots (name, lat, lon, time_zone) VALUES ('RTM', 51.92, 4.48,"
        " 'Europe/Amsterdam')",
    )
    return add_fleet(conn, World(w.dsn, w.customer_id, depot), "R-1")


def raise_alert(dsn: str, f: Fleet, kind: str, t: float = 0) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        aid = store.record(
            conn,
            Event(kind, "open", T0 + t, "", {}),
            vehicle_id=f.vehicle_id,
            trip_id=f.trip_id,
            depot_id=f.depot_id,
            order_ids=[],
        )
    assert aid is not None
    return aid


async def block(resp: aiohttp.ClientResponse) -> str:
    """The next SSE block (up to the blank line), bounded in time."""
    raw = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), READ_S)
    return raw.decode()


async def next_alert(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """The next ``event: alert`` payload, skipping comments; its ``id:`` is its seq."""
    while True:
        text = await block(resp)
        if text.startswith("event: alert\n"):
            fields = dict(line.split(": ", 1) for line in text.strip().splitlines())
            data: dict[str, Any] = json.loads(fields["data"])
            assert fields.get("id") == (str(data["seq"]) if "seq" in data else None)
            return data


async def drop_listener(c: psycopg.AsyncConnection[Any]) -> None:
    """End the hub's LISTEN connection from the database side (as a failover would)."""
    await c.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = %s",
        (APPLICATION_NAME,),
    )


def test_alerts_reach_the_clients_whose_filter_they_pass(api: Api) -> None:
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        ams = add_fleet(conn, api.world)
        rtm = second_depot(conn, api.world)

    async def scenario() -> None:
        token = api.tokens[Role.SUPERVISOR]
        async with aiohttp.ClientSession() as s:
            by_depot = await s.get(
                f"{api.url}/alerts/stream",
                params={"depot_id": ams.depot_id},
                headers={"Authorization": f"Bearer {token}"},
            )
            by_type = await s.get(  # as a browser's EventSource would: token in the query
                f"{api.url}/alerts/stream",
                params=[("type", "idling"), ("type", "silent_device"), ("access_token", token)],
            )
            for resp in (by_depot, by_type):
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "text/event-stream"
                assert await block(resp) == "retry: 3000\n: listening\n\n"
            rtm_alert = await asyncio.to_thread(raise_alert, api.world.dsn, rtm, "overspeed")
            ams_alert = await asyncio.to_thread(raise_alert, api.world.dsn, ams, "overspeed", 1)
            idle = await asyncio.to_thread(raise_alert, api.world.dsn, rtm, "idling", 2)
            got = await next_alert(by_depot)  # the Rotterdam alert came first, unwanted
            assert (got["id"], got["event"], got["depot_id"]) == (ams_alert, "open", ams.depot_id)
            assert got["vehicle_id"] == ams.vehicle_id and got["type"] == "overspeed"
            assert got["opened_at"] == NOW.replace(second=1).isoformat()
            assert (await next_alert(by_type))["id"] == idle  # neither overspeed passes

            def ack() -> None:
                with psycopg.connect(api.world.dsn, autocommit=True) as conn:
                    store.acknowledge(conn, ams_alert, "sam")

            await asyncio.to_thread(ack)
            got = await next_alert(by_depot)
            assert (got["id"], got["event"], got["state"]) == (
                ams_alert,
                "acknowledge",
                "acknowledged",
            )
            assert rtm_alert not in (ams_alert, idle)
            by_depot.close()
            by_type.close()

    asyncio.run(scenario())


def test_the_stream_needs_a_control_room_token(api: Api) -> None:
    async def status(**kw: Any) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.get(f"{api.url}/alerts/stream", **kw) as r:
            return r.status, await r.json()

    assert asyncio.run(status())[0] == 401
    code, body = asyncio.run(status(params={"access_token": "mnr_nope"}))
    assert (code, body["error"]["code"]) == (401, "invalid_token")
    code, body = asyncio.run(status(params={"access_token": api.tokens[Role.DRIVER]}))
    assert (code, body["error"]["code"]) == (403, "forbidden")
    code, body = asyncio.run(
        status(
            params={"depot_id": "x"},
            headers={"Authorization": f"Bearer {api.tokens[Role.DISPATCHER]}"},
        )
    )
    assert (code, body["error"]["code"]) == (422, "wrong_type")


def test_a_slow_client_loses_its_oldest_events() -> None:
    async def scenario() -> None:
        hub = Hub("postgresql://unused", queue_size=3)
        with hub.subscribe(depot_ids=[1]) as slow, hub.subscribe(types=["idling"]) as other:
            for i in range(4):
                hub.publish(json.dumps({"id": i, "depot_id": 1, "type": "overspeed"}))
            hub.publish('{"id": 4,\n "depot_id": 1}')  # a line break would end an SSE event
            hub.publish("not json")
            got = [json.loads(p or "null")["id"] for p in [await slow.get() for _ in range(3)]]
            assert (got, slow.dropped, other.dropped) == ([2, 3, 4], 2, 0)
            hub.publish('{"id": 5,\r\n "depot_id": 1}')
            assert await slow.get() == '{"id": 5, "depot_id": 1}'
            hub.close()
            assert await slow.get() is None and await other.get() is None
        assert hub.counters["queue_dropped"] == 2
        with hub.subscribe() as late:
            assert await late.get() is None  # a closed hub ends new streams at once

    asyncio.run(scenario())


def test_the_listener_comes_back_after_the_database_drops_it(clean_db: str) -> None:
    async def scenario() -> None:
        hub = Hub(clean_db, retry_initial_s=0.05, retry_max_s=0.2)
        task = asyncio.create_task(hub.run())
        try:
            await asyncio.wait_for(hub.listening.wait(), READ_S)
            async with await psycopg.AsyncConnection.connect(clean_db, autocommit=True) as c:
                await drop_listener(c)
                await until(lambda: hub.counters["listener_reconnects"] >= 1, READ_S, "a drop")
                await asyncio.wait_for(hub.listening.wait(), READ_S)
                with hub.subscribe() as sub:
                    payload = json.dumps({"id": 7, "depot_id": None, "type": "idling"})
                    await c.execute("SELECT pg_notify(%s, %s)", (store.CHANNEL, payload))
                    assert await asyncio.wait_for(sub.get(), READ_S) == payload
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


async def _got(sub: Subscription) -> dict[str, Any]:
    payload = await asyncio.wait_for(sub.get(), READ_S)
    assert payload is not None, "the stream ended"
    data: dict[str, Any] = json.loads(payload)
    return data


def test_alerts_announced_while_the_listener_was_away_still_reach_clients(
    clean_db: str, world: World
) -> None:
    with psycopg.connect(world.dsn, autocommit=True) as conn:
        f = add_fleet(conn, world)

    async def scenario() -> None:
        hub = Hub(clean_db, retry_initial_s=1.0, retry_max_s=1.0)
        task = asyncio.create_task(hub.run())
        try:
            await asyncio.wait_for(hub.listening.wait(), READ_S)
            with hub.subscribe() as sub:
                first = await asyncio.to_thread(raise_alert, clean_db, f, "idling")
                assert (await _got(sub))["id"] == first
                async with await psycopg.AsyncConnection.connect(clean_db, autocommit=True) as c:
                    await drop_listener(c)
                await until(lambda: hub.counters["listener_reconnects"] >= 1, READ_S, "a drop")
                missed = await asyncio.to_thread(raise_alert, clean_db, f, "overspeed", 5)
                assert not hub.listening.is_set()  # raised while nobody listened
                got = await _got(sub)
                assert (got["id"], got["event"]) == (missed, "open")
                assert hub.counters["replayed"] >= 2  # the lookback re-read the first too
                later = await asyncio.to_thread(raise_alert, clean_db, f, "unplanned_stop", 9)
                got = await _got(sub)
                assert got["id"] == later  # and the first was not sent twice
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


def test_a_reconnecting_client_gets_what_it_missed_once(api: Api) -> None:
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        ams = add_fleet(conn, api.world)
        rtm = second_depot(conn, api.world)
    dsn, token = api.world.dsn, api.tokens[Role.DISPATCHER]
    url = f"{api.url}/alerts/stream"

    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            params = {"depot_id": str(ams.depot_id), "access_token": token}
            first = await s.get(url, params=params)
            assert await block(first) == "retry: 3000\n: listening\n\n"
            seen = await asyncio.to_thread(raise_alert, dsn, ams, "overspeed")
            got = await next_alert(first)
            assert got["id"] == seen
            first.close()  # the connection drops; meanwhile:
            missed = await asyncio.to_thread(raise_alert, dsn, ams, "idling", 1)
            await asyncio.to_thread(raise_alert, dsn, rtm, "idling", 2)  # another depot

            def ack() -> None:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    store.acknowledge(conn, seen, "sam")

            await asyncio.to_thread(ack)
            again = await s.get(url, params=params, headers={"Last-Event-ID": str(got["seq"])})
            assert await block(again) == "retry: 3000\n: listening\n\n"
            replay = [await next_alert(again), await next_alert(again)]
            assert [(a["id"], a["event"]) for a in replay] == [
                (missed, "open"),
                (seen, "acknowledge"),
            ]
            assert replay[0]["seq"] < replay[1]["seq"]
            live = await asyncio.to_thread(raise_alert, dsn, ams, "silent_device", 3)
            assert (await next_alert(again))["id"] == live  # nothing replayed twice
            again.close()
            bad = await s.get(url, params=params, headers={"Last-Event-ID": "yesterday"})
            body = await bad.json()
            assert (bad.status, body["error"]["code"]) == (422, "bad_last_event_id")

    asyncio.run(scenario())


def test_shutting_down_ends_open_streams(clean_db: str, world: World) -> None:
    with psycopg.connect(world.dsn, autocommit=True) as conn:
        token = create_token(conn, "wall-screen", Role.SUPERVISOR)
    with ConnectionPool(clean_db, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        served = serve(make_app(pool))

        async def scenario() -> bytes:
            async with aiohttp.ClientSession() as s:
                resp = await s.get(f"{served.url}{PREFIX}/alerts/stream?access_token={token}")
                assert await block(resp) == "retry: 3000\n: listening\n\n"
                await asyncio.to_thread(stop, served)
                return await asyncio.wait_for(resp.content.read(), READ_S)

        assert asyncio.run(scenario()) == b""  # the stream ended; nothing more came


def test_a_client_that_fell_behind_is_told_how_many_events_it_lost(
    clean_db: str, world: World
) -> None:
    with psycopg.connect(world.dsn, autocommit=True) as conn:
        token = create_token(conn, "wall-screen", Role.DISPATCHER)
    with ConnectionPool(clean_db, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        app = make_app(pool)
        served = serve(app)
        hub = app[HUB]

        def burst() -> None:  # one loop callback: the stream cannot drain in between
            for i in range(hub.queue_size + 44):
                hub.publish(json.dumps({"id": i, "depot_id": world.depot_id, "type": "idling"}))

        async def scenario() -> None:
            async with aiohttp.ClientSession() as s:
                url = f"{served.url}{PREFIX}/alerts/stream"
                resp = await s.get(url, params={"access_token": token})
                assert await block(resp) == "retry: 3000\n: listening\n\n"
                served.loop.call_soon_threadsafe(burst)
                assert await block(resp) == 'event: dropped\ndata: {"dropped": 44}\n\n'
                assert (await next_alert(resp))["id"] == 44  # the oldest went
                resp.close()

        try:
            asyncio.run(scenario())
        finally:
            stop(served)
