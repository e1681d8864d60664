"""The Teams delivery queue against the connector stand-in, with the real windows made faster."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from adapters.runtime.httpclient import HttpClient
from adapters.storage.memory import MemoryStore
from adapters.teams.auth import BotCredentials, ConnectorTokens
from adapters.teams.connector import BotConnector
from adapters.teams.delivery import DeliveryQueue
from tests.support.standin import Standin

THREAD = "19:support@thread.tacv2;messageid=1"
# The real Teams windows, 20x faster, so a 100-message burst takes seconds, not minutes.
FAST_THREAD = ((7, 0.05), (8, 0.1), (60, 1.5), (1800, 180.0))
FAST_TENANT = ((50, 0.05),)


def make_connector(url: str, tokens: Any = None, tenant_id: str = "t") -> BotConnector:
    """A connector as the app builds one; ``tokens``: a stand-in token source, if any."""
    return BotConnector(
        tokens=tokens or ConnectorTokens(BotCredentials()),
        service_url=url,
        tenant_id=tenant_id,
        bot_id="b",
        bot_name="Ava",
    )


@contextlib.asynccontextmanager
async def connected(standin: Standin, tokens: Any = None) -> AsyncIterator[BotConnector]:
    made = make_connector(standin.url, tokens)
    client = HttpClient()
    made.use_client(client)
    try:
        yield made
    finally:
        await client.close()


def queue(connector: BotConnector, store: object | None = None) -> DeliveryQueue:
    return DeliveryQueue(
        connector=connector,
        store=store or MemoryStore(),  # type: ignore[arg-type]
        thread_windows=FAST_THREAD,
        tenant_windows=FAST_TENANT,
        backoff_base=0.01,
    )


def delivered(standin: Standin) -> list[str]:
    """Delivered posts, each once (retries answered with an error are not deliveries)."""
    return [
        c.body.get("text", "")
        for c in standin.calls
        if c.path.endswith("/activities") and c.method == "POST" and c not in standin.refused
    ]
