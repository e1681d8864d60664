"""A specialist's text with a lone UTF-16 surrogate (half an emoji, as JSON can spell it) is
relayed with U+FFFD in its place, as the widget side does: never acknowledged and dropped."""

from __future__ import annotations

import json

import aiohttp

from tests.conftest import RunningBot
from tests.e2e.test_handoff_story import open_handoff
from tests.support.directline_client import DirectLineClient
from tests.support.standin import Standin
from tests.support.teams import ALEX, card_action, send, thread_edit, thread_message


async def _post_raw(http: aiohttp.ClientSession, bot: RunningBot, body: str) -> int:
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{bot.url}/api/messages", data=body.encode(), headers=headers) as r:
        return r.status


async def test_a_lone_surrogate_from_teams_reaches_the_visitor_as_a_replacement_character(
    http: aiohttp.ClientSession, bot: RunningBot, visitor: DirectLineClient, standin: Standin
) -> None:
    thread_id, _, handoff_id = await open_handoff(visitor, standin)
    await send(http, bot.url, card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id))
    await visitor.wait_text("has joined")

    reply = thread_message(standin.url, thread_id, ALEX, "Sorted \ud83d, anything else?")
    body = json.dumps(reply)  # ASCII: the surrogate travels as "\ud83d", as a client may send it
    assert "\\ud83d" in body
    assert await _post_raw(http, bot, body) in (200, 201)
    relayed = await visitor.wait_text("anything else?")
    assert relayed["text"] == "Sorted \ufffd, anything else?"
    assert relayed["from"]["name"] == "Alex Wilber"

    # An edit with one is applied the same way.
    edit = thread_edit(standin.url, thread_id, ALEX, reply["id"], "Sorted \udc00 now")
    assert await _post_raw(http, bot, json.dumps(edit)) in (200, 201)
    update = await visitor.wait_for(
        lambda: next((a for a in visitor.activities if a["type"] == "messageUpdate"), None)
    )
    assert update["replyToId"] == relayed["id"] and update["text"] == "Sorted \ufffd now"
