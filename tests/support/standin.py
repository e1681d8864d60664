"""A local Bot Connector stand-in: records every call, answers like Teams, can misbehave on cue."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.servers import serve
from tests.support.waiting import wait_until


@dataclass
class Call:
    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Standin:
    """State of the fake connector; ``failures`` is a queue of (status, headers) to answer next."""

    calls: list[Call] = field(default_factory=list)
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # Calls answered with an injected failure.
    refused: list[Call] = field(default_factory=list)
    # (thread id, root activity id) of every thread created, oldest first.
    created: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    # While set to an unset Event, calls whose path contains ``hold_path`` wait for it.
    gate: asyncio.Event | None = None
    hold_path: str = "/activities"
    # Seconds every call waits before answering (to make a client time out).
    delay: float = 0.0

    def of(self, method: str, contains: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == method and contains in c.path]

    @property
    def threads(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST" and c.path == "/v3/conversations"]

    def posts_to(self, thread_id: str) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == "POST" and c.path.endswith("/activities") and thread_id in c.path
        ]

    def texts_in(self, thread_id: str) -> list[str]:
        """The texts of the posts into a thread (cards have none), oldest first."""
        return [c.body.get("text", "") for c in self.posts_to(thread_id) if "text" in c.body]

    async def wait_text_in(self, thread_id: str, fragment: str) -> list[str]:
        """Wait until a post into the thread holds ``fragment``; return the posts that do."""
        return await self.wait_for(lambda: [t for t in self.texts_in(thread_id) if fragment in t])

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy; return its value."""
        return await wait_until(self.changed, predicate, timeout)

    async def thread_opened(self, timeout: float = 10.0) -> Call:
        """The newest thread creation, once there is one."""
        return await self.wait_for(lambda: self.threads[-1] if self.threads else None, timeout)


def build_standin_app(state: Standin) -> web.Application:
    async def record(request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        from urllib.parse import unquote

        path = unquote(request.path)
        call = Call(request.method, path, body, dict(request.headers))
        if state.delay:
            await asyncio.sleep(state.delay)
        if state.gate is not None and state.hold_path in path:
            state.calls.append(call)
            state.changed.set()
            await state.gate.wait()
            state.calls.remove(call)
        if state.failures:
            status, headers = state.failures.pop(0)
            state.calls.append(call)
            state.refused.append(call)
            state.changed.set()
            return web.json_response(
                {"error": {"code": "Injected"}}, status=status, headers=headers
            )
        state.calls.append(call)
        state.changed.set()
        if request.method == "POST" and path == "/v3/conversations":
            root = str(next(state.ids))
            channel = body["channelData"]["channel"]["id"]
            state.created.append((f"{channel};messageid={root}", root))
            return web.json_response(
                {"id": f"{channel};messageid={root}", "activityId": root}, status=201
            )
        if request.method == "PUT":
            return web.json_response({"id": path.rsplit("/", 1)[-1]})
        return web.json_response({"id": str(next(state.ids))}, status=201)

    app = web.Application()
    app.router.add_route("*", "/v3/conversations", record)
    app.router.add_route("*", "/v3/conversations/{tail:.*}", record)
    return app


@asynccontextmanager
async def running_standin() -> AsyncIterator[Standin]:
    """A stand-in connector served on loopback for the duration."""
    state = Standin()
    runner, state.url = await serve(build_standin_app(state))
    try:
        yield state
    finally:
        await runner.cleanup()
