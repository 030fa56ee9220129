"""The API's documentation page in a real browser (Debian's Chromium, headless, driven by Playwright) that can
reach nothing but the fleet: every script, style and icon comes from the fleet itself, and the page draws the
API's operations. There is no /redoc: it fetches its logo from a CDN."""

import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.app import DOCS_ASSETS_PATH
from tests.fleet.api_client import api_context
from tests.fleet.helpers import FakeClock
from tests.fleet.served_api import served_api

DRAWN_WITHIN_MS = 60_000
"""A hang detector for the browser on a loaded machine, not a performance bound."""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run scripts/test, which installs it")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],  # no internet
        )
        try:
            yield launched
        finally:
            await launched.close()


async def test_the_docs_page_draws_the_operations_from_the_fleets_own_assets(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, browser: Browser
) -> None:
    fetched: list[str] = []
    async with served_api(api_context(sessions, clock)) as base:
        page = await browser.new_page()
        page.on("request", lambda request: fetched.append(request.url))
        await page.goto(base + "/docs")
        await page.wait_for_selector(".opblock", timeout=DRAWN_WITHIN_MS)
        drawn = await page.locator(".opblock").count()
        text = await page.content()
        redoc = await page.goto(base + "/redoc")
        await page.close()

    assert drawn > 20, "every route is drawn"
    assert "/sites/import" in text
    outside = [url for url in fetched if not url.startswith(base)]
    assert outside == [], "nothing but the fleet is asked for anything"
    assert any(url.startswith(base + DOCS_ASSETS_PATH) for url in fetched)
    assert redoc is not None
    assert redoc.status == 404
