"""A specialist's text with a lone UTF-16 surrogate (half an emoji, as JSON can spell it) is
relayed with U+FFFD in its place, as the widget side does: never acknowledged and dropped."""

from __future__ import annotations

import json

import aiohttp

from tests.conftest import RunningBot
from tests.support.directline_client import DirectLineClient
from tests.support.scenarios import Teams, joined
from tests.support.standin import Standin
from tests.support.teams import ALEX, thread_edit, thread_message


async def _post_raw(http: aiohttp.ClientSession, bot: RunningBot, body: str) -> int:
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{bot.url}/api/messages", data=body.encode(), headers=headers) as r:
        return r.status


async def test_a_lone_surrogate_from_teams_reaches_the_visitor_as_a_replacement_character(
    http: aiohttp.ClientSession,
    bot: RunningBot,
    visitor: DirectLineClient,
    standin: Standin,
    teams: Teams,
) -> None:
    thread_id, _, _ = await joined(visitor, teams)

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
    update = await visitor.wait_type("messageUpdate")
    assert update["replyToId"] == relayed["id"] and update["text"] == "Sorted \ufffd now"
