"""A specialist hands over to a colleague; edits and deletions of relayed messages follow."""

from __future__ import annotations

import aiohttp

from tests.conftest import RunningBot
from tests.e2e.test_handoff_story import card_of, card_text, open_handoff
from tests.support.directline_client import DirectLineClient
from tests.support.standin import Standin
from tests.support.teams import (
    ALEX,
    ISAIAH,
    card_action,
    send,
    thread_delete,
    thread_edit,
    thread_message,
)


async def joined(
    bot: RunningBot, visitor: DirectLineClient, standin: Standin, http: aiohttp.ClientSession
) -> tuple[str, str]:
    thread_id, root, handoff_id = await open_handoff(visitor, standin)
    await send(http, bot.url, card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id))
    await visitor.wait_text("has joined")
    return thread_id, root


async def test_transfer_to_a_colleague(
    bot: RunningBot, visitor: DirectLineClient, standin: Standin, http: aiohttp.ClientSession
) -> None:
    thread_id, root = await joined(bot, visitor, standin, http)
    # Only the joined specialist can hand over, and only to someone they mention.
    await send(
        http, bot.url, thread_message(standin.url, thread_id, ISAIAH, "/transfer", mentions=(ALEX,))
    )
    await send(http, bot.url, thread_message(standin.url, thread_id, ALEX, "/transfer"))
    await standin.wait_for(
        lambda: any(
            "mention your colleague" in c.body.get("text", "") for c in standin.posts_to(thread_id)
        )
    )
    await send(
        http, bot.url, thread_message(standin.url, thread_id, ALEX, "/transfer", mentions=(ISAIAH,))
    )
    await visitor.wait_text("Isaiah Langer has taken over your conversation")
    await standin.wait_for(
        lambda: any(
            "Isaiah Langer now has this conversation" in c.body.get("text", "")
            for c in standin.posts_to(thread_id)
        )
    )
    update = await standin.wait_for(
        lambda: [
            c for c in standin.of("PUT", root) if "Isaiah Langer joined" in card_text(card_of(c))
        ]
    )
    assert update
    # Isaiah now talks to the visitor; Alex's messages are internal notes.
    await send(http, bot.url, thread_message(standin.url, thread_id, ISAIAH, "Hi, Isaiah here."))
    reply = await visitor.wait_text("Isaiah here")
    assert reply["from"]["name"] == "Isaiah Langer"
    await send(http, bot.url, thread_message(standin.url, thread_id, ALEX, "bye from Alex"))
    await visitor.say("thanks")
    await standin.wait_for(
        lambda: any("thanks" in c.body.get("text", "") for c in standin.posts_to(thread_id))
    )
    assert not any("bye from Alex" in t for t in visitor.texts())
    assert not any("Only" in t for t in visitor.texts())


async def test_edits_and_deletions_reach_the_widget(
    bot: RunningBot, visitor: DirectLineClient, standin: Standin, http: aiohttp.ClientSession
) -> None:
    thread_id, _ = await joined(bot, visitor, standin, http)
    message = thread_message(standin.url, thread_id, ALEX, "Your refund is 40 EUR")
    await send(http, bot.url, message)
    original = await visitor.wait_text("Your refund is 40 EUR")

    await send(
        http,
        bot.url,
        thread_edit(standin.url, thread_id, ALEX, message["id"], "Your refund is 45 EUR"),
    )
    update = await visitor.wait_for(
        lambda: next((a for a in visitor.activities if a["type"] == "messageUpdate"), None)
    )
    assert update["replyToId"] == original["id"] and update["text"] == "Your refund is 45 EUR"
    assert update["from"]["name"] == "Alex Wilber"

    await send(http, bot.url, thread_delete(standin.url, thread_id, ALEX, message["id"]))
    deleted = await visitor.wait_for(
        lambda: next((a for a in visitor.activities if a["type"] == "messageDelete"), None)
    )
    assert deleted["replyToId"] == original["id"]

    # Notes and unknown messages have nothing to edit in the widget.
    note = thread_message(standin.url, thread_id, ALEX, "// internal")
    await send(http, bot.url, note)
    await send(
        http, bot.url, thread_edit(standin.url, thread_id, ALEX, note["id"], "// still internal")
    )
    await send(http, bot.url, thread_message(standin.url, thread_id, ALEX, "sync"))
    await visitor.wait_text("sync")
    assert sum(a["type"] == "messageUpdate" for a in visitor.activities) == 1
