"""Ready and alive differ: ``/readyz`` says whether to send this instance traffic. It fails
while the store fails, and first of all when the instance is told to stop (SIGTERM): for
``server.drain_seconds`` it is alive and unready, and its widgets stay connected; then they are
told "going away" and the process exits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from adapters.storage.sqlite import SqliteStore
from adapters.web.app import STORE
from adapters.web.middleware import RETRY_AFTER
from adapters.web.readiness import READINESS
from tests.conftest import ProcessFactory, RunningBot, VisitorFactory, one_route_yaml
from tests.support.faults import faulty
from tests.support.standin import Standin


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], str]:
    async with http.get(url) as r:
        return r.status, await r.json(), r.headers.get("Retry-After", "")


async def test_ready_until_draining_and_while_the_store_works(
    bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await _get(http, f"{bot.url}/readyz")
    assert (status, body) == (200, {"status": "ready", "store": "ok", "config": "loaded"})

    store = bot.app[STORE]
    assert isinstance(store, SqliteStore)
    with faulty(store) as disk:
        disk.full = True
        # A commit fails (and that answers 503 itself): from then on, until commits work again.
        async with http.post(f"{bot.directline}/tokens/generate", headers={"Origin": bot.url}) as r:
            assert r.status == 503
        status, body, retry = await _get(http, f"{bot.url}/readyz")
        assert (status, body["status"], retry) == (503, "failing", RETRY_AFTER)
        assert body["store"]
        disk.full = False
    assert (await _get(http, f"{bot.url}/readyz"))[0] == 200

    bot.app[READINESS].draining = True
    status, body, retry = await _get(http, f"{bot.url}/readyz")
    assert (status, body["status"], retry) == (503, "draining", RETRY_AFTER)
    assert (await _get(http, f"{bot.url}/healthz"))[0] == 200  # alive all the same


async def test_sigterm_makes_it_unready_first_then_closes_widgets_and_exits(
    standin: Standin,
    tmp_path: Path,
    start_process: ProcessFactory,
    start_visitor: VisitorFactory,
    http: aiohttp.ClientSession,
) -> None:
    config = tmp_path / "handoff.yaml"
    drain = "server:\n  drain_seconds: 2\n"
    config.write_text(one_route_yaml(standin.url, tmp_path / "h.db", extra=drain))
    bot = await start_process(config)
    visitor = await start_visitor(bot)
    async with http.ws_connect(visitor.stream_url) as ws:
        await ws.receive_json(timeout=5)
        assert bot.process is not None
        bot.process.terminate()
        signalled = time.monotonic()
        # Unready at once, while still alive and still serving its widgets.
        for _ in range(100):
            status, body, _ = await _get(http, f"{bot.url}/readyz")
            if status == 503:
                break
            await asyncio.sleep(0.02)
        assert (status, body["status"]) == (503, "draining")
        assert (await _get(http, f"{bot.url}/healthz"))[0] == 200
        assert not ws.closed
        # Then the widgets are told to go elsewhere, after the drain and not before.
        closed = await ws.receive(timeout=10)
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closed
        assert ws.close_code == 1001
        assert time.monotonic() - signalled >= 1.9
    code = await asyncio.get_running_loop().run_in_executor(None, bot.process.wait, 10)
    assert code == 0
    await visitor.disconnect()
