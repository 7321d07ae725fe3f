"""The customer's tracking answer over real sockets: no API token, only the customer's
own order, no internal ids, one 404 for every link that opens nothing, and per state
the timeline, the arrival window, the van (only while this customer is next) and the
proof of delivery with its images served only to this order's link."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from oms_core import orders
from oms_core.api import Role
from oms_core.api.tracking import TEXTS, eta_window
from oms_core.states import OrderState
from tests.oms_core import DEPOT_LAT, DEPOT_LON, NOW, one
from tests.oms_core.test_api import Api, api_for, order_body
from tests.oms_core.test_driver_api import action, delivered, drive, png, upload
from tests.oms_core.trip_world import STOP1, STOP2, TRACKER, TripWorld, serve_trip

pytestmark = pytest.mark.db
ARRIVAL = NOW + timedelta(days=1, hours=2)
MIDWAY = ((STOP1[0] + STOP2[0]) / 2, (STOP1[1] + STOP2[1]) / 2)  # 1.4 km from either


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


@pytest.fixture
def tw(clean_db: str, tmp_path: Path) -> Iterator[TripWorld]:
    yield from serve_trip(clean_db, tmp_path / "files")


def _keys(value: Any) -> set[str]:
    """Every key at any depth of a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _schedule(api: Api, order: dict[str, Any]) -> None:
    """Verify and reserve through the API, then plan one stop for it by hand."""
    oid = order["id"]
    assert api.call("POST", f"/orders/{oid}/verify")[2]["verified"] is True
    assert api.call("POST", f"/orders/{oid}/reserve")[0] == 200
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        vehicle = one(
            conn,
            "INSERT INTO vehicles (plate, capacity_kg, capacity_m3) VALUES ('V-1', 500, 5)",
        )
        trip = one(
            conn,
            "INSERT INTO trips (vehicle_id, depot_id, day, planned_departure, planned_return)"
            " VALUES (%s, %s, %s, %s, %s)",
            (vehicle, api.world.depot_id, ARRIVAL.date(), ARRIVAL - timedelta(hours=1),
             ARRIVAL + timedelta(hours=1)),
        )  # fmt: skip
        stop = one(
            conn,
            "INSERT INTO stops (trip_id, seq, lat, lon, planned_arrival, planned_departure)"
            " VALUES (%s, 1, %s, %s, %s, %s)",
            (trip, DEPOT_LAT + 0.018, DEPOT_LON, ARRIVAL, ARRIVAL + timedelta(minutes=10)),
        )
        conn.execute("INSERT INTO stop_orders (stop_id, order_id) VALUES (%s, %s)", (stop, oid))
        orders.transition(conn, oid, OrderState.SCHEDULED, actor="planner")


def track(tw: TripWorld, n: int, lang: str = "en") -> dict[str, Any]:
    status, headers, page = tw.api.call("GET", f"/track/{tw.tracking[n]}?lang={lang}", role=None)
    assert status == 200, page
    assert headers["Cache-Control"] == "no-store"
    answer: dict[str, Any] = page
    return answer


def steps(page: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(s["step"], s["done"]) for s in page["timeline"]]


def fix(tw: TripWorld, at: datetime, pos: tuple[float, float], device: str = TRACKER) -> None:
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO positions (device_id, fix_time, received_time, lat, lon, valid,"
            " transport, protocol) VALUES (%s, %s, %s, %s, %s, true, 'test', 'test')",
            (device, at, at, pos[0], pos[1]),
        )


def sql(tw: TripWorld, query: str, params: tuple[Any, ...] = ()) -> None:
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        conn.execute(query, params)


def fetch_raw(url: str) -> tuple[int, dict[str, str], bytes]:
    async def go() -> tuple[int, dict[str, str], bytes]:
        async with aiohttp.ClientSession() as s, s.get(url) as r:
            return r.status, dict(r.headers), await r.read()

    return asyncio.run(go())


def test_a_draft_order_shows_its_window_and_no_stop(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    status, headers, page = api.call("GET", f"/track/{order['public_token']}", role=None)
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert page["timeline"][0]["at"] is not None
    assert page == {
        "tracking_number": order["tracking_number"],
        "state": "draft",
        "state_label": "Pesanan diterima",  # the customer's language: Bahasa Indonesia
        "language": "id",
        "time_zone": "Europe/Amsterdam",
        "window_start": order["window_start"],
        "window_end": order["window_end"],
        "address_text": "Damrak 1, Amsterdam",
        "total_amount": "35.00",
        "payment_state": "cod_pending",
        "payment_label": "Bayar di tempat (COD)",
        "notice": None,
        "stop": None,
        "timeline": [
            {"step": "received", "label": "Pesanan diterima",
             "at": page["timeline"][0]["at"], "done": True},
            *({"step": s, "label": TEXTS["id"]["step"][s], "at": None, "done": False}
              for s in ("confirmed", "scheduled", "out_for_delivery", "arrived", "delivered")),
        ],
        "eta": None,
        "vehicle": None,
        "stops_before": None,
        "epod": None,
        "complaints": [],
        "complaints_left": 5,
    }  # fmt: skip


def test_the_language_follows_the_customer_unless_the_link_asks(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    token = order["public_token"]
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        conn.execute("UPDATE customers SET language = 'en'")
    assert api.call("GET", f"/track/{token}", role=None)[2]["state_label"] == "Order received"
    page = api.call("GET", f"/track/{token}?lang=id", role=None)[2]
    assert (page["language"], page["state_label"]) == ("id", "Pesanan diterima")
    status, _, body = api.call("GET", f"/track/{token}?lang=fr", role=None)
    assert (status, body["error"]["details"][0]["field"]) == (422, "lang")


def test_a_scheduled_order_shows_its_planned_then_actual_arrival(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    _schedule(api, order)
    status, _, page = api.call("GET", f"/track/{order['public_token']}?lang=en", role=None)
    assert (status, page["state"], page["state_label"]) == (200, "scheduled", "Delivery scheduled")
    assert datetime.fromisoformat(page["stop"]["planned_arrival"]) == ARRIVAL
    assert page["stop"]["actual_arrival"] is None
    assert page["eta"] is None  # a window is promised once the goods are loaded
    assert steps(page)[:4] == [("received", True), ("confirmed", True), ("scheduled", True),
                               ("out_for_delivery", False)]  # fmt: skip

    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        conn.execute("UPDATE stops SET actual_arrival = %s", (ARRIVAL + timedelta(minutes=3),))
    _, _, page = api.call("GET", f"/track/{order['public_token']}", role=None)
    arrived = datetime.fromisoformat(page["stop"]["actual_arrival"])
    assert arrived == ARRIVAL + timedelta(minutes=3)


def test_an_unplanned_order_is_no_longer_scheduled_on_its_timeline(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    _schedule(api, order)
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        orders.transition(conn, order["id"], OrderState.RESERVED, actor="planner")
    page = api.call("GET", f"/track/{order['public_token']}?lang=en", role=None)[2]
    assert (page["state_label"], page["stop"]) == ("Being prepared", None)
    assert ("scheduled", False) in steps(page)


def test_the_page_holds_no_internal_ids_and_the_token_only_in_its_file_links(
    tw: TripWorld,
) -> None:
    _, sig = upload(tw, png())
    body = delivered(sig["sha256"])
    assert drive(tw, "POST", f"/driver/orders/{tw.order_ids[0]}/delivery", body)[0] == 200
    page = track(tw, 0)
    assert not {k for k in _keys(page) if k == "id" or k.endswith("_id")}
    assert str(page).count(tw.tracking[0]) == 1
    assert page["epod"]["signature_url"] == f"/t/{tw.tracking[0]}/files/{sig['sha256']}"


def test_unknown_and_malformed_links_get_one_and_the_same_404(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    token = order["public_token"]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    answers = [
        api.call("GET", f"/track/{t}", role=None)
        for t in (flipped, "x" * 30, "short", "a" * 65, "bad%20token%20with%20spaces",
                  f"{flipped}?lang=xx", f"{flipped}?junk=1")
    ]  # fmt: skip
    assert {status for status, _, _ in answers} == {404}
    assert len({str(body) for _, _, body in answers}) == 1
    assert answers[0][2]["error"]["code"] == "not_found"


def test_tracking_numbers_open_nothing(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    number = order["tracking_number"]
    for path in (f"/track?number={number}", f"/track/{number}"):
        status, _, body = api.call("GET", path, role=None)
        assert (status, body["error"]["code"]) == (404, "not_found")


def test_customer_tokens_open_tracking_and_nothing_else(api: Api) -> None:
    _, _, order = api.call("POST", "/orders", json=order_body(api.world))
    status, _, page = api.call("GET", f"/track/{order['public_token']}", role=Role.CUSTOMER)
    assert (status, page["tracking_number"]) == (200, order["tracking_number"])
    for method, path in (("GET", f"/orders/{order['id']}"), ("GET", "/orders")):
        status, _, body = api.call(method, path, role=Role.CUSTOMER)
        assert (status, body["error"]["code"]) == (403, "forbidden")


def test_every_label_exists_in_both_languages() -> None:
    def shape(texts: Any) -> Any:
        return {k: shape(v) for k, v in texts.items()} if isinstance(texts, dict) else None

    assert shape(TEXTS["en"]) == shape(TEXTS["id"])
    for lang in ("en", "id"):
        assert set(TEXTS[lang]["state"]) == {s.value for s in OrderState}
        assert all(label[0].isupper() for label in TEXTS[lang]["state"].values())


@pytest.mark.parametrize(
    ("eta", "width", "window"),
    [
        ("10:00", 60, ("09:30", "10:30")),
        ("10:07", 60, ("09:30", "10:30")),  # 09:37 rounds to the nearest quarter
        ("10:08", 60, ("09:45", "10:45")),
        ("10:00", 45, ("09:30", "10:15")),  # 22.5 min before: 09:37:30 -> 09:30
        ("10:00", 50, ("09:30", "10:15")),  # 50 min is 3 quarters
        ("00:05", 60, ("23:30", "00:30")),
    ],
)
def test_the_arrival_window_is_in_quarter_hours_around_the_eta(
    eta: str, width: int, window: tuple[str, str]
) -> None:
    at = datetime.fromisoformat(f"2026-06-01T{eta}:00+07:00")
    start, end = eta_window(at, width)
    assert (start.strftime("%H:%M"), end.strftime("%H:%M")) == window
    assert start.utcoffset() == timedelta(hours=7)


def test_out_for_delivery_shows_the_live_window_and_the_van_to_the_next_stop_only(
    tw: TripWorld,
) -> None:
    assert drive(tw, "POST", f"/driver/trips/{tw.trip_id}/departed", action())[0] == 200
    eta = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=12)
    sql(tw, "UPDATE stops SET eta = %s WHERE id = %s", (eta, tw.stop_ids[0]))
    fix(tw, datetime.now(UTC) - timedelta(seconds=20), MIDWAY)

    first = track(tw, 0)
    assert (first["state"], first["state_label"]) == ("out_for_delivery", "Out for delivery")
    assert first["eta"] == {"at": eta.isoformat(), **_window(eta), "live": True}
    assert first["stops_before"] == 0
    van = first["vehicle"]
    assert (van["lat"], van["lon"]) == (round(MIDWAY[0], 5), round(MIDWAY[1], 5))
    assert 1300 < van["distance_m"] < 1500
    assert van["map_url"].startswith("https://www.openstreetmap.org/?mlat=")
    assert steps(first)[3:] == [("out_for_delivery", True), ("arrived", False),
                                ("delivered", False)]  # fmt: skip

    second = track(tw, 1)  # stop 2 comes after stop 1: no van, no stop 1 address
    assert (second["vehicle"], second["stops_before"]) == (None, 1)
    assert second["eta"]["live"] is False  # the tower has no ETA for it yet: the plan
    assert "Damrak" not in str(second) and str(round(MIDWAY[0], 5)) not in str(second)


def _window(eta: datetime) -> dict[str, str]:
    start, end = eta_window(eta, 60)
    return {"window_start": start.isoformat(), "window_end": end.isoformat()}


def test_the_newest_fix_of_tracker_or_phone_counts_and_old_ones_do_not(tw: TripWorld) -> None:
    sql(tw, "UPDATE drivers SET phone_device_id = 'PHONE1' WHERE id = %s", (tw.driver_id,))
    drive(tw, "POST", f"/driver/trips/{tw.trip_id}/departed", action())
    now = datetime.now(UTC)
    fix(tw, now - timedelta(hours=2), MIDWAY)  # yesterday's news
    assert track(tw, 0)["vehicle"] is None
    fix(tw, now - timedelta(minutes=3), (MIDWAY[0] + 0.001, MIDWAY[1]))
    fix(tw, now - timedelta(minutes=1), MIDWAY, device="PHONE1")
    van = track(tw, 0)["vehicle"]
    assert (van["lat"], datetime.fromisoformat(van["at"])) == (
        round(MIDWAY[0], 5), now - timedelta(minutes=1))  # fmt: skip


def test_after_the_van_left_the_page_says_so_and_the_next_customer_sees_it(
    tw: TripWorld,
) -> None:
    s1 = tw.stop_ids[0]
    arrived = drive(tw, "POST", f"/driver/stops/{s1}/arrived", action(pos=STOP1))
    assert arrived[0] == 200
    fix(tw, datetime.now(UTC) - timedelta(seconds=30), STOP1)
    page = track(tw, 0)
    assert (page["state_label"], page["notice"]) == ("The driver has arrived", None)
    assert page["vehicle"] is not None  # at this customer's own door
    assert track(tw, 1)["vehicle"] is None  # another customer's door: never shown

    left = datetime.now(UTC)
    sql(tw, "UPDATE stops SET actual_departure = %s WHERE id = %s", (left, s1))
    page = track(tw, 0)
    assert page["state"] == "arrived"
    assert page["state_label"] == "The driver has left"
    assert page["notice"] == TEXTS["en"]["departed_note"]
    assert page["vehicle"] is None and page["eta"] is None
    assert steps(page)[4:] == [("arrived", True), ("departed", True), ("delivered", False)]
    assert page["timeline"][5]["at"] == left.isoformat()
    assert track(tw, 0, "id")["state_label"] == "Kurir sudah meninggalkan alamat Anda"

    # The van is still by stop 1's door: stop 2 is next, but the van is not shown there.
    assert track(tw, 1)["vehicle"] is None
    fix(tw, datetime.now(UTC) - timedelta(seconds=5), MIDWAY)
    second = track(tw, 1)
    assert second["stops_before"] == 0 and second["vehicle"]["lat"] == round(MIDWAY[0], 5)


def test_a_delivered_order_shows_its_proof_with_signature_and_photos(tw: TripWorld) -> None:
    o1 = tw.order_ids[0]
    _, sig = upload(tw, png())
    _, photo = upload(tw, png((64, 48), "red"), "door.png")
    body = delivered(sig["sha256"], (photo["sha256"],), recipient="Ada Lovelace")
    assert drive(tw, "POST", f"/driver/orders/{o1}/delivery", body)[0] == 200
    page = track(tw, 0)
    assert (page["state"], page["state_label"]) == ("delivered", "Delivered")
    assert (page["eta"], page["vehicle"], page["stops_before"]) == (None, None, None)
    path = ("received", "confirmed", "scheduled", "out_for_delivery", "arrived", "delivered")
    assert steps(page) == [(s, True) for s in path]
    epod = page["epod"]
    token = tw.tracking[0]
    assert epod == {
        "outcome": "delivered", "label": "Delivered", "recipient_name": "Ada Lovelace",
        "at": epod["at"], "reason_code": None, "reason_label": None,
        "lines": [{"sku": "A", "name": "A", "qty": 3, "delivered_qty": 3},
                  {"sku": "B", "name": "B", "qty": 2, "delivered_qty": 2}],
        "signature_url": f"/t/{token}/files/{sig['sha256']}",
        "photo_urls": [f"/t/{token}/files/{photo['sha256']}"],
    }  # fmt: skip
    assert abs(datetime.fromisoformat(epod["at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    root = tw.api.url.removesuffix("/api/v1")
    status, headers, data = fetch_raw(root + epod["signature_url"])
    assert (status, headers["Content-Type"], data) == (200, "image/png", png())
    assert headers["Cache-Control"] == "no-store" and "nosniff" in str(headers)
    assert fetch_raw(root + epod["photo_urls"][0])[2] == png((64, 48), "red")

    sql(tw, "UPDATE orders SET state = 'completed' WHERE id = %s", (o1,))
    assert track(tw, 0)["state_label"] == "Delivered"  # closed, but delivered is what counts


def test_a_failed_delivery_shows_its_reason_in_the_customers_language(tw: TripWorld) -> None:
    body = action(pos=STOP2, outcome="failed", reason_code="customer_absent")
    assert drive(tw, "POST", f"/driver/orders/{tw.order_ids[1]}/delivery", body)[0] == 200
    page = track(tw, 1, "id")
    assert (page["state"], page["state_label"]) == ("failed", "Pengiriman gagal")
    assert steps(page)[-1] == ("failed", True)
    assert all(done for _, done in steps(page))  # nothing ahead of a failed attempt
    assert page["epod"]["reason_code"] == "customer_absent"
    assert page["epod"]["reason_label"] == "Pelanggan tidak ada di tempat"
    assert page["epod"]["signature_url"] is None
    assert page["notice"] == "Kami akan menghubungi Anda untuk mengatur pengiriman ulang."
    assert track(tw, 1)["epod"]["reason_label"] == "Customer not present"
    refused = action(pos=STOP1, outcome="failed", reason_code="refused")
    assert drive(tw, "POST", f"/driver/orders/{tw.order_ids[0]}/delivery", refused)[0] == 200
    assert track(tw, 0)["notice"] == TEXTS["en"]["refused_note"]  # no re-delivery of those


def test_files_are_served_only_to_their_orders_link(tw: TripWorld) -> None:
    _, sig = upload(tw, png())
    _, stray = upload(tw, png((10, 10), "blue"))  # uploaded, in no ePOD
    body = delivered(sig["sha256"])
    assert drive(tw, "POST", f"/driver/orders/{tw.order_ids[0]}/delivery", body)[0] == 200
    root = tw.api.url.removesuffix("/api/v1")
    t1, t2 = tw.tracking
    assert fetch_raw(f"{root}/t/{t1}/files/{sig['sha256']}")[0] == 200
    refused = [
        fetch_raw(root + path)
        for path in (f"/t/{t2}/files/{sig['sha256']}",  # another customer's order
                     f"/t/{t1}/files/{stray['sha256']}",  # not this order's
                     f"/t/{t1}/files/{'0' * 64}", f"/t/{t1}/files/..%2F..%2Fetc%2Fpasswd",
                     f"/t/{'x' * 32}/files/{sig['sha256']}", "/t/x/y/z", f"/t/{t1}x")
    ]  # fmt: skip
    assert {status for status, _, _ in refused} == {404}
    assert len({body for _, _, body in refused}) == 1
    assert all(h["Content-Type"].startswith("text/html") for _, h, _ in refused)


def test_the_page_is_served_with_strict_headers_and_no_inline_code(tw: TripWorld) -> None:
    root = tw.api.url.removesuffix("/api/v1")
    status, headers, body = fetch_raw(f"{root}/t/{tw.tracking[0]}?lang=en")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None  # no inline script
    assert re.search(r"<style|\sstyle=|\son[a-z]+=", page) is None  # nor inline style or handler
    assert "Loaded for delivery" in page and '<html lang="en">' in page
    css = re.search(r'href="(/t/static/track\.css\?v=[0-9a-f]+)"', page)
    assert css is not None
    status, headers, _ = fetch_raw(root + css.group(1))
    assert (status, headers["Content-Type"]) == (200, "text/css")
    assert "max-age" in headers["Cache-Control"]
    status, _, _ = fetch_raw(f"{root}/t/static/../texts.json")
    assert status == 404


def test_the_forms_address_leads_back_to_the_page(tw: TripWorld) -> None:
    async def go(path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as s, s.get(path, allow_redirects=False) as r:
            return r.status, r.headers.get("Location", "")

    root = tw.api.url.removesuffix("/api/v1")
    token = tw.tracking[0]
    assert asyncio.run(go(f"{root}/t/{token}/complaint?lang=en")) == (
        303,
        f"/t/{token}?lang=en#complaint",
    )
    assert asyncio.run(go(f"{root}/t/not-a-token/complaint"))[0] == 404
