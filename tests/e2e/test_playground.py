"""As a user would: the demo widget in Chromium, the real Microsoft 365 Agents Playground as Teams.

The bot runs as ``python app.py`` against the Playground's connector; a visitor chats in the
widget page, a specialist clicks Join on the card in the Playground's channel, they talk both
ways, and the specialist ends it from the card.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import ProcessFactory, need, one_route_yaml
from tests.support.browser import CHROMIUM, chromium
from tests.support.processes import (
    PLAYGROUND_BIN,
    PLAYGROUND_CHANNEL,
    PLAYGROUND_TENANT,
    BotProcess,
    PlaygroundProcess,
    free_port,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack(
    tmp_path: Path, start_process: ProcessFactory
) -> AsyncIterator[tuple[BotProcess, PlaygroundProcess]]:
    need(
        PLAYGROUND_BIN.exists(),
        f"the Agents Playground is not installed ({PLAYGROUND_BIN}); run make setup",
    )
    need(Path(CHROMIUM).exists(), "Debian chromium is not installed (apt-get install chromium)")
    playground_port = free_port()
    config = tmp_path / "handoff.yaml"
    config.write_text(
        one_route_yaml(
            f"http://127.0.0.1:{playground_port}/_connector",
            tmp_path / "handoff.db",
            tenant=PLAYGROUND_TENANT,
            channel=PLAYGROUND_CHANNEL,
        )
    )
    bot = await start_process(config)
    playground = PlaygroundProcess(tmp_path / "playground", playground_port, bot.url)
    try:
        await playground.start()
        yield bot, playground
    finally:
        playground.stop()


async def test_handoff_in_the_agents_playground(
    stack: tuple[BotProcess, PlaygroundProcess], tmp_path: Path
) -> None:
    from playwright.async_api import expect

    bot, playground = stack
    visitor_name = f"Jane {uuid.uuid4().hex[:6]}"
    async with chromium() as browser:
        # The specialist has Teams open first: the Playground shows only the bot posts that
        # arrive while a browser is connected to it.
        teams = await browser.new_page(viewport={"width": 1400, "height": 1000})
        await teams.goto(playground.url + "/")
        await teams.get_by_role("treeitem", name="Contoso Support - Customer support").click()
        await expect(teams.get_by_text("Start a new post")).to_be_visible(timeout=20_000)

        site = await browser.new_page(viewport={"width": 1280, "height": 800})
        await site.goto(bot.url + "/")
        await site.fill("#visitor-name", visitor_name)
        await site.click("#visitor-update")
        await site.click("#chat-launcher")
        log = site.locator("#chat-log")
        await expect(log).to_contain_text("virtual assistant", timeout=15_000)
        await site.fill("#chat-input", "How do I export my invoices?")
        await site.press("#chat-input", "Enter")
        await expect(log).to_contain_text("not sure I can answer")
        await site.fill("#chat-input", "can I talk to a human?")
        await site.press("#chat-input", "Enter")
        await expect(log).to_contain_text("connecting you with a specialist")
        await expect(site.locator("#chat-panel")).to_have_attribute("data-state", "queued")

        thread = teams.get_by_role("group").filter(has_text=visitor_name).first
        await expect(thread).to_contain_text("Waiting for a specialist", timeout=20_000)
        await expect(thread).to_contain_text("How do I export my invoices?")
        await expect(thread).to_contain_text("Fabrikam")

        # The specialist (the Playground's user, Alex Wilber) joins from the card.
        await thread.get_by_role("button", name="Join conversation").click()
        await expect(thread).to_contain_text("Alex Wilber joined", timeout=15_000)
        await expect(log).to_contain_text("Alex Wilber has joined and has the full context")
        await expect(site.locator("#chat-panel")).to_have_attribute("data-state", "accepted")

        # Visitor -> thread.
        await site.fill("#chat-input", "Thanks! Invoice 42 is the one I need.")
        await site.press("#chat-input", "Enter")
        await expect(thread).to_contain_text("Invoice 42 is the one I need", timeout=15_000)

        # Thread -> visitor: a reply typed in the channel thread (mentioning the bot, which the
        # Playground needs to deliver it; real Teams with RSC does not).
        box = thread.get_by_role("textbox")
        await box.click()
        await box.type("@Hand")
        await (
            teams.get_by_role("listbox", name="Typeahead menu")
            .get_by_role("menuitem", name=re.compile("Handoff Bot"))
            .click()
        )
        await box.type(" Hi! Sending invoice 42 now.")
        await box.press("Enter")
        specialist = site.locator('.msg[data-role="specialist"]')
        await expect(specialist.last).to_contain_text("Sending invoice 42 now.", timeout=15_000)
        await expect(specialist.last.locator(".msg-sender")).to_contain_text("Alex Wilber")

        # The specialist ends it from the card: both sides see it, the summary lands in the thread.
        await thread.get_by_role("button", name="End conversation").click()
        await expect(log).to_contain_text("Alex Wilber has ended the chat", timeout=15_000)
        await expect(thread).to_contain_text("Ended by Alex Wilber")
        await expect(thread).to_contain_text("Conversation summary")
        await expect(site.locator("#chat-panel")).to_have_attribute("data-state", "bot")
        await teams.screenshot(path=str(tmp_path / "playground.png"), full_page=True)

        # The bot answers again.
        await site.fill("#chat-input", "what are your opening hours?")
        await site.press("#chat-input", "Enter")
        await expect(log).to_contain_text("Monday to Friday")
