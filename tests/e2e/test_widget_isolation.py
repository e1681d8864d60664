"""The widget on a hostile host page, in headless Chromium against the real bot: the page's global
CSS cannot break the widget (it still shows, opens, and chats), and the widget's CSS restyles
nothing on the page.

The host is a site of its own on loopback that serves a copy of the widget's files, as a
customer's site may, and names the bot's Direct Line with ``data-domain``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.browser import chromium
from tests.support.processes import BotProcess, free_port

pytestmark = pytest.mark.e2e

WIDGET_DIR = Path(__file__).parents[2] / "adapters" / "directline" / "widget"

# What a careless (or hostile) site does to everything on its page, the widget's element included.
HOSTILE_CSS = """
* { all: unset; }
html, body { display: block; }
:root { --cw-brand: red; --cw-font: "Comic Sans MS"; --cw-radius: 0; }
body { font: 30px/3 serif; color: green; letter-spacing: 4px; text-transform: uppercase; }
div, section, header, form, textarea, p, span, label, h2, svg, time { display: none !important; }
button { color: red !important; background: yellow !important; font-size: 40px !important; }
[hidden] { display: block !important; }
body > :not([data-host]) { display: none !important; opacity: 0 !important; }
.host-title { display: block; color: rgb(1, 2, 3); font-size: 31px; margin: 7px; }
.host-link { color: rgb(0, 128, 0); text-decoration: underline; }
"""

PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>A hostile host page</title>
    <style>{css}</style>
    {widget}
  </head>
  <body>
    <h1 class="host-title" data-host>Host page</h1>
    <p data-host>Some text <a class="host-link" href="#x" data-host>a link</a></p>
    <div data-host>a div</div>
    <button type="button" class="host-button" data-open-chat data-host>Chat with us</button>
    <ul data-host><li data-host>an item</li></ul>
  </body>
</html>
"""

# The computed styles of the host page's own elements: the same with the widget as without.
HOST_STYLES_JS = """() => {
  const props = ['display', 'color', 'background-color', 'font-family', 'font-size', 'font-weight',
    'line-height', 'margin', 'padding', 'box-sizing', 'border', 'letter-spacing', 'text-transform',
    'visibility', 'position', 'opacity', 'text-decoration-line'];
  const elements = [document.documentElement, document.body, ...document.querySelectorAll('[data-host]')];
  return elements.map((el) => {
    const style = getComputedStyle(el);
    return [el.tagName, ...props.map((p) => style.getPropertyValue(p))];
  });
}"""


@pytest.fixture
async def host_site(bot_process: BotProcess) -> AsyncIterator[str]:
    """The host's site, on an origin of its own: the page, with or without the widget, and a copy
    of the widget's files under /chat/."""
    files = {p.name: p for p in WIDGET_DIR.iterdir() if p.suffix in {".js", ".css"}}

    async def page(request: web.Request) -> web.Response:
        widget = (
            ""
            if request.query.get("widget") == "no"
            else f'<script type="module" src="/chat/widget.js" '
            f'data-domain="{bot_process.url}/v3/directline"></script>'
        )
        return web.Response(
            text=PAGE.format(css=HOSTILE_CSS, widget=widget), content_type="text/html"
        )

    async def widget_file(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/chat/{name}", widget_file)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _style(page: Any, selector: str, *props: str) -> list[str]:
    values: list[str] = await page.locator(selector).evaluate(
        "(el, props) => props.map((p) => getComputedStyle(el).getPropertyValue(p))", list(props)
    )
    return values


async def test_a_hostile_page_neither_breaks_the_widget_nor_is_restyled_by_it(
    host_site: str, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # The host page as it is without the widget.
        await page.goto(f"{host_site}/?widget=no")
        without = await page.evaluate(HOST_STYLES_JS)
        await page.goto(f"{host_site}/")

        # The launcher shows where and as it should, in its own colours and size.
        launcher = page.locator("#chat-launcher")
        await expect(launcher).to_be_visible(timeout=15_000)
        box = await launcher.bounding_box()
        assert box is not None
        assert (round(box["width"]), round(box["height"])) == (60, 60)
        assert (round(box["x"] + box["width"]), round(box["y"] + box["height"])) == (1256, 776)
        color, background, radius = await _style(
            page, "#chat-launcher", "color", "background-image", "border-radius"
        )
        assert color == "rgb(255, 255, 255)"
        assert "linear-gradient" in background and "255, 0, 0" not in background
        assert radius == "50%"

        # It opens the panel, which is laid out as designed.
        await launcher.click()
        panel = page.locator("#chat-panel")
        await expect(panel).to_be_visible()
        # Measured once its opening animation (a short scale-up) has finished.
        await panel.evaluate("(el) => Promise.all(el.getAnimations().map((a) => a.finished))")
        box = await panel.bounding_box()
        assert box is not None
        assert (round(box["width"]), round(box["height"])) == (380, 600)
        log = page.locator("#chat-log")
        await expect(log).to_contain_text("virtual assistant", timeout=15_000)
        # Nothing the page's body would pass down by inheritance reaches in.
        for selector in ("#chat-input", "#chat-title", "#chat-log .msg-text"):
            family, size, spacing, transform = await _style(
                page,
                f"{selector} >> nth=0",
                "font-family",
                "font-size",
                "letter-spacing",
                "text-transform",
            )
            assert "system-ui" in family and "Comic" not in family, selector
            assert size in {"15px", "16px"}, selector
            assert (spacing, transform) == ("normal", "none"), selector
        talk = page.locator("#talk-to-person")
        await expect(talk).to_be_visible()
        assert await _style(page, "#talk-to-person", "color", "background-color") == [
            "rgb(30, 64, 175)",
            "rgb(238, 242, 255)",
        ]
        await expect(page.locator("#chat-banner")).to_be_hidden()

        # A message round-trips: delivered, and the bot answers.
        bot_messages = page.locator('.msg[data-role="bot"]')
        before = await bot_messages.count()
        await page.fill("#chat-input", "what are your opening hours?")
        await page.press("#chat-input", "Enter")
        mine = page.locator('.msg[data-role="user"]')
        await expect(mine).to_have_count(1)
        await expect(mine).to_have_attribute("data-status", "delivered")
        await expect(mine.locator(".msg-text")).to_have_text("what are your opening hours?")
        await expect(bot_messages).to_have_count(before + 1)
        bubble = await _style(
            page, '.msg[data-role="user"] .msg-bubble', "color", "background-color"
        )
        assert bubble == ["rgb(255, 255, 255)", "rgb(47, 91, 234)"]
        await page.screenshot(path=str(tmp_path / "hostile-page.png"))

        # The minimise button closes it; the page's own [data-open-chat] button opens it.
        await page.click("#chat-close")
        await expect(panel).to_be_hidden()
        await page.click(".host-button")
        await expect(panel).to_be_visible()

        # The page's own elements: exactly as without the widget, its rules intact.
        assert await page.evaluate(HOST_STYLES_JS) == without
        assert await _style(page, ".host-title", "color", "font-size") == [
            "rgb(1, 2, 3)",
            "31px",
        ]
        assert await _style(page, ".host-button", "color", "background-color") == [
            "rgb(255, 0, 0)",
            "rgb(255, 255, 0)",
        ]
        # No stylesheet of the widget's is in the document: it lives in the shadow root.
        assert await page.evaluate("document.styleSheets.length") == 1
        assert errors == []
