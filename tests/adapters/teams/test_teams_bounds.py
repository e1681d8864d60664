"""What one client can make the Teams endpoint hold or write is bounded: ids, names, invokes."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from adapters.web.app import TEAMS
from tests.conftest import RunningBot
from tests.support.standin import Standin
from tests.support.teams import ALEX, send, thread_message


async def test_an_id_no_teams_would_send_is_refused_before_it_reaches_a_log(
    http: aiohttp.ClientSession,
    bot: RunningBot,
    standin: Standin,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    huge = "19:x@thread.tacv2;messageid=" + "9" * 900_000
    status, body = await send(http, bot.url, thread_message(standin.url, huge, ALEX, "hi"))
    assert status == 400 and body == {"error": {"message": "conversation.id is too long"}}
    card = thread_message(standin.url, "19:x@thread.tacv2;messageid=1", ALEX, "")
    card.update(
        type="invoke",
        name="adaptiveCard/action",
        value={"action": {"verb": "handoff.join", "data": {"handoffId": "h" * 900_000}}},
    )
    await send(http, bot.url, card)
    assert max(len(r.getMessage()) for r in caplog.records) < 2_000


async def test_names_from_teams_are_kept_bounded(
    http: aiohttp.ClientSession,
    bot: RunningBot,
    standin: Standin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("adapters.teams.inbound.NAMES_KEPT", 10)
    teams_bot = bot.app[TEAMS]._bot
    for n in range(30):
        activity = thread_message(standin.url, f"19:c{n}@thread.tacv2", ALEX, "hello")
        activity["channelData"]["channel"] = {"id": f"19:c{n}@thread.tacv2", "name": "N" * 500_000}
        activity["channelData"]["team"] = {"id": f"19:t{n}@thread.tacv2", "name": "T" * 500_000}
        status, _ = await send(http, bot.url, activity)
        assert status < 300
    assert len(teams_bot._names) <= 10
    assert max(len(name) for name in teams_bot._names.values()) <= 256


async def test_invokes_that_are_not_ours_get_501_without_a_traceback(
    http: aiohttp.ClientSession,
    bot: RunningBot,
    standin: Standin,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    for name in ("signin/tokenExchange", "signin/verifyState", "composeExtension/query", "x"):
        activity = thread_message(standin.url, "19:x@thread.tacv2", ALEX, "")
        activity.update(type="invoke", name=name, value={"id": "1", "token": "t"})
        status, _ = await send(http, bot.url, activity)
        assert status == 501, name
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
