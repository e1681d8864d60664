"""Shared fixtures: real servers on loopback, no mocks of HTTP."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import aiohttp
import pytest
from aiohttp import web

from adapters.ops.config_file import load_settings
from adapters.ops.settings import ServiceSettings
from adapters.runtime.clock import utc_now
from adapters.teams.auth import BotCredentials, ConnectorTokens
from adapters.web.app import SERVICE, create_app
from adapters.web.proxies import Proxies
from adapters.web.server import start as start_server
from tests.support.auth import (
    APP_ID,
    ORIGIN,
    FakeMsal,
    Issuer,
    ProductionBot,
    ProductionFactory,
    running_issuer,
)
from tests.support.directline_client import DirectLineClient
from tests.support.postgres import Cluster, running_cluster
from tests.support.postgres import missing as postgres_missing
from tests.support.processes import BotProcess, free_port
from tests.support.scenarios import Teams
from tests.support.servers import serve
from tests.support.standin import Standin, running_standin
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


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """The suite's throwaway PostgreSQL cluster: started on first use, removed at the end."""
    reason = postgres_missing()
    need(not reason, reason)
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
async def postgres_url(postgres: Cluster) -> AsyncIterator[str]:
    """A fresh database of the suite's cluster, for one test."""
    async with postgres.database() as url:
        yield url


@pytest.fixture
async def standin() -> AsyncIterator[Standin]:
    async with running_standin() as state:
        yield state


def test_settings(standin: Standin, db: Path, **sections: Any) -> ServiceSettings:
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
    return ServiceSettings.model_validate(data)


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

    def set_settings(self, settings: ServiceSettings) -> None:
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
async def running_bots() -> AsyncIterator[list[RunningBot]]:
    """Every in-process bot a test starts, stopped after it."""
    running: list[RunningBot] = []
    yield running
    for bot in running:
        await bot.stop()


@pytest.fixture
def start_bot(standin: Standin, tmp_path: Path, running_bots: list[RunningBot]) -> BotFactory:
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
            n = len(running_bots)
            default = tmp_path / ("handoff.db" if not n else f"handoff-{n}.db")
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
        running_bots.append(bot)
        return bot

    return start


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


class Served(Protocol):
    """A bot in this process or in its own (``RunningBot``, ``BotProcess``, ``ProductionBot``)."""

    @property
    def url(self) -> str: ...


VisitorFactory = Callable[..., Awaitable[DirectLineClient]]


@pytest.fixture
async def start_visitor(http: aiohttp.ClientSession) -> AsyncIterator[VisitorFactory]:
    """Open a visitor's widget on a bot (from the bot's own page unless ``origin`` says)."""
    opened: list[DirectLineClient] = []

    async def start(bot: Served, origin: str = "") -> DirectLineClient:
        client = DirectLineClient(http, f"{bot.url}/v3/directline", origin=origin or bot.url)
        opened.append(client)
        await client.start()
        return client

    yield start
    for client in opened:
        await client.disconnect()


@pytest.fixture
async def visitor(bot: RunningBot, start_visitor: VisitorFactory) -> DirectLineClient:
    return await start_visitor(bot)


class Chat(NamedTuple):
    bot: RunningBot
    visitor: DirectLineClient


ChatFactory = Callable[..., Awaitable[Chat]]


@pytest.fixture
def start_chat(start_bot: BotFactory, start_visitor: VisitorFactory) -> ChatFactory:
    """A bot started as ``start_bot`` takes it, and a visitor's widget open on it."""

    async def start(**options: Any) -> Chat:
        bot = await start_bot(**options)
        return Chat(bot, await start_visitor(bot))

    return start


@pytest.fixture
def teams(http: aiohttp.ClientSession, bot: RunningBot, standin: Standin) -> Teams:
    """The specialists' side of the default ``bot``."""
    return Teams(http, bot.url, standin)


def one_route_yaml(
    service_url: str, db: Path, *, tenant: str = TENANT, channel: str = CHANNEL, extra: str = ""
) -> str:
    """A config as ops write one: one route, its own SQLite file, then ``extra`` YAML."""
    return (
        f"teams:\n  service_url: {service_url}\n  tenant_id: {tenant}\n"
        f'routes:\n  - id: support\n    name: Customer support\n    channel: "{channel}"\n'
        f"storage:\n  sqlite_path: {db}\n{extra}"
    )


def one_route_config(folder: Path, standin: Standin, db: Path | None = None) -> Path:
    """A config file as ops write one: one route, to the stand-in, its own SQLite file."""
    config = folder / "handoff.yaml"
    config.write_text(one_route_yaml(standin.url, db or folder / "handoff.db"))
    return config


ProcessFactory = Callable[..., Awaitable[BotProcess]]


@pytest.fixture
async def start_process(tmp_path: Path) -> AsyncIterator[ProcessFactory]:
    """``python app.py --config ...`` on a free port, logging to ``bot.log``; stopped after."""
    started: list[BotProcess] = []

    async def start(config: Path, **options: Any) -> BotProcess:
        process = BotProcess(config, free_port(), tmp_path / "bot.log", **options)
        started.append(process)
        await process.start()
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
async def bot_process(
    standin: Standin, tmp_path: Path, start_process: ProcessFactory
) -> BotProcess:
    """``python app.py`` as ops run it: one route, to the stand-in, its own SQLite file."""
    return await start_process(one_route_config(tmp_path, standin))


# ---- production mode: inbound tokens checked, outbound tokens fetched ----------------------


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    async with running_issuer() as state:
        yield state


@pytest.fixture
def start_production(
    standin: Standin, tmp_path: Path, issuer: Issuer, running_bots: list[RunningBot]
) -> ProductionFactory:
    """A bot with an app id: inbound tokens checked against ``issuer``, outbound from MSAL."""

    async def start(app_type: str = "MultiTenant", **overrides: Any) -> ProductionBot:
        fields: dict[str, Any] = {
            "app_id": APP_ID,
            "password": "x",
            "app_type": app_type,
            "tenant_id": TENANT if app_type == "SingleTenant" else "",
            "openid_metadata_url": issuer.metadata_url,
            **overrides,
        }
        credentials = BotCredentials(**fields)
        msal = FakeMsal()
        settings = test_settings(
            standin, tmp_path / f"{uuid.uuid4().hex}.db", widget={"allowed_origins": [ORIGIN]}
        )
        app = await create_app(
            settings, credentials, env={}, tokens=ConnectorTokens(credentials, client=msal)
        )
        runner, url = await serve(app)
        bot = RunningBot(url, app, runner)
        running_bots.append(bot)
        return ProductionBot(bot, msal, credentials)

    return start
