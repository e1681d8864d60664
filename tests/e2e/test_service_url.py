"""Proactive calls go to the service URL Teams last used for the tenant, not a stale config."""

from __future__ import annotations

import aiohttp

from tests.conftest import CHANNEL, RunningBot, _serve
from tests.e2e.test_handoff_story import open_handoff
from tests.support.directline_client import DirectLineClient
from tests.support.standin import Standin, build_standin_app
from tests.support.teams import ALEX, send, thread_message


async def test_learned_service_url_wins(
    bot: RunningBot, visitor: DirectLineClient, standin: Standin, http: aiohttp.ClientSession
) -> None:
    moved = Standin()
    runner, moved.url = await _serve(build_standin_app(moved))
    try:
        # Any authenticated Teams activity tells us where the tenant's connector now is.
        await send(
            http,
            bot.url,
            thread_message(moved.url, f"{CHANNEL};messageid=77", ALEX, "hi", mention=False),
        )
        await open_handoff(visitor, moved)
        assert moved.threads and standin.threads == []
    finally:
        await runner.cleanup()
