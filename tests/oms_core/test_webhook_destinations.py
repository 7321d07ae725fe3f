"""Webhooks reach public addresses only unless webhook_allow_private is on (issue 14,
item 7): a URL is refused at registration (400, saying why and which setting allows it)
and again at every send, on what its host name resolves to then; the POST goes only to
the addresses that were checked. Real API, database, receiver and sockets; the one
stand-in is a fixed DNS table (``Hosts``) so a public-looking name can answer loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from oms_core.alerts.delivery import Deliverer
from oms_core.alerts.destinations import AddressRefused, GuardedResolver
from oms_core.api.context import Execution
from oms_core.files import FileStore
from tests.oms_core.test_api import Api, api_for
from tests.oms_core.test_delivery import FAST, SECRET, raise_alert, receiver, scene
from tests.polling import until

pytestmark = pytest.mark.db

GUARDED = {**FAST, "allow_private": False}  # the default, as `menara serve` runs it


class Hosts(AbstractResolver):
    """DNS answering from a fixed table (any other name does not resolve)."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"{host} does not resolve")
        return [
            ResolveResult(
                hostname=host, host=a, port=port, proto=0, flags=socket.AI_NUMERICHOST,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
            )
            for a in self.table[host]
        ]  # fmt: skip

    async def close(self) -> None:
        return None


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


@pytest.fixture
def open_api(clean_db: str, tmp_path: Path) -> Iterator[Api]:
    ex = Execution(FileStore(tmp_path), webhook_allow_private=True)
    yield from api_for(clean_db, execution=ex)


def deliveries(dsn: str) -> dict[int, dict[str, Any]]:
    """Every delivery row by its webhook id."""
    with (
        psycopg.connect(dsn, autocommit=True) as conn,
        conn.cursor(row_factory=psycopg.rows.dict_row) as cur,
    ):
        rows = cur.execute("SELECT * FROM deliveries ORDER BY id").fetchall()
    return {int(r["webhook_id"]): r for r in rows}


def test_registration_refuses_non_public_hosts_with_400(api: Api) -> None:
    refused = {
        "http://127.0.0.1/h": "127.0.0.1 is a loopback address",
        "https://10.1.2.3:8443/h": "10.1.2.3 is a private address",
        "http://192.168.0.9/h": "a private address",
        "http://169.254.169.254/latest/meta-data/": "a cloud metadata address",
        "http://[fd00:ec2::254]/": "a cloud metadata address",
        "http://metadata.google.internal/computeMetadata/v1/": "a cloud metadata host",
        "http://[::1]:8080/h": "::1 is a loopback address",
        "http://[fc00::5]/h": "a private address",
        "http://[fe80::1]/h": "a link-local address",
        "http://0.0.0.0:9464/metrics": "the unspecified address",
        "http://224.0.0.1/h": "a multicast address",
        "http://localhost:9464/metrics": "localhost resolves to",  # 127.0.0.1 or ::1 …
    }
    for url, why in refused.items():
        status, _, err = api.call("POST", "/webhooks", json={"url": url})
        assert (status, err["error"]["code"]) == (400, "address_not_allowed"), url
        message = err["error"]["message"]
        assert why in message and "webhook_allow_private = true" in message, message
        assert err["error"]["details"][0]["field"] == "/url"
        assert "localhost" not in url or "a loopback address" in message  # … loopback
    assert api.call("GET", "/webhooks")[2] == {"webhooks": []}  # nothing refused was stored
    # A name that does not resolve now is checked again when sent.
    assert api.call("POST", "/webhooks", json={"url": "https://hooks.example.com/in"})[0] == 201


def test_registration_allows_them_when_the_setting_is_on(open_api: Api) -> None:
    for url in ("http://127.0.0.1:9/h", "http://localhost:9/h", "http://[::1]:9/h"):
        assert open_api.call("POST", "/webhooks", json={"url": url})[0] == 201, url


def test_a_name_that_resolves_to_loopback_when_sent_is_refused_unless_allowed(
    api: Api,
) -> None:
    dsn = api.world.dsn

    async def go() -> None:
        async with receiver() as rec:
            port = urlsplit(rec.url).port
            url = f"http://hooks.example.com:{port}/hook"  # registered: no answer here yet
            status, _, hook = await api.acall(
                "POST", "/webhooks", json={"url": url, "secret": SECRET}
            )
            assert status == 201
            with psycopg.connect(dsn, autocommit=True) as conn:
                raise_alert(conn, api.world, scene(conn, api.world))
            dns = Hosts({"hooks.example.com": ["127.0.0.1"]})  # ... and at send time
            async with Deliverer(dsn=dsn, resolver=dns, **GUARDED) as d:
                await until(lambda: d.counters["failed"] == 1, what="the refusal")
            row = deliveries(dsn)[hook["id"]]
            assert (row["state"], row["attempts"]) == ("failed", 1)  # not retried
            assert (
                "hooks.example.com resolves to 127.0.0.1, a loopback address" in (row["last_error"])
            )
            assert "webhook_allow_private" in row["last_error"]
            assert rec.got == [] and dns.asked == ["hooks.example.com"]

            # Allowed: the POST goes to the address the resolver answered.
            assert (await api.acall("POST", f"/deliveries/{row['id']}/retry"))[0] == 200
            async with Deliverer(dsn=dsn, resolver=dns, **FAST) as d:
                await until(lambda: d.counters["delivered"] == 1, what="the allowed delivery")
            assert len(rec.got) == 1 and rec.signed == [True]

    asyncio.run(go())


def test_hooks_registered_while_allowed_are_refused_when_sent_while_not(
    open_api: Api,
) -> None:
    dsn = open_api.world.dsn

    async def go() -> None:
        async with receiver() as rec:
            port = urlsplit(rec.url).port
            by_url = {}
            for url in (f"http://localhost:{port}/hook", f"http://127.0.0.1:{port}/hook"):
                made = await open_api.acall(
                    "POST", "/webhooks", json={"url": url, "secret": SECRET}
                )
                by_url[url] = made[2]["id"]
            with psycopg.connect(dsn, autocommit=True) as conn:
                raise_alert(conn, open_api.world, scene(conn, open_api.world))
            async with Deliverer(dsn=dsn, **GUARDED) as d:  # the system's own DNS
                await until(lambda: d.counters["failed"] == 2, what="two refusals")
            rows = deliveries(dsn)
            by_name = rows[by_url[f"http://localhost:{port}/hook"]]["last_error"]
            by_address = rows[by_url[f"http://127.0.0.1:{port}/hook"]]["last_error"]
            assert "localhost resolves to" in by_name and "loopback" in by_name
            assert "127.0.0.1 is a loopback address" in by_address
            assert rec.got == []

    asyncio.run(go())


def test_one_non_public_answer_refuses_the_name_and_metadata_names_never_resolve() -> None:
    dns = Hosts(
        {
            "mixed.example.com": ["8.8.8.8", "10.0.0.7"],
            "public.example.com": ["8.8.8.8", "2001:4860:4860::8888"],
            "metadata.google.internal": ["8.8.8.8"],
        }
    )
    guard = GuardedResolver(dns)

    async def go() -> None:
        with pytest.raises(AddressRefused, match=r"10\.0\.0\.7, a private address"):
            await guard.resolve("mixed.example.com", 80)
        public = await guard.resolve("public.example.com", 80)
        assert [r["host"] for r in public] == ["8.8.8.8", "2001:4860:4860::8888"]
        with pytest.raises(AddressRefused, match="cloud metadata host"):
            await guard.resolve("metadata.google.internal", 80)
        assert dns.asked == ["mixed.example.com", "public.example.com"]  # metadata: not asked

    asyncio.run(go())
