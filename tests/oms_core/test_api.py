"""The OMS API over real sockets and the real database: the order flow and role scoping.

The app runs in its own thread and event loop (as it would in ``menara serve``); tests
talk to it with ``aiohttp.ClientSession`` over loopback.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web
from psycopg_pool import ConnectionPool

from oms_core.api import Role, create_token, make_app, revoke
from oms_core.api.auth import hash_token
from oms_core.api.spec import PREFIX
from tests.oms_core import DEPOT_LAT, DEPOT_LON, NOW, World, one, seed, stock_of

pytestmark = pytest.mark.db
Reply = tuple[int, dict[str, str], Any]


@dataclass(frozen=True)
class Api:
    """A running API: its base URL, a token per role and the seeded world."""

    url: str
    tokens: dict[Role, str]
    world: World

    def call(self, method: str, path: str, role: Role | None = Role.DISPATCHER, **kw: Any) -> Reply:
        """One request; returns (status, headers, parsed JSON body)."""
        return asyncio.run(self.acall(method, path, role, **kw))

    async def acall(
        self, method: str, path: str, role: Role | None = Role.DISPATCHER, **kw: Any
    ) -> Reply:
        headers = dict(kw.pop("headers", {}))
        if role is not None:
            headers.setdefault("Authorization", f"Bearer {self.tokens[role]}")
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, self.url + path, headers=headers, **kw) as r,
        ):
            return r.status, dict(r.headers), await r.json()


@dataclass
class Served:
    """An app served on a free loopback port from a background event loop."""

    url: str
    loop: asyncio.AbstractEventLoop
    runner: web.AppRunner
    thread: threading.Thread


def serve(app: web.Application) -> Served:
    """Start ``app`` on 127.0.0.1 with an OS-chosen port; returns once it listens."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(app)

    async def start() -> str:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    return Served(asyncio.run_coroutine_threadsafe(start(), loop).result(), loop, runner, thread)


def stop(served: Served) -> None:
    """Clean the app up and end its loop and thread."""
    asyncio.run_coroutine_threadsafe(served.runner.cleanup(), served.loop).result()
    served.loop.call_soon_threadsafe(served.loop.stop)
    served.thread.join()
    served.loop.close()


def api_for(dsn: str, **app_kw: Any) -> Iterator[Api]:
    """Seed the world, make one token per role and serve the API over a pool."""
    world = seed(dsn)  # truncating drivers cascades to api_tokens
    with psycopg.connect(dsn, autocommit=True) as conn:
        driver = one(conn, "INSERT INTO drivers (name) VALUES ('Dee')")
        tokens = {
            r: create_token(conn, f"{r}-desk", r, driver if r == Role.DRIVER else None)
            for r in Role
        }
    with ConnectionPool(dsn, min_size=1, max_size=4, kwargs={"autocommit": True}) as pool:
        served = serve(make_app(pool, now=lambda: NOW, **app_kw))
        try:
            yield Api(served.url + PREFIX, tokens, world)
        finally:
            stop(served)


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


def order_body(w: World, **changes: Any) -> dict[str, Any]:
    """A valid cash-on-delivery order (verifiable without a payment step): 3 A + 2 B."""
    start = NOW + timedelta(days=1, hours=1)
    body: dict[str, Any] = {
        "customer_id": w.customer_id,
        "depot_id": w.depot_id,
        "address_text": "Damrak 1, Amsterdam",
        "lat": DEPOT_LAT + 0.018,
        "lon": DEPOT_LON,
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=3)).isoformat(),
        "lines": [
            {"sku": "A", "qty": 3, "unit_price": "10.00"},
            {"sku": "B", "qty": 2, "unit_price": "2.50"},
        ],
        "payment_method": "cod",
    }
    body.update(changes)
    return body


def test_create_verify_read_list_cancel(api: Api) -> None:
    status, headers, created = api.call("POST", "/orders", json=order_body(api.world))
    assert status == 201
    assert headers["Location"] == f"/api/v1/orders/{created['id']}"
    assert created["state"] == "draft"
    assert created["total_amount"] == "35.00"
    assert [ln["sku"] for ln in created["lines"]] == ["A", "B"]
    assert datetime.fromisoformat(created["window_start"]) == NOW + timedelta(days=1, hours=1)

    status, _, result = api.call("POST", f"/orders/{created['id']}/verify")
    assert (status, result["verified"], result["problems"]) == (200, True, [])
    assert result["order"]["state"] == "verified"

    status, _, read = api.call("GET", f"/orders/{created['id']}", role=Role.SUPERVISOR)
    assert status == 200
    assert read == result["order"]

    status, _, cancelled = api.call(
        "POST", f"/orders/{created['id']}/cancel", json={"reason": "customer called"}
    )
    assert (status, cancelled["state"]) == (200, "cancelled")
    status, _, trail = api.call("GET", f"/orders/{created['id']}/events")
    assert status == 200
    assert [(e["from_state"], e["to_state"], e["actor"]) for e in trail["events"]] == [
        (None, "draft", "dispatcher-desk"),
        ("draft", "verified", "dispatcher-desk"),
        ("verified", "cancelled", "dispatcher-desk"),
    ]
    assert trail["events"][-1]["reason"] == "customer called"


def test_verify_reports_problems_and_keeps_the_draft(api: Api) -> None:
    past = (NOW - timedelta(hours=2)).isoformat()
    _, _, created = api.call(
        "POST", "/orders", json=order_body(api.world, window_start=past, lat=None, lon=None)
    )
    status, _, result = api.call("POST", f"/orders/{created['id']}/verify")
    assert status == 200
    assert result["verified"] is False
    assert {p["code"] for p in result["problems"]} == {"no_coordinates", "window_in_past"}
    assert result["order"]["state"] == "draft"


def test_list_filters_and_pages_with_a_cursor(api: Api) -> None:
    ids = [api.call("POST", "/orders", json=order_body(api.world))[2]["id"] for _ in range(5)]
    later = (NOW + timedelta(days=3)).isoformat()
    end = (NOW + timedelta(days=3, hours=2)).isoformat()
    other_day = api.call(
        "POST", "/orders", json=order_body(api.world, window_start=later, window_end=end)
    )[2]["id"]
    api.call("POST", f"/orders/{ids[0]}/cancel", json={"reason": "dup"})

    seen: list[int] = []
    cursor = ""
    for _ in range(10):
        status, _, page = api.call("GET", f"/orders?limit=2{cursor}", role=Role.SUPERVISOR)
        assert status == 200
        seen += [o["id"] for o in page["orders"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == sorted([*ids, other_day], reverse=True)

    day = (NOW + timedelta(days=1)).date().isoformat()
    _, _, page = api.call("GET", f"/orders?window_day={day}&state=draft&state=verified")
    assert [o["id"] for o in page["orders"]] == sorted(ids[1:], reverse=True)
    _, _, page = api.call("GET", f"/orders?state=cancelled&depot_id={api.world.depot_id}")
    assert [o["id"] for o in page["orders"]] == [ids[0]]
    _, _, page = api.call("GET", f"/orders?customer_id={api.world.customer_id + 1}")
    assert page == {"orders": [], "next_cursor": None}


def test_roles_scope_the_order_endpoints(api: Api) -> None:
    body = order_body(api.world)
    status, _, err = api.call("POST", "/orders", role=Role.SUPERVISOR, json=body)
    assert (status, err["error"]["code"]) == (403, "forbidden")
    oid = api.call("POST", "/orders", json=body)[2]["id"]
    for role in (Role.DRIVER, Role.CUSTOMER):
        for method, path in [("GET", f"/orders/{oid}"), ("GET", "/orders")]:
            assert api.call(method, path, role=role)[0] == 403
    status, _, err = api.call("POST", f"/orders/{oid}/cancel", role=Role.SUPERVISOR, json={})
    assert (status, err["error"]["code"]) == (403, "forbidden")
    assert api.call("GET", f"/orders/{oid}", role=Role.SUPERVISOR)[2]["state"] == "draft"


def test_missing_unknown_and_revoked_tokens_get_401(api: Api) -> None:
    status, _, err = api.call("GET", "/orders", role=None)
    assert (status, err["error"]["code"]) == (401, "unauthenticated")
    bad = {"Authorization": "Bearer mnr_not-a-token"}
    status, _, err = api.call("GET", "/orders", role=None, headers=bad)
    assert (status, err["error"]["code"]) == (401, "invalid_token")
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        assert revoke(conn, api.tokens[Role.SUPERVISOR]) is True
        assert revoke(conn, api.tokens[Role.SUPERVISOR]) is False
    status, _, err = api.call("GET", "/orders", role=Role.SUPERVISOR)
    assert (status, err["error"]["code"]) == (401, "invalid_token")
    assert api.call("GET", "/openapi.json", role=None)[0] == 200


def test_tokens_are_stored_only_as_hashes(api: Api) -> None:
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        rows: dict[str, str] = dict(
            conn.execute("SELECT role, token_hash FROM api_tokens").fetchall()
        )
        secret = create_token(conn, "second desk", Role.DISPATCHER)
        with pytest.raises(psycopg.errors.CheckViolation):
            create_token(conn, "driverless", Role.DRIVER)
    assert rows == {r.value: hash_token(t) for r, t in api.tokens.items()}
    assert all(t not in rows.values() for t in api.tokens.values())
    assert secret.startswith("mnr_") and len(secret) > 40
    assert (
        api.call("GET", "/orders", role=None, headers={"Authorization": f"Bearer {secret}"})[0]
        == 200
    )


def test_cancel_after_reservation_releases_stock(api: Api) -> None:
    from oms_core import orders

    oid = api.call("POST", "/orders", json=order_body(api.world))[2]["id"]
    api.call("POST", f"/orders/{oid}/verify")
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        orders.transition(conn, oid, "reserved", actor="test")
        assert stock_of(conn, api.world.depot_id) == {"A": (10, 3), "B": (5, 2)}
        status, _, body = api.call("POST", f"/orders/{oid}/cancel", json={"reason": "no"})
        assert (status, body["state"]) == (200, "cancelled")
        assert stock_of(conn, api.world.depot_id) == {"A": (10, 0), "B": (5, 0)}


def test_the_default_clock_is_aware_utc() -> None:
    from oms_core.api import utc_now

    assert utc_now().tzinfo is UTC


def test_reserve_takes_stock_or_says_why(api: Api) -> None:
    status, _, order = api.call("POST", "/orders", json=order_body(api.world))
    assert status == 201
    status, _, err = api.call("POST", f"/orders/{order['id']}/reserve")
    assert (status, err["error"]["code"]) == (409, "illegal_transition")  # still a draft
    assert api.call("POST", f"/orders/{order['id']}/verify")[2]["verified"] is True
    status, _, reserved = api.call("POST", f"/orders/{order['id']}/reserve")
    assert (status, reserved["state"]) == (200, "reserved")
    assert api.call("POST", f"/orders/{order['id']}/reserve", role=Role.SUPERVISOR)[0] == 403
    greedy = order_body(api.world, lines=[{"sku": "A", "qty": 99, "unit_price": "1.00"}])
    big = api.call("POST", "/orders", json=greedy)[2]
    assert api.call("POST", f"/orders/{big['id']}/verify")[2]["verified"] is True
    status, _, err = api.call("POST", f"/orders/{big['id']}/reserve")
    assert (status, err["error"]["code"]) == (409, "insufficient_stock")
