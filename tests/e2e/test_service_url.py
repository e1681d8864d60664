"""Where proactive calls go: the service URL Teams last used for the tenant when Teams said so
(an authenticated activity), never a URL an unauthenticated request names (local mode)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.adapters.teams.test_teams_auth import (  # noqa: F401 (fixtures)
    ORIGIN,
    ProductionFactory,
    issuer,
    post,
    start_production,
    token,
)
from tests.conftest import CHANNEL, RunningBot, _serve
from tests.e2e.test_handoff_story import open_handoff
from tests.support.directline_client import DirectLineClient
from tests.support.standin import Standin, build_standin_app
from tests.support.teams import ALEX, send, thread_message


@pytest.fixture
async def moved() -> AsyncIterator[Standin]:
    """Another connector: where Teams (or someone claiming to be Teams) says the tenant is."""
    state = Standin()
    runner, state.url = await _serve(build_standin_app(state))
    yield state
    await runner.cleanup()


async def test_learned_service_url_wins(
    http: aiohttp.ClientSession,
    start_production: ProductionFactory,  # noqa: F811
    standin: Standin,
    moved: Standin,
) -> None:
    production = await start_production()
    # An authenticated activity (its token's serviceurl claim matches) says where the tenant's
    # connector now is.
    chatter = thread_message(moved.url, f"{CHANNEL};messageid=77", ALEX, "hi", mention=False)
    status, _ = await post(http, production.url, chatter, f"Bearer {token(moved.url)}")
    assert status in (200, 201)
    visitor = DirectLineClient(http, production.running.directline, origin=ORIGIN)
    await visitor.start()
    try:
        await open_handoff(visitor, moved)
    finally:
        await visitor.disconnect()
    assert moved.threads and standin.threads == []


async def test_local_mode_sends_only_to_the_configured_service_url(
    bot: RunningBot,
    visitor: DirectLineClient,
    standin: Standin,
    moved: Standin,
    http: aiohttp.ClientSession,
) -> None:
    # Local mode authenticates nothing: anyone could post this.
    status, _ = await send(
        http,
        bot.url,
        thread_message(moved.url, f"{CHANNEL};messageid=77", ALEX, "hi", mention=False),
    )
    assert status in (200, 201)
    await open_handoff(visitor, standin)
    assert standin.threads and moved.calls == []
