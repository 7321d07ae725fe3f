"""The customer's tracking page in a real browser: Debian's Chromium as a 360 px phone
against the real API, database and file store. A customer follows the order from
loaded to delivered (timeline, arrival window, the van, then the proof with the
signature image), the page refreshes itself from the JSON, a complaint with a photo
is sent and stored, a failed attempt says why in Bahasa Indonesia, and a wrong link
shows the one not-found page. Every page is photographed, never scrolls sideways and
breaks no rule of its Content Security Policy.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import ConsoleMessage, FilePayload, Page, expect

from oms_core.api.spec import PREFIX
from tests.browser.conftest import PHONE, screenshot
from tests.oms_core import test_driver_api as driver_api
from tests.oms_core.test_driver_api import action, delivered, png
from tests.oms_core.trip_world import STOP1, STOP2, TRACKER, TripWorld, serve_trip

pytestmark = [pytest.mark.db, pytest.mark.browser]

WAIT_MS = 15000
MIDWAY = ((STOP1[0] + STOP2[0]) / 2, (STOP1[1] + STOP2[1]) / 2)  # 1.4 km from stop 1


@pytest.fixture
def tw(clean_db: str, tmp_path: Path) -> Iterator[TripWorld]:
    yield from serve_trip(clean_db, tmp_path / "files")


@pytest.fixture
def customer(phone: Page) -> Iterator[Page]:
    """The phone, failing the test on any Content Security Policy violation."""
    broken: list[str] = []

    def watch(msg: ConsoleMessage) -> None:
        if "Content Security Policy" in msg.text or "Refused to" in msg.text:
            broken.append(msg.text)

    phone.on("console", watch)
    yield phone
    assert broken == []


def link(tw: TripWorld, n: int = 0, query: str = "") -> str:
    return f"{tw.api.url.removesuffix(PREFIX)}/t/{tw.tracking[n]}{query}"


def sql(tw: TripWorld, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def shot(page: Page, name: str) -> None:
    """Save the page and check it does not scroll sideways on the phone."""
    screenshot(page, f"track-{name}")
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"{name}: the page is {width} px wide"


def _off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """Call the driver API from a thread of its own: Playwright's sync API holds an
    event loop on the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def drive(tw: TripWorld, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    result: tuple[int, Any] = _off_loop(driver_api.drive, tw, method, path, body)
    return result


def upload(tw: TripWorld, data: bytes, name: str = "sig.png") -> Any:
    return _off_loop(driver_api.upload, tw, data, name)


def van_at(tw: TripWorld, pos: tuple[float, float]) -> None:
    now = datetime.now(UTC)
    sql(tw, "INSERT INTO positions (device_id, fix_time, received_time, lat, lon, valid,"
            " transport, protocol) VALUES (%s, %s, %s, %s, %s, true, 'test', 'test')",
        (TRACKER, now, now, pos[0], pos[1]))  # fmt: skip


def signature_png() -> bytes:
    """A signature as the driver page draws one: a dark zigzag on white, 240 × 90."""
    img = Image.new("RGB", (240, 90), "white")
    ImageDraw.Draw(img).line([(12 + 20 * i, 60 if i % 2 else 25) for i in range(11)],
                             fill="#1b2430", width=4)  # fmt: skip
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def deliver(tw: TripWorld) -> None:
    _, sig = upload(tw, signature_png())
    _, photo = upload(tw, png((320, 240), "teal"), "door.png")
    body = delivered(sig["sha256"], (photo["sha256"],), recipient="Ada Lovelace")
    status, answer = drive(tw, "POST", f"/driver/orders/{tw.order_ids[0]}/delivery", body)
    assert status == 200, answer


def test_a_customer_follows_the_order_to_its_proof_of_delivery(
    tw: TripWorld, customer: Page
) -> None:
    page = customer
    page.clock.install()  # the page's 30 s refresh, run on demand
    page.goto(link(tw, query="?lang=en"))
    expect(page.locator("#state")).to_have_text("Loaded for delivery")
    expect(page.locator(".number")).to_have_text(
        sql(tw, "SELECT tracking_number FROM orders WHERE id = %s", (tw.order_ids[0],))[0][0]
    )
    expect(page.locator(".eta-range")).to_be_visible()
    expect(page.locator(".eta .label")).to_have_text("Expected arrival today")
    expect(page.locator(".eta .hint")).to_contain_text("Planned time")
    expect(page.locator(".step.done")).to_have_count(3)
    expect(page.locator(".facts")).to_contain_text("Damrak 1, Amsterdam")
    shot(page, "loaded")

    assert drive(tw, "POST", f"/driver/trips/{tw.trip_id}/departed", action())[0] == 200
    eta = datetime.now(UTC) + timedelta(minutes=40)
    sql(tw, "UPDATE stops SET eta = %s WHERE id = %s", (eta, tw.stop_ids[0]))
    van_at(tw, MIDWAY)
    page.clock.run_for(31_000)  # the refresh sees the new state and reloads the page
    expect(page.locator("#state")).to_have_text("Out for delivery", timeout=WAIT_MS)
    expect(page.locator(".eta .hint")).to_contain_text("Live estimate")
    expect(page.locator("#vehicle-away")).to_have_text("Your driver is 1.4 km away")
    lat, lon = round(MIDWAY[0], 5), round(MIDWAY[1], 5)
    osm = f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=16/{lat}/{lon}"
    expect(page.locator("#vehicle-map")).to_have_attribute("href", osm)
    shot(page, "out-for-delivery")

    van_at(tw, (STOP1[0] - 0.0045, STOP1[1]))  # closer: the refresh updates in place
    page.clock.run_for(31_000)
    expect(page.locator("#vehicle-away")).to_have_text("Your driver is 500 m away", timeout=WAIT_MS)

    deliver(tw)
    page.clock.run_for(31_000)
    expect(page.locator("#state")).to_have_text("Delivered", timeout=WAIT_MS)
    expect(page.locator("#proof")).to_have_text("Proof of delivery")
    expect(page.get_by_text("Ada Lovelace")).to_be_visible()
    expect(page.get_by_role("heading", name="Items")).to_be_visible()
    expect(page.locator(".lines li")).to_have_count(2)
    expect(page.locator(".lines li").first).to_contain_text("3 of 3")
    signature = page.locator("img.signature")
    expect(signature).to_have_attribute("alt", "Signature of Ada Lovelace")
    page.wait_for_function("document.querySelector('img.signature').naturalWidth === 240")
    page.wait_for_function("document.querySelector('.photos img').naturalWidth === 320")
    expect(page.locator("#vehicle")).to_have_count(0)
    shot(page, "delivered")


def test_a_customer_sends_a_complaint_with_a_photo(tw: TripWorld, customer: Page) -> None:
    page = customer
    page.goto(link(tw, 1))  # Bahasa Indonesia, the customer's language
    expect(page.locator("html")).to_have_attribute("lang", "id")
    form = page.locator("#complaint-form")
    form.scroll_into_view_if_needed()
    shot(page, "complaint-form")
    page.select_option("#category", "damaged")
    page.fill("#text", "Kardusnya penyok dan satu botol pecah.")
    photo: FilePayload = {
        "name": "rusak.png",
        "mimeType": "image/png",
        "buffer": png((120, 90), "red"),
    }
    page.set_input_files("#photo", files=[photo])
    page.get_by_role("button", name="Kirim").click()
    expect(page.locator(".thanks")).to_have_text(
        "Terima kasih, keluhan Anda sudah kami terima. Kami akan segera menghubungi Anda."
    )
    assert page.url.endswith("?sent=1#complaint")
    expect(page.locator(".complaints li")).to_contain_text("Barang rusak")
    stored = sql(tw, "SELECT order_id, category, text, photo_sha256 FROM complaints")
    assert [row[:3] for row in stored] == [
        (tw.order_ids[1], "damaged", "Kardusnya penyok dan satu botol pecah.")
    ]
    assert stored[0][3] is not None
    assert sql(tw, "SELECT width, height FROM files WHERE sha256 = %s", (stored[0][3],)) == [
        (120, 90)
    ]
    page.locator("#complaint").scroll_into_view_if_needed()
    shot(page, "complaint-sent")

    page.reload()  # Post/Redirect/Get: a reload sends nothing again
    expect(page.locator(".complaints li")).to_have_count(1)
    assert sql(tw, "SELECT count(*) FROM complaints") == [(1,)]


def test_a_refused_photo_keeps_what_was_typed(tw: TripWorld, customer: Page) -> None:
    page = customer
    page.goto(link(tw, 0, "?lang=en"))
    page.select_option("#category", "late")
    page.fill("#text", "Nobody came.")
    fake: FilePayload = {
        "name": "x.png",
        "mimeType": "image/png",
        "buffer": b"<script>alert(1)</script>",
    }
    page.set_input_files("#photo", files=[fake])
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".refused")).to_contain_text("must be a PNG, JPEG or WebP image")
    expect(page.locator("#text")).to_have_value("Nobody came.")
    expect(page.locator("#category")).to_have_value("late")
    assert sql(tw, "SELECT count(*) FROM complaints") == [(0,)]
    page.locator("#complaint").scroll_into_view_if_needed()
    shot(page, "complaint-refused")


def test_a_failed_attempt_and_a_departed_van_say_what_happened(
    tw: TripWorld, customer: Page
) -> None:
    page = customer
    s1 = tw.stop_ids[0]
    assert drive(tw, "POST", f"/driver/stops/{s1}/arrived", action(pos=STOP1))[0] == 200
    sql(tw, "UPDATE stops SET actual_departure = now() + interval '1 second' WHERE id = %s", (s1,))
    page.goto(link(tw, 0))
    expect(page.locator("#state")).to_have_text("Kurir sudah meninggalkan alamat Anda")
    expect(page.locator(".notice")).to_contain_text("segera setelah kurir mencatatnya")
    expect(page.locator(".step-departed")).to_have_class("step done step-departed")
    shot(page, "driver-left")

    body = action(pos=STOP2, outcome="failed", reason_code="address_not_found")
    assert drive(tw, "POST", f"/driver/orders/{tw.order_ids[1]}/delivery", body)[0] == 200
    page.goto(link(tw, 1))
    expect(page.locator("#state")).to_have_text("Pengiriman gagal")
    expect(page.locator(".facts").first).to_contain_text("Alamat tidak ditemukan")
    expect(page.locator(".notice")).to_have_text(
        "Kami akan menghubungi Anda untuk mengatur pengiriman ulang."
    )
    expect(page.locator("#proof")).to_have_text("Percobaan pengiriman")
    expect(page.locator(".step.ahead")).to_have_count(0)
    shot(page, "failed")


def test_a_wrong_link_shows_the_not_found_page(tw: TripWorld, customer: Page) -> None:
    page = customer
    token = tw.tracking[0]
    wrong = [token[:-1] + ("A" if token[-1] != "A" else "B"), "MN-ABCDEFGH2", "x" * 70]
    texts = []
    for t in wrong:
        answer = page.goto(f"{tw.api.url.removesuffix(PREFIX)}/t/{t}")
        assert answer is not None and answer.status == 404
        expect(page.locator("h1")).to_have_text("Pengiriman tidak ditemukan")
        texts.append(page.content())
    assert len(set(texts)) == 1
    assert "Ada" not in texts[0] and "MN-" not in texts[0]
    shot(page, "not-found")
