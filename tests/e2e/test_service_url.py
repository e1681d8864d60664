"""Where proactive calls go: the service URL Teams last used for the tenant when Teams said so
(an authenticated activity), never a URL an unauthenticated request names (local mode)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import CHANNEL, VisitorFactory
from tests.support.auth import ORIGIN, ProductionFactory, post, token
from tests.support.directline_client import DirectLineClient
from tests.support.scenarios import Teams, handed_off
from tests.support.standin import Standin, running_standin
from tests.support.teams import ALEX, thread_message


@pytest.fixture
async def moved() -> AsyncIterator[Standin]:
    """Another connector: where Teams (or someone claiming to be Teams) says the tenant is."""
    async with running_standin() as state:
        yield state


async def test_learned_service_url_wins(
    http: aiohttp.ClientSession,
    start_production: ProductionFactory,
    start_visitor: VisitorFactory,
    standin: Standin,
    moved: Standin,
) -> None:
    production = await start_production()
    # An authenticated activity (its token's serviceurl claim matches) says where the tenant's
    # connector now is.
    chatter = thread_message(moved.url, f"{CHANNEL};messageid=77", ALEX, "hi", mention=False)
    status, _ = await post(http, production.url, chatter, f"Bearer {token(moved.url)}")
    assert status in (200, 201)
    visitor = await start_visitor(production, origin=ORIGIN)
    await handed_off(visitor, moved)
    await visitor.disconnect()
    assert moved.threads and standin.threads == []


async def test_local_mode_sends_only_to_the_configured_service_url(
    visitor: DirectLineClient, standin: Standin, moved: Standin, teams: Teams
) -> None:
    # Local mode authenticates nothing: anyone could post this.
    status, _ = await teams.send(
        thread_message(moved.url, f"{CHANNEL};messageid=77", ALEX, "hi", mention=False)
    )
    assert status in (200, 201)
    await handed_off(visitor, standin)
    assert standin.threads and moved.calls == []
