"""Real-browser fixtures: Debian's Chromium driven by Playwright, as a phone would be.

Playwright's own browser download is not used (this machine kind cannot fetch it);
``.ci/setup`` installs Debian's ``chromium`` and the tests point Playwright at it. Every
page test saves screenshots under ``MENARA_ARTIFACTS`` (default ``./artifacts``), so a
person can look at what the test saw.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

CHROMIUM = os.environ.get("MENARA_CHROMIUM", "/usr/bin/chromium")
PHONE: ViewportSize = {"width": 360, "height": 740}  # a small Android phone, CSS pixels
ARTIFACTS = Path(os.environ.get("MENARA_ARTIFACTS", "artifacts")) / "screenshots"


# Per module, not per session: while Playwright's sync API runs it holds an event loop
# on the main thread, and every later test calling asyncio.run() would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run .ci/setup (apt-get install chromium)")
    b = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
              "--disable-component-update", "--disable-sync", "--no-first-run"],
    )  # fmt: skip
    yield b
    b.close()


@pytest.fixture
def phone_context(browser: Browser) -> Iterator[BrowserContext]:
    """A phone: 360 px wide, touch, geolocation allowed (at the depot until moved)."""
    ctx = browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        geolocation={"latitude": 52.37, "longitude": 4.90, "accuracy": 10},
        permissions=["geolocation"],
        locale="en-GB",
    )
    yield ctx
    ctx.close()


@pytest.fixture
def phone(phone_context: BrowserContext) -> Iterator[Page]:
    page = phone_context.new_page()
    yield page
    page.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as a test artifact; returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
