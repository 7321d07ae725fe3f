"""Re-planning a day (``replace``) in the core, the API and the CLI, and the answer to a
plan the checker refused (real PostgreSQL, real sockets).

Day: 2 June 2026 at the Amsterdam depot, 09–17 local. Two vans of 30 kg with a driver
each and six 7 kg orders: one van cannot carry them all, so the plan uses both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import psycopg
import pytest
from aiohttp import web

from menara.cli import main
from oms_core import dispatch, fleet, orders, trips
from oms_core.api.errors import error_middleware
from oms_core.errors import IllegalTransition
from oms_core.states import OrderState
from tests.oms_core import DEPOT_LAT, DEPOT_LON, World, order_in, stock_of
from tests.oms_core.test_api import Api, api_for, serve, stop

pytestmark = pytest.mark.db
S = OrderState
Conn = psycopg.Connection[Any]
DAY = date(2026, 6, 2)
AMS = ZoneInfo("Europe/Amsterdam")


def reserved_order(conn: Conn, w: World, k: int) -> int:
    o = orders.create_order(
        conn,
        order_in(
            w,
            lat=DEPOT_LAT + 0.01 * k,
            lon=DEPOT_LON - 0.01 * k,
            window_start=datetime.combine(DAY, time(9), AMS),
            window_end=datetime.combine(DAY, time(17), AMS),
        ),
        actor="test",
    )
    orders.transition(conn, o.id, S.VERIFIED, actor="test")
    orders.transition(conn, o.id, S.RESERVED, actor="test")
    return o.id


def make_day(conn: Conn, w: World) -> list[int]:
    """Stock, two driven vans and six reserved orders; returns the order ids."""
    conn.execute("UPDATE stock SET on_hand = 1000")
    for n in (1, 2):
        van = fleet.add_vehicle(
            conn, plate=f"AMS-{n}", capacity_kg=30, capacity_m3=2, depot_id=w.depot_id
        )
        driver = fleet.add_driver(conn, name=f"driver {n}", shift_end=time(19))
        fleet.assign(conn, driver.id, van.id, DAY)
    return [reserved_order(conn, w, k) for k in range(6)]


def plan(conn: Conn, **options: Any) -> dispatch.DayPlan:
    return dispatch.plan_day(conn, DAY, time_limit_s=1.0, max_iterations=200, **options)


def snapshot(conn: Conn, w: World) -> tuple[Any, ...]:
    """Trips with stops, order states, audit length and stock: what a refusal must keep."""
    day_trips = [(t.id, t.state, t.stops) for t in trips.list_trips(conn, DAY)]
    states = conn.execute("SELECT id, state FROM orders ORDER BY id").fetchall()
    audit = conn.execute("SELECT count(*) FROM order_events").fetchone()
    return day_trips, states, audit, stock_of(conn, w.depot_id)


def on_trips(conn: Conn) -> dict[int, int]:
    """{order id: trip id} for the day's stored trips."""
    return {o: t.id for t in trips.list_trips(conn, DAY) for s in t.stops for o in s.order_ids}


@pytest.fixture
def day(world: World, conn: Conn) -> list[int]:
    return make_day(conn, world)


def test_replace_deletes_the_planned_trips_and_plans_their_orders_again(
    world: World, conn: Conn, day: list[int]
) -> None:
    first = plan(conn)
    assert len(first.trip_ids) == 2 and first.replaced == ()
    late = reserved_order(conn, world, 6)
    held = stock_of(conn, world.depot_id)

    again = plan(conn, replace=True)

    assert again.replaced == first.trip_ids
    assert set(again.trip_ids).isdisjoint(first.trip_ids)
    gone = conn.execute(
        "SELECT (SELECT count(*) FROM trips WHERE id = ANY(%(t)s)),"
        " (SELECT count(*) FROM stops WHERE trip_id = ANY(%(t)s))",
        {"t": list(first.trip_ids)},
    ).fetchone()
    assert gone == (0, 0)
    placed = on_trips(conn)
    assert sorted(placed) == sorted([*day, late]) == sorted(again.scheduled)
    assert set(placed.values()) == set(again.trip_ids)
    assert {orders.get_order(conn, o).state for o in placed} == {S.SCHEDULED}
    for oid in day:
        moves = [
            (e.actor, e.from_state, e.to_state, e.reason) for e in orders.audit_trail(conn, oid)
        ][-3:]
        old_trip = next(t for t in first.trip_ids if moves[0][3] == f"trip {t}")
        assert moves == [
            ("planner", "reserved", "scheduled", f"trip {old_trip}"),
            ("planner", "scheduled", "reserved", dispatch.REPLAN_REASON),
            ("planner", "reserved", "scheduled", f"trip {placed[oid]}"),
        ]
    assert stock_of(conn, world.depot_id) == held == {"A": (1000, 21), "B": (1000, 14)}


def test_a_replan_that_fails_midway_keeps_the_old_plan(
    world: World, conn: Conn, day: list[int]
) -> None:
    first = plan(conn)
    stops_before = [t.stops for t in trips.list_trips(conn, DAY)]
    victim, kept = day[0], day[1:]

    with psycopg.connect(world.dsn, autocommit=True) as other:

        def cancel_while_solving(_: str) -> None:
            if orders.get_order(other, victim).state == S.SCHEDULED:
                orders.transition(other, victim, S.CANCELLED, actor="customer")

        with pytest.raises(IllegalTransition, match="from cancelled to scheduled"):
            plan(conn, replace=True, progress=cancel_while_solving)

    assert orders.get_order(conn, victim).state == S.CANCELLED
    assert [t.stops for t in trips.list_trips(conn, DAY)] == stops_before
    assert sorted(on_trips(conn)) == sorted(day)
    assert set(on_trips(conn).values()) == set(first.trip_ids)
    for oid in kept:
        last = orders.audit_trail(conn, oid)[-1]
        assert (last.from_state, last.to_state) == ("reserved", "scheduled")
        assert orders.get_order(conn, oid).state == S.SCHEDULED
    assert stock_of(conn, world.depot_id) == {"A": (1000, 15), "B": (1000, 10)}


def test_replace_on_an_unplanned_day_just_plans_it(
    world: World, conn: Conn, day: list[int]
) -> None:
    made = plan(conn, replace=True)
    assert made.replaced == () and sorted(made.scheduled) == sorted(day)


def test_replace_is_refused_once_a_trip_was_dispatched_and_nothing_changes(
    world: World, conn: Conn, day: list[int]
) -> None:
    first = plan(conn)
    sent = first.trip_ids[0]
    trips.dispatch_trip(conn, sent, actor="desk")
    reserved_order(conn, world, 6)
    before = snapshot(conn, world)
    with pytest.raises(dispatch.DayAlreadyPlanned, match=f"trip {sent} is dispatched") as info:
        plan(conn, replace=True)
    assert f"trip {first.trip_ids[1]} " not in str(info.value)
    assert snapshot(conn, world) == before


def test_without_replace_a_planned_day_is_refused(world: World, conn: Conn, day: list[int]) -> None:
    plan(conn)
    before = snapshot(conn, world)
    with pytest.raises(dispatch.DayAlreadyPlanned, match="re-plan it with replace"):
        plan(conn)
    assert snapshot(conn, world) == before


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


def test_the_api_replaces_a_planned_day(api: Api) -> None:
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        ids = make_day(conn, api.world)
    body = {"date": DAY.isoformat(), "time_limit_s": 1}
    status, _, first = api.call("POST", "/plans", json=body)
    assert status == 201 and len(first["trips"]) == 2
    status, _, refused = api.call("POST", "/plans", json=body)
    assert (status, refused["error"]["code"]) == (409, "day_already_planned")
    status, _, again = api.call("POST", "/plans", json={**body, "replace": True})
    assert status == 201
    old = {t["id"] for t in first["trips"]}
    new = {t["id"] for t in again["trips"]}
    assert len(new) == 2 and old.isdisjoint(new)
    assert sorted(again["scheduled"]) == sorted(ids)
    status, _, listed = api.call("GET", f"/trips?day={DAY}")
    assert {t["id"] for t in listed["trips"]} == new


def test_menara_plan_replace(
    world: World,
    conn: Conn,
    day: list[int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MENARA_DB_DSN", world.dsn)
    monkeypatch.setenv("MENARA_PLAN_TIME_LIMIT_S", "1")
    assert main(["plan", "--date", DAY.isoformat()]) == 0
    old = sorted(set(on_trips(conn).values()))
    capsys.readouterr()
    assert main(["plan", "--date", DAY.isoformat(), "--replace"]) == 0
    out = capsys.readouterr().out
    assert f"replaced trips {', '.join(map(str, old))}" in out
    assert "2 trips, 6 orders scheduled, 0 left reserved" in out
    assert set(on_trips(conn).values()).isdisjoint(old)


def test_a_rejected_plan_answers_500_with_its_violations() -> None:
    async def refuse(request: web.Request) -> web.Response:
        raise dispatch.PlanRejected(["order 7 is planned twice", "van 2 is over 30 kg"])

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/plans", refuse)
    served = serve(app)

    async def post() -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.post(served.url + "/plans") as r:
            return r.status, await r.json()

    try:
        status, body = asyncio.run(post())
    finally:
        stop(served)
    assert status == 500
    assert body["error"]["code"] == "plan_rejected"
    assert "nothing was stored" in body["error"]["message"]
    assert body["error"]["details"] == [
        {"code": "violation", "message": "order 7 is planned twice"},
        {"code": "violation", "message": "van 2 is over 30 kg"},
    ]
