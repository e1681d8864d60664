"""Thread lifecycle: internal notes, join timeouts, inactivity — sweeps driven with explicit times."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp

from adapters.runtime.clock import utc_now
from adapters.web.app import SERVICE
from tests.conftest import CHANNEL, ChatFactory, RunningBot
from tests.support.directline_client import DirectLineClient
from tests.support.scenarios import (
    Teams,
    card_of,
    card_text,
    card_updates,
    handed_off,
    joined,
    summary_in,
)
from tests.support.standin import Standin
from tests.support.teams import ALEX, thread_message


def route(**extra: Any) -> list[dict[str, Any]]:
    return [
        {"id": "support", "name": "Customer support", "channel": CHANNEL, **extra},
        {"id": "overflow", "name": "Overflow desk", "channel": "19:overflow@thread.tacv2"},
    ]


async def sweep(bot: RunningBot, minutes: float) -> None:
    await bot.app[SERVICE].sweep(now=utc_now() + timedelta(minutes=minutes))


async def test_notes_are_not_relayed(visitor: DirectLineClient, teams: Teams) -> None:
    thread_id, _, _ = await joined(visitor, teams)
    for note in ("// she is on the legacy plan", "Note: check the refund first"):
        await teams.write(thread_id, note)
    await teams.write(thread_id, "Hello Jane!")
    await visitor.wait_text("Hello Jane!")
    assert not any("legacy plan" in t or "refund first" in t for t in visitor.texts())


async def test_join_timeout_keeps_the_bot(start_chat: ChatFactory, standin: Standin) -> None:
    bot, visitor = await start_chat(routes=route(join_timeout_minutes=5))
    _, root, _ = await handed_off(visitor, standin)
    await sweep(bot, 4)
    assert standin.of("PUT") == []
    await sweep(bot, 6)
    await visitor.wait_text("none of our specialists could take your chat")
    assert visitor.statuses()[-1] == "failed"
    update = await card_updates(standin, root)
    assert "No one joined within" in card_text(card_of(update[-1]))
    assert [a["title"] for a in card_of(update[-1])["actions"]] == ["Transcript"]
    await visitor.say("what does it cost?")
    await visitor.wait_text("29 EUR")  # the bot is first responder again
    await sweep(bot, 30)  # nothing happens twice
    assert sum("none of our specialists" in t for t in visitor.texts()) == 1


async def test_join_timeout_leave_a_message(
    start_chat: ChatFactory, standin: Standin, http: aiohttp.ClientSession
) -> None:
    bot, visitor = await start_chat(
        routes=route(join_timeout_minutes=5, on_join_timeout="leave_message")
    )
    handoff = await handed_off(visitor, standin)
    await sweep(bot, 6)
    await visitor.wait_text("Leave your message here")
    update = await card_updates(standin, handoff.root)
    assert "visitor can leave a message" in card_text(card_of(update[-1]))
    await visitor.say("Please call me back on 555-0100")
    await standin.wait_text_in(handoff.thread_id, "555-0100")
    # Someone can still join later.
    status, body = await Teams(http, bot.url, standin).click(handoff, "handoff.join")
    assert "Alex Wilber joined" in card_text(body["value"])


async def test_join_timeout_tries_another_route(start_chat: ChatFactory, standin: Standin) -> None:
    bot, visitor = await start_chat(
        routes=route(join_timeout_minutes=5, on_join_timeout="route", join_timeout_route="overflow")
    )
    await handed_off(visitor, standin)
    await sweep(bot, 6)
    second = await standin.wait_for(
        lambda: standin.threads[1] if len(standin.threads) > 1 else None
    )
    assert second.body["channelData"]["channel"]["id"] == "19:overflow@thread.tacv2"
    assert "nobody joined on Customer support within 5 min" in card_text(card_of(second))
    # The visitor hears that the first team could not take it, then is queued with the next.
    await visitor.wait_text("none of our specialists")
    await visitor.wait_for(lambda: visitor.statuses()[-2:] == ["failed", "queued"])


async def test_idle_reminder_then_close_with_summary(
    start_chat: ChatFactory, standin: Standin, http: aiohttp.ClientSession
) -> None:
    bot, visitor = await start_chat(routes=route(idle_reminder_minutes=10, idle_close_minutes=20))
    thread_id, root, _ = await joined(visitor, Teams(http, bot.url, standin))
    await sweep(bot, 5)
    assert not any("still there" in t for t in visitor.texts())
    await sweep(bot, 11)
    await visitor.wait_text("Are you still there?")
    await sweep(bot, 12)
    assert sum("Are you still there?" in t for t in visitor.texts()) == 1  # reminded once
    await sweep(bot, 21)
    await visitor.wait_text("closed after a while without messages")
    ended = await card_updates(standin, root, showing="Closed automatically")
    assert "no messages for 21 min" in card_text(card_of(ended[-1]))
    await summary_in(standin, thread_id)


async def test_activity_resets_the_idle_clock(
    start_chat: ChatFactory, standin: Standin, http: aiohttp.ClientSession
) -> None:
    bot, visitor = await start_chat(routes=route(idle_reminder_minutes=10, idle_close_minutes=20))
    thread_id, _, _ = await joined(visitor, Teams(http, bot.url, standin))
    await sweep(bot, 11)
    await visitor.wait_text("Are you still there?")
    await visitor.say("yes, still here")  # now
    await standin.wait_text_in(thread_id, "still here")
    await sweep(bot, 15)  # 15 min after the join, but only seconds after the visitor's reply
    assert not any("closed after a while" in t for t in visitor.texts())


async def test_a_left_message_request_closes_when_it_goes_quiet(
    start_chat: ChatFactory, standin: Standin
) -> None:
    bot, visitor = await start_chat(
        routes=route(
            join_timeout_minutes=5,
            on_join_timeout="leave_message",
            idle_reminder_minutes=10,
            idle_close_minutes=20,
        )
    )
    await handed_off(visitor, standin)
    await sweep(bot, 6)
    await visitor.wait_text("Leave your message here")
    await sweep(bot, 30)
    await visitor.wait_text("closed after a while without messages")
    await visitor.say("what does it cost?")
    await visitor.wait_text("29 EUR")  # the bot answers again


async def test_transfer_only_to_people(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    thread_id, _, _ = await joined(visitor, teams)
    channel = {"id": CHANNEL, "name": "General"}
    message = thread_message(standin.url, thread_id, ALEX, "/transfer", mentions=(channel,))
    message["entities"][-1]["mentioned"]["conversationIdentityType"] = "channel"
    await teams.send(message)
    await standin.wait_text_in(thread_id, "mention your colleague")
    assert not any("taken over" in t for t in visitor.texts())
