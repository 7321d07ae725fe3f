"""The driver app's outbox in a real browser: an action made offline waits on the phone
(through a reload, with the page served by its service worker), is sent once when the
phone is back online even when the first answer is lost, and a replay changes nothing;
a refused action says why, is never sent again, and can be discarded; a revoked token
sends the driver back to sign in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import BrowserContext, Page, Request, Route, expect

from oms_core.api import Role, create_token
from oms_core.api.auth import revoke
from tests.browser.test_driver_page import (
    APP,
    WAIT_MS,
    open_delivery,
    order_block,
    page_url,
    rows,
    sent_all,
    shot,
    sign,
    sign_in_link,
    stop,
    token,
)
from tests.oms_core.trip_world import TripWorld, serve_trip
from tests.polling import wait_for

pytestmark = [pytest.mark.db, pytest.mark.browser]


@pytest.fixture
def tw(clean_db: str, tmp_path: Path) -> Iterator[TripWorld]:
    yield from serve_trip(clean_db, tmp_path / "files")


def test_an_action_made_offline_is_sent_once_when_back_online(
    tw: TripWorld, phone: Page, phone_context: BrowserContext
) -> None:
    o1 = tw.order_ids[0]
    phone.goto(sign_in_link(tw))
    expect(phone.locator(".stop")).to_have_count(2, timeout=WAIT_MS)
    phone.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=WAIT_MS)
    cached = phone.evaluate(
        "caches.keys().then((names) => Promise.all(names.map((n) => caches.open(n)"
        ".then((c) => c.keys())))).then((all) => all.flat().map((r) => new URL(r.url).pathname))"
    )
    app_files = {"/driver/" if f.name == "index.html" else f"/driver/{f.name}"
                 for f in APP.iterdir() if f.name != "sw.js"}  # fmt: skip
    assert sorted(cached) == sorted(app_files), "every file the page needs opens offline"

    phone_context.set_offline(True)
    expect(phone.locator("#bar-net")).to_have_text("Offline")
    reloaded = phone.reload()  # no network: the service worker's copy opens the page
    assert reloaded is not None and reloaded.from_service_worker
    expect(phone.locator(".stop")).to_have_count(2, timeout=WAIT_MS)
    stop(phone, 1).get_by_role("button", name="I have arrived").click()
    expect(phone.locator("#bar-queue")).to_have_text("1 action waiting to send")
    open_delivery(phone, o1)
    phone.locator("input[name=recipient]").fill("Ada")
    sign(phone)
    phone.get_by_role("button", name="Save delivery").click()
    expect(phone.locator("#notice")).to_contain_text("Saved on the phone")
    expect(order_block(phone, o1).locator(".outcome-row")).to_have_text(
        "Delivered — waiting to send · 35.00"
    )
    expect(phone.locator("#bar-queue")).to_have_text("2 actions waiting to send")
    expect(phone.locator("#bar-state")).to_have_text("On the road")
    shot(phone, "offline")
    phone.reload()  # still offline: the outbox survives a reload
    expect(phone.locator("#bar-queue")).to_have_text("2 actions waiting to send", timeout=WAIT_MS)
    assert rows(tw, "SELECT count(*) FROM driver_actions") == [(0,)]

    bodies: list[Any] = []
    answers: list[dict[str, Any]] = []

    def lose_first_answer(route: Route, request: Request) -> None:
        bodies.append(request.post_data_json)
        if len(bodies) == 1:
            route.fetch()  # the server stores it, then the connection drops
            route.abort("connectionreset")
        else:
            answer = route.fetch()
            answers.append(answer.json())
            route.fulfill(response=answer)

    phone.route("**/api/v1/driver/orders/*/delivery", lose_first_answer)
    phone_context.set_offline(False)
    sent_all(phone)
    expect(order_block(phone, o1).locator(".outcome-row")).to_have_text(
        "Delivered · 35.00", timeout=WAIT_MS
    )
    shot(phone, "back-online")

    assert len(bodies) == 2 and bodies[0] == {**bodies[1], "sent_at": bodies[0]["sent_at"]}
    assert answers[0]["replayed"] is True
    key = bodies[0]["idempotency_key"]
    assert rows(tw, "SELECT count(*) FROM epods WHERE order_id = %s", (o1,)) == [(1,)]
    assert rows(tw, "SELECT kind FROM driver_actions WHERE idempotency_key = %s", (key,)) == [
        ("delivered",)
    ]
    assert rows(tw, "SELECT kind FROM driver_actions ORDER BY id") == [
        ("arrived",), ("delivered",)
    ]  # fmt: skip

    again = phone.request.post(  # the stored request once more, as a confused phone might
        f"{tw.api.url}/driver/orders/{o1}/delivery",
        data=bodies[0], headers={"Authorization": f"Bearer {token(phone)}"},
    )  # fmt: skip
    assert (again.status, again.json()["replayed"]) == (200, True)
    assert rows(tw, "SELECT count(*) FROM epods") == [(1,)]
    assert rows(tw, "SELECT count(*) FROM perfect_deliveries") == [(1,)]
    assert rows(tw, "SELECT count(*) FROM driver_actions") == [(2,)]


def test_a_refused_action_says_why_and_is_not_sent_again(tw: TripWorld, phone: Page) -> None:
    o1 = tw.order_ids[0]
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        eve = conn.execute("INSERT INTO drivers (name) VALUES ('Eve') RETURNING id").fetchone()
        assert eve is not None
        eve_token = create_token(conn, "eve phone", Role.DRIVER, eve[0])
    phone.goto(page_url(tw))
    field = phone.get_by_label("Sign-in link, code or token")
    message = phone.locator(".sign-in .message")
    phone.get_by_role("button", name="Sign in").click()
    expect(message).to_have_text("Paste the link, code or token first.")
    shot(phone, "sign-in")
    field.fill(tw.api.tokens[Role.DISPATCHER])
    phone.get_by_role("button", name="Sign in").click()
    expect(message).to_contain_text("This is not a driver's token")
    field.fill(eve_token)
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.locator(".empty")).to_contain_text("Hello, Eve")
    expect(phone.locator(".empty")).to_contain_text("No trip for you today.")
    shot(phone, "no-trip")
    phone.locator("#bar-menu").click()
    shot(phone, "menu")
    phone.get_by_role("button", name="Sign out").click()
    expect(message).to_have_text("You are signed out.")
    field.fill(sign_in_link(tw))  # the whole link pasted
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.locator(".stop")).to_have_count(2, timeout=WAIT_MS)

    now = datetime.now(UTC).isoformat()
    first = phone.request.post(  # another phone records the outcome first
        f"{tw.api.url}/driver/orders/{o1}/delivery",
        data={"idempotency_key": uuid.uuid4().hex, "at": now, "sent_at": now,
              "outcome": "failed", "reason_code": "customer_absent"},
        headers={"Authorization": f"Bearer {tw.driver_token}"},
    )  # fmt: skip
    assert first.status == 200
    tries: list[Any] = []
    phone.on("request", lambda r: tries.append(r.post_data_json) if "/delivery" in r.url else None)
    open_delivery(phone, o1)
    phone.locator("input[name=recipient]").fill("Ada")
    sign(phone)
    phone.get_by_role("button", name="Save delivery").click()
    expect(phone.locator(".form-error")).to_have_text("This order already has an outcome.")
    shot(phone, "epod-refused")
    phone.get_by_role("button", name="Close").click()
    problem = order_block(phone, o1).locator(".problem")
    expect(problem).to_contain_text("Not accepted: This order already has an outcome.")
    expect(phone.locator("#bar-queue")).to_have_text("1 not accepted: fix below")
    shot(phone, "refused")

    phone.reload()  # starting again sends the outbox: the refused action stays parked
    expect(problem).to_be_visible(timeout=WAIT_MS)
    stop(phone, 2).get_by_role("button", name="I have arrived").click()
    expect(phone.locator("#bar-queue")).to_have_text("1 not accepted: fix below", timeout=WAIT_MS)
    wait_for(
        lambda: rows(tw, "SELECT driver_arrival IS NOT NULL FROM stops WHERE id = %s",
                     (tw.stop_ids[1],)) == [(True,)],
        "the arrival tapped after the refused delivery",
    )  # fmt: skip
    assert len(tries) == 1, "a refused action is sent once"
    key = tries[0]["idempotency_key"]
    assert rows(tw, "SELECT count(*) FROM driver_actions WHERE idempotency_key = %s", (key,)) == [
        (0,)
    ]
    assert rows(tw, "SELECT outcome, recipient_name FROM epods") == [("failed", "")]

    phone.once("dialog", lambda d: d.accept())
    problem.get_by_role("button", name="Discard").click()
    expect(problem).to_have_count(0)
    expect(order_block(phone, o1).locator(".outcome-row")).to_have_text("Not delivered")
    expect(phone.locator("#bar-queue")).to_be_hidden()

    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        assert revoke(conn, token(phone))
    phone.locator("#bar-menu").click()
    phone.get_by_role("button", name="Refresh now").click()
    expect(message).to_have_text(
        "Your sign-in has ended. Ask the control room for a new sign-in link."
    )
    assert phone.evaluate("localStorage.getItem('menara.driver.token')") is None
    shot(phone, "signed-out")
