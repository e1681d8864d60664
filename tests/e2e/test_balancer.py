"""The round-robin balancer the multi-instance tests put in front of several app processes:
new connections take turns, a backend that is down is skipped, WebSockets pass through, and a
backend's open connections can be cut."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.support.balancer import balancing
from tests.support.servers import serve

pytestmark = pytest.mark.e2e


def named(name: str) -> web.Application:
    async def who(request: web.Request) -> web.Response:
        return web.Response(text=name)

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(f"{name}:{message.data}")
        return ws

    app = web.Application()
    app.router.add_get("/", who)
    app.router.add_get("/ws", echo)
    return app


@pytest.fixture
async def backends() -> AsyncIterator[list[tuple[web.AppRunner, int]]]:
    made = []
    for name in ("a", "b"):
        runner, url = await serve(named(name))
        made.append((runner, int(url.rsplit(":", 1)[1])))
    yield made
    for runner, _ in made:
        await runner.cleanup()


async def fresh_get(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return await r.text()


async def test_turns_skips_the_down_and_cuts_on_demand(
    backends: list[tuple[web.AppRunner, int]],
) -> None:
    async with balancing([("127.0.0.1", port) for _, port in backends]) as balancer:
        assert [await fresh_get(balancer.url) for _ in range(4)] == ["a", "b", "a", "b"]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{balancer.url}/ws") as ws:
            await ws.send_str("hi")
            reply = await ws.receive_str(timeout=5)
            assert reply in ("a:hi", "b:hi")
            balancer.drop(0 if reply.startswith("a") else 1)
            closed = await ws.receive(timeout=5)
            assert closed.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            )
        await backends[0][0].cleanup()  # a is down: every new connection goes to b
        assert [await fresh_get(balancer.url) for _ in range(3)] == ["b", "b", "b"]
