"""The driver app in a real browser: Debian's Chromium as a 360 px phone against the real
API, database and file store. A driver signs in with a one-time link, loads, departs,
arrives, records the proof (signature drawn with the mouse, photos) and closes the trip;
the page speaks Bahasa Indonesia, shows hostile text as text, never scrolls sideways,
and its files carry the page's security policy. The outbox (offline, replays, refusals)
is tested in ``test_driver_outbox``; its helpers live here.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, expect

from oms_core.api.auth import create_sign_in_code
from oms_core.api.spec import PREFIX
from tests.browser.conftest import PHONE, screenshot
from tests.oms_core.trip_world import STOP1, STOP2, TripWorld, serve_trip
from tests.polling import wait_for

pytestmark = [pytest.mark.db, pytest.mark.browser]

WAIT_MS = 15000
APP = Path(str(resources.files("oms_core") / "web" / "driver"))


@pytest.fixture
def tw(clean_db: str, tmp_path: Path) -> Iterator[TripWorld]:
    yield from serve_trip(clean_db, tmp_path / "files")


def page_url(tw: TripWorld) -> str:
    return tw.api.url.removesuffix(PREFIX) + "/driver/"


def sign_in_link(tw: TripWorld) -> str:
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        return page_url(tw) + "#code=" + create_sign_in_code(conn, tw.driver_id, 600)


def rows(tw: TripWorld, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(tw.dsn) as conn:
        return conn.execute(sql, params).fetchall()


def shot(page: Page, name: str, width: int = PHONE["width"]) -> None:
    """Save the screen from its top and check it does not scroll sideways."""
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, f"driver-{name}")
    scroll = page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= width, f"{name}: the page is {scroll} px wide on a {width} px screen"


def picture(path: Path, size: tuple[int, int], fmt: str = "JPEG") -> Path:
    Image.new("RGB", size, "teal").save(path, fmt)
    return path


def sign(page: Page) -> None:
    """Draw a zigzag signature on the pad with mouse events."""
    pad = page.locator(".sig-canvas")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    assert box is not None
    x, y = box["x"] + 30, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 12):
        page.mouse.move(x + i * 22, y + (30 if i % 2 else -30), steps=3)
    page.mouse.up()


def token(page: Page) -> str:
    """The driver token the page signed in with."""
    return str(page.evaluate("localStorage.getItem('menara.driver.token')"))


def stop(page: Page, seq: int) -> Any:
    return page.locator(".stop").nth(seq - 1)


def order_block(page: Page, order_id: int) -> Any:
    return page.locator(f'.order[data-order="{order_id}"]')


def open_delivery(page: Page, order_id: int) -> None:
    order_block(page, order_id).get_by_role("button", name="Record delivery").click()
    expect(page.locator("#sheet")).to_be_visible()


def sent_all(page: Page) -> None:
    expect(page.locator("#bar-queue")).to_be_hidden(timeout=WAIT_MS)


def test_a_driver_delivers_the_trip_from_the_phone(
    tw: TripWorld, phone: Page, phone_context: BrowserContext, browser: Browser, tmp_path: Path
) -> None:
    o1, o2 = tw.order_ids
    positions: list[int] = []
    phone.on(
        "response",
        lambda r: positions.append(r.status) if r.url.endswith("/driver/positions") else None,
    )  # counted as Playwright reads its events: after the first one it waited for
    link = sign_in_link(tw)
    phone.goto(link)
    expect(phone.locator(".stop")).to_have_count(2, timeout=WAIT_MS)
    assert phone.url == page_url(tw), "the code must leave the address bar"
    assert phone.evaluate("localStorage.getItem('menara.driver.token')").startswith("mnr_")
    titles = phone.locator(".stop h3").all_inner_texts()
    assert titles == ["Damrak 1, Amsterdam", "Plantage 5, Amsterdam"]
    expect(phone.locator("#bar-plate")).to_have_text("B 1234 XY")
    expect(phone.locator("#bar-progress")).to_have_text("0 of 2 stops done")
    expect(order_block(phone, o1).locator(".cod")).to_have_text("Collect cash 35.00")
    expect(order_block(phone, o1).locator(".instructions")).to_contain_text("Ring twice")
    call = order_block(phone, o1).get_by_role("link", name="Call +31 6 1234 5678")
    expect(call).to_have_attribute("href", "tel:+31612345678")
    expect(stop(phone, 1).get_by_role("link", name="Navigate")).to_have_attribute(
        "href", f"geo:{STOP1[0]:.6f},{STOP1[1]:.6f}?q={STOP1[0]:.6f},{STOP1[1]:.6f}"
    )
    shot(phone, "trip")

    other = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        again = other.new_page()
        again.goto(link)
        expect(again.locator(".sign-in .message")).to_contain_text("used or expired")
        assert again.evaluate("localStorage.getItem('menara.driver.token')") is None
        shot(again, "link-used")
    finally:
        other.close()

    phone.get_by_role("button", name="Loading checked").click()
    expect(phone.locator(".status-row").first).to_contain_text("Loaded at")
    with phone.expect_response(lambda r: r.url.endswith("/driver/positions")) as first:
        phone.get_by_role("button", name="Departed").click()
    assert first.value.status == 503  # this server takes no phone positions: the page copes
    expect(phone.locator("#bar-state")).to_have_text("On the road")
    wait_for(lambda: rows(tw, "SELECT state FROM trips") == [("in_progress",)], "departure")
    assert rows(tw, "SELECT loaded_qty FROM order_lines ORDER BY order_id, line_no") == [
        (3,), (2,), (2,)
    ]  # fmt: skip

    phone_context.set_geolocation({"latitude": STOP1[0], "longitude": STOP1[1], "accuracy": 8})
    stop(phone, 1).get_by_role("button", name="I have arrived").click()
    expect(stop(phone, 1).locator(".status-row")).to_contain_text("Arrived")
    open_delivery(phone, o1)
    expect(phone.locator("input[name=cod]")).to_have_value("35.00")
    shot(phone, "epod-open")
    phone.locator("input[name=recipient]").fill("Ada Lovelace")
    sign(phone)
    door = picture(tmp_path / "door.jpg", (2400, 1800))  # a camera's size: cut to 1600 px
    porch = picture(tmp_path / "porch.png", (64, 48), "PNG")
    phone.locator("input[type=file]").set_input_files([str(door), str(porch)])
    expect(phone.locator(".thumb img")).to_have_count(2)
    phone.get_by_role("button", name="Remove 2").click()
    expect(phone.locator(".thumb img")).to_have_count(1)
    expect(phone.locator(".outcome")).to_have_text("Delivered in full")
    shot(phone, "epod-filled")
    phone.get_by_role("button", name="Save delivery").click()
    expect(phone.locator("#sheet")).to_be_hidden(timeout=WAIT_MS)
    expect(order_block(phone, o1).locator(".outcome-row")).to_contain_text("Delivered")
    sent_all(phone)

    phone_context.set_geolocation({"latitude": STOP2[0], "longitude": STOP2[1], "accuracy": 8})
    stop(phone, 2).get_by_role("button", name="I have arrived").click()
    open_delivery(phone, o2)
    phone.get_by_role("button", name="− Delivered A").click()
    expect(phone.locator(".outcome")).to_have_text("Partly delivered")
    phone.get_by_role("button", name="Save delivery").click()
    expect(phone.locator(".field-recipient .field-error")).to_have_text(
        "Write who received the goods."
    )
    expect(phone.locator(".field-reason .field-error")).to_have_text("Choose a reason.")
    expect(phone.locator(".field-signature .field-error")).to_have_text("The recipient must sign.")
    shot(phone, "epod-errors")
    phone.locator("input[name=recipient]").fill("Bo")
    phone.locator("select[name=reason]").select_option("damaged")
    sign(phone)
    phone.get_by_role("button", name="Save delivery").click()
    expect(phone.locator("#sheet")).to_be_hidden(timeout=WAIT_MS)
    sent_all(phone)
    expect(phone.locator("#bar-progress")).to_have_text("2 of 2 stops done")
    expect(phone.locator("input[name=cash]")).to_have_value("35.00")
    shot(phone, "all-delivered")

    phone.get_by_role("button", name="I am back at the depot").click()
    expect(phone.locator(".done-card")).to_contain_text("Trip completed", timeout=WAIT_MS)
    sent_all(phone)
    expect(phone.locator(".done-card")).to_contain_text("Cash handed in: 35.00", timeout=WAIT_MS)
    shot(phone, "trip-done")

    epods = rows(
        tw,
        "SELECT order_id, outcome, reason_code, recipient_name, cod_collected,"
        " signature_sha256 IS NOT NULL, lat, lon"
        " FROM epods ORDER BY order_id",
    )
    assert [e[:6] for e in epods] == [
        (o1, "delivered", None, "Ada Lovelace", 35, True),
        (o2, "partially_delivered", "damaged", "Bo", None, True),
    ]
    assert [e[6:] for e in epods] == [pytest.approx(STOP1), pytest.approx(STOP2)]
    assert rows(
        tw,
        "SELECT e.order_id, l.line_no, l.delivered_qty, l.damaged_qty FROM epod_lines l"
        " JOIN epods e ON e.id = l.epod_id ORDER BY 1, 2",
    ) == [(o1, 1, 3, 0), (o1, 2, 2, 0), (o2, 1, 1, 0)]
    photos = rows(
        tw,
        "SELECT e.order_id, f.media_type, f.width, f.height FROM epod_photos p"
        " JOIN epods e ON e.id = p.epod_id JOIN files f ON f.sha256 = p.sha256",
    )
    assert photos == [(o1, "image/jpeg", 1600, 1200)], "photos are cut to 1600 px"
    assert rows(
        tw, "SELECT DISTINCT media_type FROM epods JOIN files ON sha256 = signature_sha256"
    ) == [("image/png",)]
    for (sha,) in rows(tw, "SELECT sha256 FROM files"):
        assert (tw.files / sha[:2] / sha[2:4] / sha).is_file()
    assert rows(
        tw,
        "SELECT order_id, on_time, in_full, in_full_reason, perfect FROM perfect_deliveries"
        " ORDER BY order_id",
    ) == [(o1, True, True, None, True), (o2, True, False, "short_delivered", False)]
    assert rows(tw, "SELECT state FROM orders WHERE id = ANY(%s)", ([o1, o2],)) == [
        ("completed",), ("completed",)
    ]  # fmt: skip
    assert rows(tw, "SELECT state FROM trips WHERE id = %s", (tw.trip_id,)) == [("completed",)]
    assert rows(
        tw, "SELECT orders, expected, collected, handed_in, difference FROM cod_settlements"
    ) == [(1, 35, 35, 35, 0)]
    kinds = rows(tw, "SELECT kind, lat IS NOT NULL FROM driver_actions ORDER BY id")
    assert kinds == [
        ("loaded", True), ("departed", True), ("arrived", True), ("delivered", True),
        ("arrived", True), ("partially_delivered", True), ("returned", True),
    ]  # fmt: skip
    assert positions == [503], "a server without phone positions is asked once, quietly"
    expect(phone.locator(".problem")).to_have_count(0)


def test_the_page_speaks_bahasa_and_fits_a_412px_phone(tw: TripWorld, browser: Browser) -> None:
    o2 = tw.order_ids[1]
    ctx = browser.new_context(
        viewport={"width": 412, "height": 915}, device_scale_factor=2, is_mobile=True,
        has_touch=True, locale="id-ID", permissions=["geolocation"],
        geolocation={"latitude": STOP2[0], "longitude": STOP2[1], "accuracy": 12},
    )  # fmt: skip
    try:
        page = ctx.new_page()
        page.goto(sign_in_link(tw))
        expect(page.get_by_role("heading", name="Muat kendaraan")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#bar-state")).to_have_text("Siap dimuat")
        expect(page.locator("#bar-progress")).to_have_text("0 dari 2 pemberhentian selesai")
        shot(page, "id-trip", 412)

        order_block(page, o2).get_by_role("button", name="Catat pengiriman").click()
        page.get_by_role("button", name="Tidak bisa dikirim").click()
        expect(page.locator(".outcome")).to_have_text("Gagal dikirim")
        expect(page.locator(".field-signature")).to_be_hidden()
        reasons = page.locator("select[name=reason] option").all_inner_texts()
        assert reasons[:3] == ["Pilih alasan", "Pelanggan tidak ada di tempat",
                               "Pelanggan menolak barang"]  # fmt: skip
        page.locator("select[name=reason]").select_option("other")
        expect(page.locator(".field-notes .field-label")).to_have_text(
            "Catatan (wajib untuk Lainnya)"
        )
        page.get_by_role("button", name="Simpan: gagal dikirim").click()
        expect(page.locator(".field-notes .field-error")).to_have_text("Tulis apa yang terjadi.")
        shot(page, "id-epod", 412)
        page.locator("textarea[name=notes]").fill("Gerbang terkunci, satpam tidak ada.")
        page.get_by_role("button", name="Simpan: gagal dikirim").click()
        expect(order_block(page, o2).locator(".outcome-row")).to_have_text(
            "Gagal dikirim", timeout=WAIT_MS
        )
        assert rows(tw, "SELECT outcome, reason_code, notes FROM epods") == [
            ("failed", "other", "Gerbang terkunci, satpam tidak ada.")
        ]

        page.locator("#bar-menu").click()
        page.get_by_role("button", name="English").click()
        expect(page.locator("#bar-state")).to_have_text("On the road")
        expect(order_block(page, o2).locator(".outcome-row")).to_have_text("Not delivered")
        shot(page, "en-412", 412)
    finally:
        ctx.close()


def test_long_and_hostile_texts_show_as_text_within_360px(tw: TripWorld, phone: Page) -> None:
    o1, o2 = tw.order_ids
    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE orders SET instructions = %s, address_text = %s WHERE id = %s",
            (hostile + " " + "Belakang" * 20, "Jalan " + "Panjangsekali" * 12 + " 1", o1),
        )
        conn.execute(
            "UPDATE customers SET name = %s, phone = %s",
            ("Toko " + "Sumberrejeki" * 8, "+62 812 3456 7890 ext 12345"),
        )
    dialogs: list[str] = []

    def seen(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    phone.on("dialog", seen)
    phone.goto(sign_in_link(tw))
    instructions = order_block(phone, o1).locator(".instructions")
    expect(instructions).to_contain_text(hostile, timeout=WAIT_MS)
    assert phone.locator(".main img, .main script").count() == 0
    shot(phone, "long-texts")
    open_delivery(phone, o2)
    shot(phone, "long-texts-epod")
    assert dialogs == [], "text from the server never runs as markup"


def test_the_app_files_carry_the_page_policy_and_nothing_else_is_served(
    tw: TripWorld, phone: Page
) -> None:
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
             ".svg": "image/svg+xml", ".json": "application/manifest+json"}  # fmt: skip
    base = page_url(tw)
    for f in sorted(APP.iterdir()):
        url = base if f.name == "index.html" else base + f.name
        r = phone.request.get(url)
        assert r.status == 200, url
        assert r.headers["content-type"].startswith(types[f.suffix]), url
        assert "script-src 'self'" in r.headers["content-security-policy"], url
        assert r.headers["cache-control"] == "no-cache", url
        assert r.body() == f.read_bytes()
    for name in ("..%2F..%2Fapi%2Fpages.py", "pages.py", ".sw.js", "x.js", "APP.JS", "sw.js%00"):
        r = phone.request.get(base + name)
        assert (r.status, r.json()["error"]["code"]) == (404, "not_found"), name


def test_a_visit_the_tracker_missed_asks_the_driver_to_record_it(
    tw: TripWorld, phone: Page
) -> None:
    s1 = tw.stop_ids[0]
    with psycopg.connect(tw.dsn, autocommit=True) as conn:  # what the control tower records
        conn.execute("UPDATE trips SET state = 'in_progress' WHERE id = %s", (tw.trip_id,))
        conn.execute(
            "UPDATE stops SET unconfirmed_from = now() - interval '20 minutes',"
            " unconfirmed_to = now() - interval '5 minutes' WHERE id = %s",
            (s1,),
        )
    phone.goto(sign_in_link(tw))
    note = stop(phone, 1).locator(".gap-note")
    expect(note).to_contain_text("No GPS from your van", timeout=WAIT_MS)
    expect(note).to_contain_text("Tap “I have arrived” and record it")
    expect(stop(phone, 2).locator(".gap-note")).to_have_count(0)
    shot(phone, "unconfirmed-visit")
    stop(phone, 1).get_by_role("button", name="I have arrived").click()
    expect(note).to_have_count(0)
    wait_for(
        lambda: rows(tw, "SELECT arrival_method FROM stops WHERE id = %s", (s1,)) == [("driver",)],
        "the driver's arrival stored",
    )
