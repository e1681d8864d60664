"""Fixtures the Teams adapter tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.teams.connector import BotConnector
from tests.support.delivery import connected
from tests.support.standin import Standin


@pytest.fixture
async def connector(standin: Standin) -> AsyncIterator[BotConnector]:
    """A connector to the stand-in, with its own HTTP client."""
    async with connected(standin) as made:
        yield made
