"""The app's resources, one cleanup context each: a stop closes them in order (timers first,
the store last), a start that fails half-way closes what it had opened, and a close that fails
does not keep the rest open."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from adapters.directline.channel import DirectLineChannel
from adapters.directline.inbox import Inbox
from adapters.ops.config_file import load_settings
from adapters.runtime.httpclient import HttpClient
from adapters.storage.sqlite import SqliteStore
from adapters.teams.auth import BotCredentials
from adapters.teams.delivery import DeliveryQueue
from adapters.web.app import SERVICE, create_app
from adapters.web.proxies import Proxies
from adapters.web.server import start, stop
from tests.conftest import one_route_config
from tests.conftest import test_settings as settings_for
from tests.support.standin import Standin

HOUSEKEEPING = {"recovery", "sweeper", "retention", "config-watch"}
# What each recorded close is, by the method that closes it.
CLOSES: list[tuple[str, type, str]] = [
    ("store", SqliteStore, "close"),
    ("client", HttpClient, "close"),
    ("delivery", DeliveryQueue, "close"),
    ("inbox", Inbox, "drain"),
    ("directline", DirectLineChannel, "close"),
]

Closed = list[tuple[str, list[str]]]


def _housekeeping_running() -> list[str]:
    return sorted(
        t.get_name() for t in asyncio.all_tasks() if t.get_name() in HOUSEKEEPING and not t.done()
    )


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> Closed:
    """Every close of an app resource, in order, each with the housekeeping tasks still
    running when it began."""
    calls: Closed = []
    for name, cls, method in CLOSES:
        original: Callable[..., Awaitable[None]] = getattr(cls, method)

        async def recorded(
            self: Any, *args: Any, _name: str = name, _original: Any = original, **kw: Any
        ) -> None:
            calls.append((_name, _housekeeping_running()))
            await _original(self, *args, **kw)

        monkeypatch.setattr(cls, method, recorded)
    return calls


async def _serve(app: web.Application) -> tuple[web.AppRunner, asyncio.Server]:
    runner, server, _caps = await start(
        app,
        "127.0.0.1",
        0,
        limits=lambda: app[SERVICE].settings.limits,
        proxies=Proxies(lambda: ()),
        header_timeout=5.0,
    )
    return runner, server


async def test_a_stop_closes_timers_first_then_direct_line_delivery_client_and_store_last(
    standin: Standin, tmp_path: Path, closed: Closed
) -> None:
    config = one_route_config(tmp_path, standin)
    app = await create_app(
        load_settings(config), BotCredentials(), env={}, config_path=config, reload_interval=0.05
    )
    runner, server = await _serve(app)
    assert {"sweeper", "retention", "config-watch"} <= set(_housekeeping_running())
    assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL  # a reload on SIGHUP

    await stop(runner, server)

    # Widget sockets are closed at shutdown, before cleanup, while the timers still run.
    (first, first_running), *cleanup = closed
    assert first == "directline" and "sweeper" in first_running
    # The leader steps down first (its delivery stops sending), then the resources close.
    assert [name for name, _ in cleanup] == [
        "delivery",
        "directline",
        "inbox",
        "delivery",
        "client",
        "store",
    ]
    # Every timer and watcher had stopped before the first resource was closed.
    assert all(running == [] for _, running in cleanup), cleanup
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL


def _failing(*_args: Any, **_kwargs: Any) -> Any:
    raise OSError("cannot start")


@pytest.mark.parametrize(
    ("failing", "closes"),
    [
        # The HTTP client: only the store had opened.
        ("adapters.web.app.HttpClient", ["store"]),
        # The sweeper: everything up to the leader's duties had started.
        (
            "adapters.web.app.sweep",
            ["delivery", "directline", "inbox", "delivery", "client", "store"],
        ),
    ],
)
async def test_a_start_that_fails_closes_what_had_started(
    standin: Standin,
    tmp_path: Path,
    closed: Closed,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
    closes: list[str],
) -> None:
    db = tmp_path / "h.db"
    app = await create_app(settings_for(standin, db), BotCredentials(), env={})
    monkeypatch.setattr(failing, _failing)

    with pytest.raises(OSError, match="cannot start"):
        await _serve(app)

    assert [name for name, _ in closed] == closes
    assert _housekeeping_running() == []  # recovery, had it started, is stopped
    # The store's file is free again: a next start in this process can open it.
    await SqliteStore(db).close()


async def test_a_close_that_fails_does_not_keep_the_rest_open(
    standin: Standin, tmp_path: Path, closed: Closed, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = DeliveryQueue.close

    async def stuck(self: DeliveryQueue) -> None:
        await recorded(self)
        raise RuntimeError("delivery would not close")

    monkeypatch.setattr(DeliveryQueue, "close", stuck)
    db = tmp_path / "h.db"
    app = await create_app(settings_for(standin, db), BotCredentials(), env={})
    runner, server = await _serve(app)

    with pytest.raises(RuntimeError, match="delivery would not close"):
        await stop(runner, server)

    assert [name for name, _ in closed][-3:] == ["delivery", "client", "store"]
    await SqliteStore(db).close()


# ---- the aiohttp behaviour the contexts rely on ---------------------------------------------


async def test_aiohttp_cleans_up_only_the_contexts_that_started_in_reverse() -> None:
    events: list[str] = []

    def context(name: str, fails: bool = False) -> Callable[[web.Application], Any]:
        async def ctx(_app: web.Application) -> AsyncIterator[None]:
            if fails:
                raise OSError(f"{name} cannot start")
            events.append(f"open {name}")
            yield
            events.append(f"close {name}")
            if name == "b":
                raise RuntimeError("b would not close")

        return ctx

    app = web.Application()
    app.cleanup_ctx.extend([context("a"), context("b"), context("c", fails=True), context("d")])
    runner = web.AppRunner(app)
    with pytest.raises(OSError, match="c cannot start"):
        await runner.setup()
    # aiohttp's runner does not clean up after a failed setup by itself (adapters.web.server
    # does); then only what had started is closed, in reverse, a failing close not stopping it.
    assert events == ["open a", "open b"]
    with pytest.raises(RuntimeError, match="b would not close"):
        await runner.cleanup()
    assert events == ["open a", "open b", "close b", "close a"]
