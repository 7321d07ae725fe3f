"""A database outage is 503 with Retry-After on the API and the public tracking pages,
and the same requests succeed once it is back: the connections really break (a TCP
proxy to PostgreSQL that the test cuts), nothing is mocked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import psycopg
import pytest

from oms_core.api import Role, create_token, make_app
from oms_core.api.spec import PREFIX
from tests.oms_core import NOW, seed
from tests.oms_core.test_api import Api, order_body, serve, stop
from tests.polling import wait_for
from tests.proxy import TcpProxy

pytestmark = pytest.mark.db
Reply = tuple[int, dict[str, str], bytes]


@pytest.fixture
def api(clean_db: str, pg_proxy: TcpProxy) -> Iterator[Api]:
    """The API on its own pool (as ``menara serve`` runs it) through the proxy."""
    world = seed(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        tokens = {Role.DISPATCHER: create_token(conn, "desk", Role.DISPATCHER)}
    served = serve(make_app(pg_proxy.dsn(clean_db), now=lambda: NOW, db_timeout_s=1.0))
    try:
        yield Api(served.url + PREFIX, tokens, world)
    finally:
        stop(served)


def fetch(url: str, **headers: str) -> Reply:
    async def go() -> Reply:
        async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
            return r.status, dict(r.headers), await r.read()

    return asyncio.run(go())


def test_a_lost_database_is_503_with_retry_after_then_recovers(
    api: Api, pg_proxy: TcpProxy
) -> None:
    status, _, order = api.call("POST", "/orders", json=order_body(api.world))
    assert status == 201
    root = api.url.removesuffix(PREFIX)
    bearer = f"Bearer {api.tokens[Role.DISPATCHER]}"
    urls = {
        "orders": f"{api.url}/orders",  # authenticated: the token lookup needs the database
        "track": f"{api.url}/track/{order['public_token']}",  # public JSON
        "page": f"{root}/t/{order['public_token']}",  # the customer's page
    }

    def all_answer(status: int) -> bool:
        return all(fetch(u, Authorization=bearer)[0] == status for u in urls.values())

    assert all_answer(200)
    pg_proxy.cut()  # the pooled connections break, new ones are refused
    for name, url in urls.items():
        for _ in range(2):  # a broken pooled connection, then no connection within 1 s
            status, headers, body = fetch(url, Authorization=bearer)
            assert status == 503, (name, body)
            assert headers["Retry-After"] == "5", name
            assert b'"database_unavailable"' in body, name
    pg_proxy.restore()
    wait_for(lambda: all_answer(200), "the API to answer again once the database is back", 15)
