"""The official Bot Framework Web Chat (npm ``botframework-webchat``) as a customer's site embeds
it, in headless Chromium, against ``python app.py``'s Direct Line: the whole handoff, a bot
restart under it, and the bot back as first responder.

The site is served from an origin of its own, as a real one would be; Web Chat takes a token
from ``/tokens/generate``, sends the visitor's context as an event when it connects, and talks
over the WebSocket stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import CHANNEL, need
from tests.support.browser import chromium
from tests.support.processes import NODE_DIR, BotProcess
from tests.support.scenarios import Handoff, Teams, card_of, card_text, summary_in
from tests.support.servers import serve
from tests.support.standin import Standin

pytestmark = pytest.mark.e2e

WEBCHAT_JS = NODE_DIR / "node_modules" / "botframework-webchat" / "dist" / "webchat.js"
PAGE = Path(__file__).parent / "webchat" / "index.html"


@pytest.fixture
async def site() -> AsyncIterator[str]:
    """The customer's site: the page and Web Chat's bundle, from an origin of its own."""
    need(WEBCHAT_JS.exists(), f"Web Chat is not installed ({WEBCHAT_JS}); run make setup")
    files = {"/": PAGE, "/webchat.js": WEBCHAT_JS}

    async def static(request: web.Request) -> web.FileResponse:
        return web.FileResponse(files[request.path])

    app = web.Application()
    for path in files:
        app.router.add_get(path, static)
    runner, url = await serve(app)
    yield url
    await runner.cleanup()


async def test_handoff_through_the_official_web_chat(
    bot_process: BotProcess, site: str, standin: Standin, http: aiohttp.ClientSession
) -> None:
    from playwright.async_api import WebSocketRoute, expect

    bot = bot_process
    teams = Teams(http, bot.url, standin)

    async with chromium() as browser:
        page = await browser.new_page()
        # Every stream Web Chat opens goes through here, so the test can hold one back.
        streams: list[str] = []
        streams_open = asyncio.Event()
        streams_open.set()

        async def stream(ws: WebSocketRoute) -> None:
            streams.append(ws.url)
            await streams_open.wait()
            ws.connect_to_server()

        await page.route_web_socket(lambda url: "/stream?" in url, stream)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{site}/?bot={bot.url}")
        chat = page.locator("#webchat")
        box = page.locator('[data-id="webchat-sendbox-input"]')

        async def say(text: str) -> None:
            await box.fill(text)
            await box.press("Enter")
            # Web Chat marks a message it could not send; every one must go through.
            await expect(chat).not_to_contain_text("Send failed")

        await expect(chat).to_contain_text("virtual assistant", timeout=20_000)

        # The visitor asks for a person: a thread opens with the context Web Chat sent.
        await say("Can I talk to a human please?")
        opened = await standin.thread_opened(timeout=15)
        assert opened.body["channelData"]["channel"]["id"] == CHANNEL
        card = card_text(card_of(opened))
        for fact in ("Jane Doe", "jane@contoso.example", "Contoso", "Enterprise"):
            assert fact in card, fact
        thread_id, root = standin.created[-1]
        join = next(a for a in card_of(opened)["actions"] if a["title"] == "Join conversation")
        await expect(chat).to_contain_text("specialist")

        # Alex joins from the card; the visitor is told, and they talk both ways.
        handoff = Handoff(thread_id, root, join["data"]["handoffId"])
        status, _ = await teams.click(handoff, "handoff.join")
        assert status == 200
        await expect(chat).to_contain_text("Alex Wilber has joined")
        await teams.write(thread_id, "Hi Jane, I can see your invoices.")
        await expect(chat).to_contain_text("Hi Jane, I can see your invoices.")
        await say("Great, the March one is missing.")
        await standin.wait_text_in(thread_id, "March one is missing")

        # The bot is killed and restarted under the open chat. Web Chat's Direct Line client
        # reconnects with its watermark (held back until Alex has written, so what he wrote
        # meanwhile can only come from the replay), and it arrives once.
        streams_open.clear()
        bot.kill()
        await bot.start()
        await teams.write(thread_id, "Found it, resending March now.")
        streams_open.set()
        await expect(chat).to_contain_text("Found it, resending March now.", timeout=30_000)
        assert len(streams) >= 2 and "watermark=" in streams[-1], streams
        await say("Got it, thank you!")
        await standin.wait_text_in(thread_id, "Got it, thank you!")

        # Alex ends it: the visitor is told, the summary goes to the same thread.
        await teams.write(thread_id, "/end")
        await expect(chat).to_contain_text("has ended the chat")
        summary = await summary_in(standin, thread_id)
        assert "Jane Doe with Alex Wilber" in card_text(card_of(summary))
        assert "Ended by Alex Wilber" in card_text(
            card_of(standin.of("PUT", f"/activities/{root}")[-1])
        )

        # The bot answers again, and nothing more goes to the thread.
        posts = len(standin.posts_to(thread_id))
        await say("what are your opening hours?")
        await expect(chat).to_contain_text("Monday to Friday")
        assert len(standin.posts_to(thread_id)) == posts

        # Each message shown once, even across the restart (counted in the bubbles: Web
        # Chat also repeats text for screen readers).
        bubbles = page.locator(".webchat__bubble__content")
        for text in ("Alex Wilber has joined", "I can see your invoices", "resending March"):
            await expect(bubbles.filter(has_text=text)).to_have_count(1)
        assert errors == []
        assert await page.evaluate("document.body.dataset.error || ''") == ""
