"""Shared fixtures: real servers on loopback, no mocks of HTTP."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.ops.config_file import load_settings
from adapters.runtime.clock import utc_now
from adapters.teams.auth import BotCredentials
from adapters.web.app import SERVICE, create_app
from adapters.web.proxies import Proxies
from adapters.web.server import start as start_server
from bot.config import Settings
from tests.support.directline_client import DirectLineClient
from tests.support.processes import BotProcess, free_port
from tests.support.standin import Standin, build_standin_app
from tests.support.teams import TENANT

CHANNEL = "19:support@thread.tacv2"
IN_CI = os.environ.get("CI") == "true"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """asyncio's loop; tests marked ``both_loops`` also run on uvloop (the app's default)."""
    if item.get_closest_marker("both_loops") is None:
        return {"asyncio": asyncio.new_event_loop}
    import uvloop

    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def need(condition: bool, reason: str) -> None:
    """Skip outside CI when a tool is missing; in CI a missing tool is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def standin() -> AsyncIterator[Standin]:
    state = Standin()
    runner, state.url = await _serve(build_standin_app(state))
    yield state
    await runner.cleanup()


def test_settings(standin: Standin, db: Path, **sections: Any) -> Settings:
    data: dict[str, Any] = {
        "teams": {"service_url": standin.url, "tenant_id": TENANT},
        "routes": [
            {
                "id": "support",
                "name": "Customer support",
                "channel": CHANNEL,
                "categories": ["billing"],
            },
            {"id": "sales", "name": "Sales", "channel": "19:sales@thread.tacv2"},
        ],
        "storage": {"sqlite_path": str(db)},
    }
    data.update(sections)
    return Settings.model_validate(data)


@dataclass
class RunningBot:
    url: str
    app: web.Application
    runner: web.AppRunner
    server: asyncio.Server | None = None

    @property
    def directline(self) -> str:
        return f"{self.url}/v3/directline"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.runner.server is not None:
            await self.runner.cleanup()

    def set_settings(self, settings: Settings) -> None:
        self.app[SERVICE].settings = settings

    def without_rate_limits(self) -> None:
        """For tests that post in bulk on purpose: no per-client or per-conversation rates, and
        no cap on what may wait for a Teams thread."""
        settings = self.app[SERVICE].settings
        off = settings.limits.model_copy(
            update={
                "conversations_per_ip": None,
                "conversations_per_origin": None,
                "messages_per_conversation": None,
                "teams_backlog": 10_000,
            }
        )
        self.set_settings(settings.model_copy(update={"limits": off}))


BotFactory = Callable[..., Awaitable[RunningBot]]


@pytest.fixture
async def start_bot(standin: Standin, tmp_path: Path) -> AsyncIterator[BotFactory]:
    running: list[RunningBot] = []

    async def start(
        db: Path | None = None,
        env: dict[str, str] | None = None,
        clock: Callable[[], datetime] = utc_now,
        config: Path | None = None,
        retention_interval: float = 3600.0,
        **sections: Any,
    ) -> RunningBot:
        if config is not None:
            settings = load_settings(config)
        else:
            # One SQLite file per running bot (a file is one process's); a restart names its file.
            default = tmp_path / ("handoff.db" if not running else f"handoff-{len(running)}.db")
            settings = test_settings(standin, db or default, **sections)
        app = await create_app(
            settings,
            BotCredentials(),
            env=env or {},
            clock=clock,
            config_path=config,
            reload_interval=0.05,
            retention_interval=retention_interval,
        )
        runner, server, _caps = await start_server(
            app,
            "127.0.0.1",
            0,
            limits=lambda: app[SERVICE].settings.limits,
            proxies=Proxies(lambda: app[SERVICE].settings.server.trusted_proxies),
            header_timeout=settings.limits.header_timeout_seconds,
        )
        port = server.sockets[0].getsockname()[1]
        bot = RunningBot(f"http://127.0.0.1:{port}", app, runner, server)
        running.append(bot)
        return bot

    yield start
    for bot in running:
        await bot.stop()


@pytest.fixture
async def bot(start_bot: BotFactory) -> RunningBot:
    return await start_bot()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def visitor_factory(http: aiohttp.ClientSession) -> Callable[[RunningBot], DirectLineClient]:
    def make(bot: RunningBot) -> DirectLineClient:
        return DirectLineClient(http, bot.directline, origin=bot.url)

    return make


@pytest.fixture
async def visitor(
    bot: RunningBot, visitor_factory: Callable[[RunningBot], DirectLineClient]
) -> AsyncIterator[DirectLineClient]:
    client = visitor_factory(bot)
    await client.start()
    yield client
    await client.disconnect()


def one_route_config(folder: Path, standin: Standin, db: Path | None = None) -> Path:
    """A config file as ops write one: one route, to the stand-in, its own SQLite file."""
    config = folder / "handoff.yaml"
    config.write_text(
        f"teams:\n  service_url: {standin.url}\n  tenant_id: {TENANT}\n"
        f'routes:\n  - id: support\n    name: Customer support\n    channel: "{CHANNEL}"\n'
        f"storage:\n  sqlite_path: {db or folder / 'handoff.db'}\n"
    )
    return config


@pytest.fixture
async def bot_process(standin: Standin, tmp_path: Path) -> AsyncIterator[BotProcess]:
    """``python app.py`` as ops run it: one route, to the stand-in, its own SQLite file."""
    config = one_route_config(tmp_path, standin)
    process = BotProcess(config, free_port(), tmp_path / "bot.log")
    await process.start()
    yield process
    process.stop()
