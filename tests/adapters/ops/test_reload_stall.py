"""A reload of any file, valid or not, never stalls requests: it parses in a worker thread."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from adapters.ops.config_file import load_settings
from adapters.ops.reload import ConfigReloader
from bot.config import Settings

# The event loop may pause this long (a loaded 2-core machine, the GIL switching every 5 ms).
MAX_GAP = 0.25

ROUTES = "routes:\n  - id: support\n    channel: '19:support@thread.tacv2'\n"


def large_valid() -> str:
    """Valid, and slow to read: 40,000 values (pure-Python YAML, then validation)."""
    return "teams:\n  note_prefixes:\n" + "".join(f"    - p{n}\n" for n in range(40_000)) + ROUTES


def alias_bomb() -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 12)]
    return "\n".join(lines) + "\n"


def many_rules() -> str:
    """Two hundred long rules to parse, check and compile."""
    rule = " || ".join(f'context.domain == "D{n}"' for n in range(60))
    routes = "".join(
        f"  - id: r{n}\n    channel: '19:r{n}@thread.tacv2'\n    trigger: '{rule} || {n} == 0'\n"
        for n in range(200)
    )
    return "routes:\n" + routes + "  - id: support\n    channel: '19:support@thread.tacv2'\n"


def large_invalid() -> str:
    """As slow to read, and refused at the end (an unknown key)."""
    return large_valid() + "colour: blue\n"


FILES = {
    "large-valid": large_valid,
    "alias-bomb": alias_bomb,
    "many-rules": many_rules,
    "large-invalid": large_invalid,
}


async def serve() -> AsyncIterator[str]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async for address in serve():
        yield address


async def worst_stall(url: str, during: Callable[[], asyncio.Future[object]]) -> float:
    """The slowest request (and loop tick) while ``during`` runs."""
    done = asyncio.Event()
    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - started - 0.005)

    async def requests(session: aiohttp.ClientSession) -> None:
        nonlocal worst
        while not done.is_set():
            started = time.perf_counter()
            async with session.get(url) as response:
                assert await response.text() == "ok"
            worst = max(worst, time.perf_counter() - started)

    async with aiohttp.ClientSession() as session:
        await session.get(url)  # connected before measuring
        tasks = [asyncio.create_task(ticker()), asyncio.create_task(requests(session))]
        await asyncio.sleep(0.05)
        try:
            await during()
        finally:
            done.set()
            await asyncio.gather(*tasks)
    return worst


def applied_list() -> tuple[list[Settings], Callable[[Settings], None]]:
    applied: list[Settings] = []
    return applied, applied.append


@pytest.mark.parametrize("kind", FILES)
async def test_a_reload_never_stalls_requests(url: str, tmp_path: Path, kind: str) -> None:
    config = tmp_path / "handoff.yaml"
    config.write_text(ROUTES)
    applied, apply = applied_list()
    reloader = ConfigReloader(config, apply, interval=3600)
    config.write_text(FILES[kind]())

    started = time.perf_counter()
    worst = await worst_stall(url, lambda: reloader.reload("on request"))
    took = time.perf_counter() - started
    print(f"{kind}: reload took {took:.2f} s, worst stall {worst * 1000:.0f} ms")
    assert worst < MAX_GAP, f"the loop stalled {worst * 1000:.0f} ms (reload took {took:.1f} s)"
    assert len(applied) == (1 if kind in ("large-valid", "many-rules") else 0)


async def test_the_same_parse_on_the_loop_stalls_it(url: str, tmp_path: Path) -> None:
    """The measurement sees a stall: parsing the large file on the loop, as before, is one."""
    config = tmp_path / "handoff.yaml"
    config.write_text(large_valid())

    async def on_the_loop() -> object:
        return load_settings(config)

    worst = await worst_stall(url, lambda: asyncio.ensure_future(on_the_loop()))
    print(f"parsed on the loop: worst stall {worst * 1000:.0f} ms")
    assert worst > MAX_GAP


async def test_an_older_reading_never_replaces_a_newer_one(tmp_path: Path) -> None:
    config = tmp_path / "handoff.yaml"
    config.write_text(ROUTES.replace("support", "first"))
    first_read = threading.Event()
    release = threading.Event()

    def slow_first(path: Path) -> Settings:
        settings = load_settings(path)
        if not first_read.is_set():
            first_read.set()
            release.wait(10)  # the first reading finishes after the file changed again
        return settings

    applied, apply = applied_list()
    reloader = ConfigReloader(config, apply, interval=3600, load=slow_first)
    old = reloader.reload("first")
    await asyncio.to_thread(first_read.wait, 10)
    config.write_text(ROUTES.replace("support", "second"))
    new = reloader.reload("second")
    newer = reloader.reload("third")  # asked together with "second": one more reading
    release.set()
    assert await asyncio.wait_for(asyncio.gather(old, new, newer), 10) == [True, True, True]
    assert [s.routes[0].id for s in applied] == ["first", "second"]


async def test_a_bad_edit_keeps_the_config_in_force(tmp_path: Path) -> None:
    config = tmp_path / "handoff.yaml"
    config.write_text(alias_bomb())
    applied, apply = applied_list()
    reloader = ConfigReloader(config, apply, interval=3600)
    assert await reloader.reload() is False
    assert applied == []


async def test_sighup_reloads_from_the_signal_handler(tmp_path: Path) -> None:
    config = tmp_path / "handoff.yaml"
    config.write_text(ROUTES)
    applied, apply = applied_list()
    reloader = ConfigReloader(config, apply, interval=3600)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reloader.reload, "on SIGHUP")  # as adapters/web/app.py
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            if applied:
                break
            await asyncio.sleep(0.01)
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
    assert [s.routes[0].id for s in applied] == ["support"]


async def test_the_watcher_reloads_a_changed_file(tmp_path: Path) -> None:
    config = tmp_path / "handoff.yaml"
    config.write_text(ROUTES)
    applied, apply = applied_list()
    reloader = ConfigReloader(config, apply, interval=0.01)
    watcher = asyncio.create_task(reloader.watch())
    try:
        config.write_text(ROUTES.replace("support", "changed"))
        for _ in range(300):
            if applied:
                break
            await asyncio.sleep(0.01)
    finally:
        watcher.cancel()
    assert [s.routes[0].id for s in applied] == ["changed"]


async def test_a_reload_prepares_the_rules_off_the_loop(tmp_path: Path) -> None:
    """The rule set, route plan and escalation rules of a reloaded config are built in the
    reload's thread, not by the first message after it (on the event loop)."""
    from bot.rules import escalation, routing

    config = tmp_path / "handoff.yaml"
    config.write_text(ROUTES)
    applied, apply = applied_list()
    reloader = ConfigReloader(config, apply, interval=3600)
    config.write_text(many_rules())
    assert await reloader.reload("by the test")
    settings = applied[-1]
    assert routing._RULE_SETS[id(settings)][0] is settings
    assert routing._PLANS[id(settings.routes)].routes == tuple(settings.routes)
    assert escalation._PLANS[id(settings.escalation)][0] is settings.escalation
