"""Headless Chromium for the browser tests: Debian's build, with what CI containers need."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, closed after; missing, the test is skipped (failed in CI)."""
    from playwright.async_api import async_playwright

    from tests.conftest import need

    need(Path(CHROMIUM).exists(), "Debian chromium is not installed (apt-get install chromium)")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_widget(page: Page, url: str) -> Locator:
    """Open the demo page at ``url``, open the chat, wait for the bot's greeting: the log."""
    from playwright.async_api import expect

    await page.goto(url)
    await page.click("#chat-launcher")
    log = page.locator("#chat-log")
    await expect(log).to_contain_text("virtual assistant", timeout=15_000)
    return log
