"""Customer emails as a customer reads them: most open them on a phone, so the HTML part
of the longest messages is rendered by Chromium at 360 px and must fit without sideways
scrolling, with its tracking button on screen. Screenshots are saved for a person."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from oms_core.notify import render, texts
from oms_core.notify.facts import Facts, FollowUp, Line, Proof
from tests.browser.conftest import ARTIFACTS, CHROMIUM, PHONE

pytestmark = pytest.mark.browser
AT = datetime(2026, 6, 2, 3, 7, tzinfo=UTC)
PARTIAL = Facts(
    order_id=7, tracking_number="MN-ABCDEFGH2", public_token="k" * 32,
    state="partially_delivered", address="Jl. Jenderal Sudirman Kav. 52-53, Senayan,"
    " Kebayoran Baru, Jakarta Selatan 12190", window_start=AT,
    window_end=AT + timedelta(hours=3), payment_state="paid",
    customer="PT Sumber Makmur Sejahtera Abadi", language="id", time_zone="Asia/Jakarta",
    lines=(Line("Air mineral 600 ml (karton isi 24)", 3, 2, 1),
           Line("Teh melati kotak 250 ml", 2, 0)),
    proof=Proof("partially_delivered", "damaged", "Bapak Slamet (satpam)", AT, ""),
    reason_code="damaged",
    follow_up=FollowUp("MN-ZZZZZZZZ2", AT + timedelta(days=1), AT + timedelta(days=1, hours=3)),
)  # fmt: skip


async def show(page: Page, facts: Facts, payload: dict[str, Any], name: str) -> None:
    """Open the email's HTML part as a phone would and check it fits; save a screenshot."""
    msg = texts.compose(facts, payload, base_url="https://menara.example.com", eta_window_min=60)
    mail = render.email(msg, sender="menara@shop.example", to="ada@example.org", delivery_id=1)
    html = mail.get_body(("html",))
    assert html is not None
    await page.set_content(html.get_content())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name} scrolls sideways: {width} px"
    button = page.get_by_role("link", name=msg.link_text)
    box = await button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert await button.get_attribute("href") == msg.link
    assert await page.get_by_text(msg.heading).is_visible()


def test_the_longest_emails_fit_a_phone() -> None:
    # The async API inside this test's own event loop: nothing outlives the test (a
    # session-wide sync Playwright would leave its loop running for every later test).
    english = replace(PARTIAL, language="en", state="out_for_delivery")
    proof = Proof("failed", "refused", "", AT, "")
    refused = replace(PARTIAL, state="failed", reason_code="refused", follow_up=None, proof=proof)

    async def go() -> None:
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            ctx = await browser.new_context(
                viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
            )
            page = await ctx.new_page()
            try:
                await show(page, PARTIAL, {"event": "delivered", "state": "partially_delivered"},
                           "email-partial-id")  # fmt: skip
                await show(page, english, {"event": "out_for_delivery", "eta": AT.isoformat()},
                           "email-eta-en")  # fmt: skip
                await show(page, refused, {"event": "failed", "state": "failed"},
                           "email-refused-id")  # fmt: skip
            finally:
                await ctx.close()
                await browser.close()

    asyncio.run(go())
