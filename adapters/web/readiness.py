"""Readiness: whether this instance should be sent new traffic (``GET /readyz``).

Alive (``/healthz``) and ready differ while an instance stops: on SIGTERM it first stops being
ready, so that load balancers and probes take it out of rotation, and only after
``server.drain_seconds`` does it close its widget sockets (the widgets reconnect to another
instance) and finish what is under way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from adapters.runtime import jsonio
from adapters.web.middleware import RETRY_AFTER


class Readiness:
    """Draining or not; ``grace``: how long to stay up, unready, before stopping."""

    def __init__(
        self, problem: Callable[[], Awaitable[str | None]], grace: Callable[[], float]
    ) -> None:
        self._problem = problem
        self.grace = grace
        self.draining = False

    async def handle(self, request: web.Request) -> web.Response:
        """200 when ready; 503 with Retry-After while draining or while the store fails."""
        if self.draining:
            return _unready({"status": "draining", "store": "not checked"})
        problem = await self._problem()
        if problem is not None:
            return _unready({"status": "failing", "store": problem})
        return jsonio.response({"status": "ready", "store": "ok", "config": "loaded"})


def _unready(body: dict[str, str]) -> web.Response:
    return jsonio.response(body, status=503, headers={"Retry-After": RETRY_AFTER})


READINESS = web.AppKey("readiness", Readiness)
