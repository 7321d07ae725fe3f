"""Every error class of the OMS API has one JSON shape, a stable code and a status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web
from psycopg_pool import ConnectionPool

from oms_core import orders
from oms_core.api.app import make_app
from oms_core.api.errors import error_middleware
from oms_core.api.spec import PREFIX
from oms_core.errors import InsufficientStock
from tests.oms_core.test_api import Api, api_for, order_body, serve, stop

pytestmark = pytest.mark.db
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db, max_body_bytes=4096)


def _error(reply: tuple[int, dict[str, str], Any]) -> tuple[int, str, list[Any]]:
    status, headers, body = reply
    assert headers["Content-Type"].startswith("application/json")
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    return status, body["error"]["code"], body["error"]["details"]


def test_malformed_json_is_400(api: Api) -> None:
    for raw in (b"{", b"", b"\xff\xfe", b'{"a": NaN}'):
        status, code, _ = _error(api.call("POST", "/orders", data=raw, headers=JSON))
        assert (status, code) == (400, "bad_json"), raw


def test_a_body_that_is_not_json_is_415(api: Api) -> None:
    reply = api.call("POST", "/orders", data=b"x=1", headers={"Content-Type": "text/plain"})
    assert _error(reply)[:2] == (415, "unsupported_media_type")


def test_unknown_fields_are_422_and_named(api: Api) -> None:
    body = order_body(api.world, colour="red")
    body["lines"][0]["discount"] = "1.00"
    status, code, details = _error(api.call("POST", "/orders", json=body))
    assert (status, code) == (422, "unknown_field")
    assert {(d["code"], d["field"]) for d in details} == {
        ("unknown_field", "/colour"),
        ("unknown_field", "/lines/0/discount"),
    }


def test_wrong_types_and_missing_fields_are_422_with_every_problem(api: Api) -> None:
    body = order_body(api.world, customer_id="1", window_end="tomorrow", payment_method="card")
    del body["lines"]
    status, code, details = _error(api.call("POST", "/orders", json=body))
    assert (status, code) == (422, "missing_field")
    assert {(d["code"], d["field"]) for d in details} == {
        ("missing_field", "/lines"),
        ("wrong_type", "/customer_id"),
        ("invalid_value", "/window_end"),
        ("invalid_value", "/payment_method"),
    }
    status, code, details = _error(api.call("POST", "/orders", json=[1, 2]))
    assert (status, code, details[0]["field"]) == (422, "wrong_type", "/")


def test_domain_validation_is_422_with_the_problem_list(api: Api) -> None:
    body = order_body(api.world, customer_id=999, lines=[{"sku": "Z", "qty": 1, "unit_price": "1"}])
    status, code, details = _error(api.call("POST", "/orders", json=body))
    assert (status, code) == (422, "invalid_order")
    assert {d["code"] for d in details} == {"unknown_customer", "unknown_sku"}
    assert api.call("GET", "/orders")[2]["orders"] == []  # nothing half-written


def test_oversized_body_is_413(api: Api) -> None:
    body = order_body(api.world, instructions="x" * 1900)
    body["address_text"] = "y" * 500
    big = json.dumps({**body, "lines": body["lines"] * 40}).encode()
    assert len(big) > 4096
    status, code, _ = _error(api.call("POST", "/orders", data=big, headers=JSON))
    assert (status, code) == (413, "body_too_large")


def test_not_found_is_404(api: Api) -> None:
    for method, path in [
        ("GET", "/orders/12345"),
        ("GET", "/orders/12345/events"),
        ("POST", "/orders/12345/verify"),
        ("GET", "/orders/abc"),
        ("GET", f"/orders/{2**63}"),
        ("GET", "/nothing-here"),
    ]:
        assert _error(api.call(method, path))[:2] == (404, "not_found"), path
    status, code, _ = _error(api.call("POST", "/orders/12345/cancel", json={"reason": "x"}))
    assert (status, code) == (404, "not_found")


def test_wrong_method_is_405_with_allow(api: Api) -> None:
    status, headers, body = api.call("DELETE", "/orders")
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")
    assert set(headers["Allow"].split(",")) == {"GET", "POST"}


def test_bad_query_parameters_are_422(api: Api) -> None:
    for query, field in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("state=lost", "state"),
        ("window_day=2026-13-01", "window_day"),
        ("sort=id", "sort"),
        ("limit=1&limit=2", "limit"),
    ]:
        status, _, details = _error(api.call("GET", f"/orders?{query}"))
        assert status == 422, query
        assert [d["field"] for d in details] == [field], query
    assert _error(api.call("GET", "/orders?cursor=abc"))[:2] == (422, "invalid_value")


def test_illegal_transition_is_409_naming_legal_next_states(api: Api) -> None:
    oid = api.call("POST", "/orders", json=order_body(api.world))[2]["id"]
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        for to in ("verified", "reserved", "scheduled", "dispatched"):
            orders.transition(conn, oid, to, actor="test")
    status, code, details = _error(api.call("POST", f"/orders/{oid}/cancel", json={"reason": "x"}))
    assert (status, code) == (409, "illegal_transition")
    assert details == [
        {"from": "dispatched", "to": "cancelled", "legal_next": ["out_for_delivery"]}
    ]
    status, code, details = _error(api.call("POST", f"/orders/{oid}/verify"))
    assert (status, code, details[0]["legal_next"]) == (
        409,
        "illegal_transition",
        ["out_for_delivery"],
    )


def _serve_bare(handler: Any) -> tuple[int, dict[str, str], Any]:
    """POST to a one-route app behind the error middleware and return the reply."""
    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/x", handler)
    served = serve(app)
    try:
        return asyncio.run(_post(served.url + "/x"))
    finally:
        stop(served)


async def _post(url: str) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as s, s.post(url) as r:
        return r.status, dict(r.headers), await r.json()


def test_insufficient_stock_is_409_with_the_numbers() -> None:
    # No endpoint of this slice reserves stock yet; the mapping is the middleware's.
    async def reserve(request: web.Request) -> web.Response:
        raise InsufficientStock("A", 1, 11, 10)

    status, code, details = _error(_serve_bare(reserve))
    assert (status, code) == (409, "insufficient_stock")
    assert details == [{"sku": "A", "depot_id": 1, "wanted": 11, "available": 10}]


def test_unhandled_errors_are_500_without_internals(api: Api) -> None:
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret dsn postgresql://user:pw@db/x")

    reply = _serve_bare(boom)
    assert _error(reply) == (500, "internal_error", [])
    assert "secret" not in json.dumps(reply[2])
    # The real app too: a pool that was never opened fails inside psycopg_pool.
    pool: ConnectionPool[Any] = ConnectionPool(api.world.dsn, open=False)
    served = serve(make_app(pool))
    try:
        reply = Api(served.url + PREFIX, api.tokens, api.world).call("GET", "/orders")
    finally:
        stop(served)
    assert _error(reply) == (500, "internal_error", [])
    assert "pool" not in json.dumps(reply[2]).lower()


def test_a_lone_surrogate_is_400_naming_the_field_and_nothing_is_stored(api: Api) -> None:
    # Valid JSON syntax, but "\ud800" alone is no character: PostgreSQL cannot store it.
    customers = api.call("GET", "/customers")[2]["customers"]
    for path, raw, field in [
        ("/customers", b'{"name": "a\\ud800b"}', "/name"),
        ("/customers", b'{"name": "Bea", "phone": "\\udfff"}', "/phone"),
        ("/customers", b'{"\\ud83dx": 1, "name": "Bea"}', "/\\ud83dx"),
        ("/orders", json.dumps(order_body(api.world, instructions="\udc00")).encode(), ""),
        ("/orders/import", json.dumps([order_body(api.world, lat="\ud800")]).encode(), ""),
    ]:
        status, code, _ = _error(reply := api.call("POST", path, data=raw, headers=JSON))
        assert (status, code) == (400, "bad_json"), (path, raw)
        assert "lone surrogate" in reply[2]["error"]["message"]
        assert field in reply[2]["error"]["message"]
    assert api.call("GET", "/customers")[2]["customers"] == customers
    assert api.call("GET", "/orders")[2]["orders"] == []
    # A proper pair (one emoji) is text, and is stored.
    status, _, made = api.call(
        "POST", "/customers", data=b'{"name": "\\ud83d\\ude00"}', headers=JSON
    )
    assert (status, made["name"]) == (201, "\U0001f600")


def test_deep_nesting_is_400_never_a_recursion_error(api: Api) -> None:
    deepest = b"[" * 2000 + b"]" * 2000  # past Python's recursion limit (this app takes 4 KiB)
    deep = b'{"name": ' + b"[" * 40 + b"]" * 40 + b"}"  # parses, but past MAX_JSON_DEPTH
    for path in ("/customers", "/orders", "/orders/import"):
        for raw in (deepest, deep):
            status, code, _ = _error(reply := api.call("POST", path, data=raw, headers=JSON))
            assert (status, code) == (400, "bad_json"), (path, raw[:12])
            assert "nested deeper than 32 levels" in reply[2]["error"]["message"]
