"""Webhooks, deliveries and depot contacts through the API (real sockets and database):
the secret shown once, URL and email checks, failures visible and retried, roles."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from oms_core.alerts.delivery import Deliverer
from oms_core.api import Role
from oms_core.api.context import Execution
from oms_core.api.webhooks import email_problem, url_problem
from oms_core.files import FileStore
from tests.oms_core.test_api import Api, api_for
from tests.oms_core.test_delivery import FAST, raise_alert, receiver, scene
from tests.polling import until
from tests.ports import free_port

pytestmark = pytest.mark.db


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


@pytest.fixture
def loopback_api(clean_db: str, tmp_path: Path) -> Iterator[Api]:
    """The API with webhook_allow_private on: the tests' receivers listen on loopback."""
    yield from api_for(
        clean_db, execution=Execution(FileStore(tmp_path), webhook_allow_private=True)
    )


def test_a_webhook_secret_is_shown_once(api: Api) -> None:
    d = api.world.depot_id
    body = {"url": "https://hooks.example.com/menara", "depot_id": d, "types": ["overspeed"]}
    status, headers, made = api.call("POST", "/webhooks", json=body)
    assert status == 201 and len(made["secret"]) >= 40  # 32 random bytes, base64
    assert headers["Location"].endswith(f"/webhooks/{made['id']}")
    shown = {k: v for k, v in made.items() if k != "secret"}
    assert shown == {**body, "id": made["id"], "purpose": "alerts", "active": True,
                     "created_at": made["created_at"]}  # fmt: skip
    status, _, read = api.call("GET", f"/webhooks/{made['id']}", role=Role.SUPERVISOR)
    assert (status, read) == (200, shown)
    assert api.call("GET", "/webhooks", role=Role.SUPERVISOR)[2] == {"webhooks": [shown]}

    given = api.call("POST", "/webhooks", json={"url": "http://x.test/h", "secret": "k" * 20})
    assert given[2]["secret"] == "k" * 20 and given[2]["types"] is None

    status, _, gone = api.call("DELETE", f"/webhooks/{made['id']}")
    assert (status, gone["active"]) == (200, False)
    assert api.call("GET", f"/webhooks/{made['id'] + 99}")[0] == 404


def test_bad_urls_emails_and_depots_are_refused_with_their_code(api: Api) -> None:
    d = api.world.depot_id
    for url in ("ftp://x.example/h", "https://", "HTTPS://x.example", "http://a b.example/"):
        status, _, err = api.call("POST", "/webhooks", json={"url": url})
        assert (status, err["error"]["code"]) == (422, "invalid_url"), url
    status, _, err = api.call("POST", "/webhooks", json={"url": "http://x.test", "depot_id": d + 9})
    assert (status, err["error"]["details"][0]["field"]) == (422, "/depot_id")
    status, _, err = api.call("POST", "/webhooks", json={"url": "http://x.test", "secret": "short"})
    assert (status, err["error"]["code"]) == (422, "invalid_value")
    for address in ("sam", "sam@example", "Sam <sam@example.org>", "a@b.org, c@d.org"):
        status, _, err = api.call("POST", f"/depots/{d}/contacts", json={"email": address})
        assert (status, err["error"]["code"]) == (422, "invalid_email"), address
    status, _, err = api.call("POST", "/webhooks", role=Role.SUPERVISOR, json={"url": "http://x"})
    assert (status, err["error"]["code"]) == (403, "forbidden")


def test_url_and_email_checks() -> None:
    assert url_problem("https://hooks.example.com:8443/a?b=c") is None
    assert url_problem("http://127.0.0.1:99999/") is not None  # port out of range
    assert email_problem("sam.o'neil+alerts@depot.example.org") is None
    assert email_problem("sam@@example.org") is not None


def test_depot_contacts_add_list_remove(api: Api) -> None:
    d = api.world.depot_id
    status, _, sam = api.call(
        "POST", f"/depots/{d}/contacts", json={"name": "Sam", "email": "sam@example.org"}
    )
    assert (status, sam["role"], sam["depot_id"]) == (201, "supervisor", d)
    dan = api.call(
        "POST", f"/depots/{d}/contacts", json={"email": "dan@example.org", "role": "dispatcher"}
    )[2]
    status, _, err = api.call("POST", f"/depots/{d}/contacts", json={"email": "sam@example.org"})
    assert (status, err["error"]["code"]) == (409, "contact_exists")
    listed = api.call("GET", f"/depots/{d}/contacts", role=Role.SUPERVISOR)[2]
    assert listed == {"contacts": [sam, dan]}
    assert api.call("DELETE", f"/depots/{d}/contacts/{sam['id']}")[2] == sam
    assert api.call("GET", f"/depots/{d}/contacts")[2] == {"contacts": [dan]}
    assert api.call("DELETE", f"/depots/{d}/contacts/{sam['id']}")[0] == 404
    assert api.call("GET", f"/depots/{d + 1}/contacts")[0] == 404
    assert api.call("POST", f"/depots/{d + 1}/contacts", json={"email": "x@y.org"})[0] == 404


def test_failed_deliveries_are_listed_and_retried(loopback_api: Api) -> None:
    api = loopback_api
    dead_url = f"http://127.0.0.1:{free_port()}/hook"
    hook = api.call("POST", "/webhooks", json={"url": dead_url, "secret": "s3cret-s3cret-s3cret"})
    hid = hook[2]["id"]
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        sc = scene(conn, api.world)
        aid = raise_alert(conn, api.world, sc)

    async def fail_then_recover() -> None:
        async with Deliverer(dsn=api.world.dsn, max_attempts=2, **FAST) as d:
            await until(lambda: d.counters["failed"] == 1, what="giving up")
            status, _, page = await api.acall(
                "GET", f"/webhooks/{hid}/deliveries?state=failed", Role.SUPERVISOR
            )
            assert status == 200 and page["next_cursor"] is None
            (failed,) = page["deliveries"]
            assert (failed["alert_id"], failed["attempts"], failed["channel"]) == (
                aid,
                2,
                "webhook",
            )
            assert "Connect" in failed["last_error"]
            assert (await api.acall("GET", f"/webhooks/{hid}/deliveries?state=pending"))[2] == {
                "deliveries": [],
                "next_cursor": None,
            }
            async with receiver() as rec:  # the receiver comes back at a new address
                with psycopg.connect(api.world.dsn, autocommit=True) as conn:
                    conn.execute("UPDATE webhooks SET url = %s WHERE id = %s", (rec.url, hid))
                status, _, again = await api.acall("POST", f"/deliveries/{failed['id']}/retry")
                assert (status, again["state"], again["attempts"]) == (200, "pending", 0)
                await until(lambda: d.counters["delivered"] == 1, what="the retried delivery")
                assert len(rec.got) == 1 and rec.signed == [True]
            status, _, err = await api.acall("POST", f"/deliveries/{failed['id']}/retry")
            assert (status, err["error"]["code"]) == (409, "not_failed")
            assert (await api.acall("POST", "/deliveries/999999/retry"))[0] == 404

    asyncio.run(fail_then_recover())


def test_delivery_pages_follow_the_cursor(api: Api) -> None:
    hid = api.call("POST", "/webhooks", json={"url": "http://x.test/h"})[2]["id"]
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        sc = scene(conn, api.world)
        made = [raise_alert(conn, api.world, sc, n=i) for i in range(5)]
    seen: list[int] = []
    cursor = ""
    while True:
        status, _, page = api.call("GET", f"/webhooks/{hid}/deliveries?limit=2{cursor}")
        assert status == 200
        seen += [row["alert_id"] for row in page["deliveries"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == made[::-1]  # newest first, each once
    everything = api.call("GET", f"/deliveries?channel=webhook&alert_id={made[0]}")[2]
    assert [row["alert_id"] for row in everything["deliveries"]] == [made[0]]
    assert api.call("GET", f"/webhooks/{hid + 1}/deliveries")[0] == 404
