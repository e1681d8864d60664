"""The demo widget in headless Chromium against the real bot: choices, escaping, reconnect."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ProcessFactory, one_route_yaml
from tests.support.browser import chromium, open_widget
from tests.support.processes import BotProcess
from tests.support.standin import Standin
from tests.support.teams import (
    ALEX,
    TENANT,
    card_action,
    send,
    thread_delete,
    thread_edit,
    thread_message,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def two_team_bot(
    standin: Standin, tmp_path: Path, start_process: ProcessFactory
) -> BotProcess:
    routes = (
        "routes:\n"
        "  - id: billing\n    name: Billing\n    description: Invoices and refunds\n"
        '    channel: "19:bill@thread.tacv2"\n'
        "  - id: tech\n    name: Technical support\n    description: Bugs and outages\n"
        '    channel: "19:tech@thread.tacv2"\n'
    )
    config = tmp_path / "handoff.yaml"
    config.write_text(
        f"teams:\n  service_url: {standin.url}\n  tenant_id: {TENANT}\n{routes}"
        f"storage:\n  sqlite_path: {tmp_path / 'h.db'}\n"
    )
    return await start_process(config)


async def test_choose_a_team_then_talk_and_stay_safe(
    two_team_bot: BotProcess, standin: Standin, http: aiohttp.ClientSession
) -> None:
    from playwright.async_api import expect

    async with chromium() as browser:
        page = await browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        log = await open_widget(page, two_team_bot.url + "/")
        await page.click("#talk-to-person")
        await expect(log).to_contain_text("Which team can help you?")
        await expect(log).to_contain_text("Technical support: Bugs and outages")
        await page.get_by_role("button", name="Technical support").click()
        await expect(page.locator("#chat-panel")).to_have_attribute("data-state", "queued")
        await expect(page.locator(".msg-choices")).to_have_count(0)
        call = await standin.thread_opened()
        assert call.body["channelData"]["channel"]["id"] == "19:tech@thread.tacv2"
        thread_id, _ = standin.created[-1]
        handoff_id = call.body["activity"]["attachments"][0]["content"]["actions"][0]["data"][
            "handoffId"
        ]
        await send(
            http,
            two_team_bot.url,
            card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id),
        )
        await expect(log).to_contain_text("Alex Wilber has joined")

        # A hostile specialist message is shown as text, and its link only as itself.
        hostile = '<img src=x onerror="alert(1)"> see https://example.com/help'
        await send(
            http,
            two_team_bot.url,
            thread_message(
                standin.url, thread_id, ALEX, hostile.replace("<", "&lt;").replace(">", "&gt;")
            ),
        )
        specialist = page.locator('.msg[data-role="specialist"] .msg-text').last
        await expect(specialist).to_contain_text('<img src=x onerror="alert(1)">')
        assert await page.locator(".msg-text img").count() == 0
        link = specialist.locator("a")
        await expect(link).to_have_attribute("href", "https://example.com/help")
        await expect(link).to_have_text("https://example.com/help")

        # The specialist edits, then deletes, a message: the widget follows.
        typo = thread_message(standin.url, thread_id, ALEX, "Your refund is 40 EUR")
        await send(http, two_team_bot.url, typo)
        found = page.locator('.msg[data-role="specialist"]').filter(has_text="refund is")
        await expect(found).to_contain_text("40 EUR")
        bubble = page.locator(f'.msg[data-id="{await found.get_attribute("data-id")}"]')
        await send(
            http,
            two_team_bot.url,
            thread_edit(standin.url, thread_id, ALEX, typo["id"], "Your refund is 45 EUR"),
        )
        await expect(bubble).to_contain_text("45 EUR")
        await expect(bubble).to_have_attribute("data-edited", "true")
        await send(http, two_team_bot.url, thread_delete(standin.url, thread_id, ALEX, typo["id"]))
        await expect(bubble.locator(".msg-text")).to_have_text("This message was deleted.")

        # A reload reconnects and replays: the conversation is still there, nothing twice.
        await page.reload()
        if not await page.locator("#chat-panel").is_visible():
            await page.click("#chat-launcher")
        specialists = page.locator('.msg[data-role="specialist"]')
        await expect(specialists.filter(has_text="example.com/help")).to_have_count(
            1, timeout=15_000
        )
        # Replay re-applies the edit and the deletion, in order.
        await expect(specialists.last.locator(".msg-text")).to_have_text(
            "This message was deleted."
        )
        assert await page.locator('.msg-text:has-text("Alex Wilber has joined")').count() == 1
        assert dialogs == []


async def test_the_widget_waits_as_asked_and_sends_everything_in_order(
    standin: Standin, tmp_path: Path, start_process: ProcessFactory
) -> None:
    """Typed faster than the conversation's rate: the widget waits as long as each 429 says,
    then sends again, in order; nothing is lost and nothing is left marked "not sent"."""
    from playwright.async_api import expect

    config = tmp_path / "handoff.yaml"
    limits = "limits:\n  messages_per_conversation: {per_minute: 120, burst: 3}\n"
    config.write_text(one_route_yaml(standin.url, tmp_path / "h.db", extra=limits))
    bot = await start_process(config)
    async with chromium() as browser:
        page = await browser.new_page()
        await open_widget(page, bot.url + "/")
        texts = [f"quick note {n}" for n in range(7)]
        for text in texts:
            await page.fill("#chat-input", text)
            await page.keyboard.press("Enter")
        delivered = page.locator('.msg[data-role="user"][data-status="delivered"]')
        await expect(delivered).to_have_count(len(texts), timeout=30_000)
        shown = await page.locator('.msg[data-role="user"] .msg-text').all_inner_texts()
        assert shown == texts
        assert await page.locator(".msg-failed").count() == 0
    bot.stop()
    assert "refused, too many" in bot.log.read_text()  # the limit was met, and waited out


async def test_a_message_that_could_not_be_sent_goes_again_on_retry(
    two_team_bot: BotProcess, standin: Standin
) -> None:
    """The bot goes away: the widget says it is reconnecting, and a message sent meanwhile is
    marked "not sent" with a retry button; the bot is back: the banner goes, retry delivers it."""
    from playwright.async_api import expect

    async with chromium() as browser:
        page = await browser.new_page()
        await open_widget(page, two_team_bot.url + "/")
        two_team_bot.kill()
        banner = page.locator("#chat-banner")
        await expect(banner).to_be_visible(timeout=15_000)
        await expect(banner).to_contain_text("Reconnecting")
        await page.fill("#chat-input", "are you still there?")
        await page.press("#chat-input", "Enter")
        mine = page.locator('.msg[data-role="user"]')
        await expect(mine).to_have_attribute("data-status", "failed", timeout=30_000)
        await expect(mine.locator(".msg-status")).to_have_text("Not sent — retry")

        await two_team_bot.start()
        await expect(banner).to_be_hidden(timeout=40_000)
        await page.get_by_role("button", name="Retry sending this message").click()
        await expect(mine).to_have_attribute("data-status", "delivered", timeout=15_000)
        await expect(mine).to_have_count(1)
        await expect(page.locator(".msg-failed")).to_have_count(0)
