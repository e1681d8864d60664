"""Storage faults, over real HTTP: a full disk answers 503 and keeps nothing, and the service
recovers by itself when the fault clears; a 2xx always means committed, a 5xx never does."""

from __future__ import annotations

import asyncio
import logging
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.storage.sqlite import SqliteStore
from adapters.web.app import STORE
from tests.conftest import RunningBot
from tests.support.directline_client import DirectLineClient
from tests.support.faults import FULL, faulty
from tests.support.processes import ROOT


async def _logged_texts(http: aiohttp.ClientSession, visitor: DirectLineClient) -> list[str]:
    """What the conversation's log holds from the visitor, read back over HTTP."""
    async with http.get(
        f"{visitor.base}/conversations/{visitor.conversation_id}/activities",
        headers={"Authorization": f"Bearer {visitor.token}"},
    ) as r:
        assert r.status == 200
        body = await r.json()
    return [
        a["text"]
        for a in body["activities"]
        if a["type"] == "message" and a["from"]["role"] == "user"
    ]


async def _health(http: aiohttp.ClientSession, bot: RunningBot) -> tuple[int, dict[str, Any]]:
    async with http.get(f"{bot.url}/healthz") as r:
        return r.status, await r.json()


async def test_a_full_disk_answers_503_keeps_nothing_and_recovers_without_restart(
    bot: RunningBot, visitor: DirectLineClient, http: aiohttp.ClientSession
) -> None:
    await visitor.wait_text("virtual assistant")
    store = bot.app[STORE]
    assert isinstance(store, SqliteStore)
    with faulty(store) as disk:
        disk.full = True
        for n in range(3):
            status, body, retry_after = await visitor.send(f"while full {n}")
            assert status == 503, body
            assert retry_after.isdigit() and int(retry_after) > 0
            assert body["error"]["code"] == "ServiceUnavailable"
            assert "Traceback" not in str(body)
        status, health = await _health(http, bot)  # alive (not ready): no restart needed
        assert status == 200 and health["status"] == "degraded" and FULL in health["store"]
        # A new visitor is refused as cleanly.
        async with http.post(f"{bot.directline}/tokens/generate", headers={"Origin": bot.url}) as r:
            assert r.status == 503 and r.headers["Retry-After"]
        disk.full = False
        # The disk has room again: no restart, the next writes commit.
        status, body, _ = await visitor.send("after the fault")
        assert status == 200, body
        assert await _health(http, bot) == (200, {"status": "ok", "store": "ok"})
        assert disk.refused >= 3
    assert await _logged_texts(http, visitor) == ["after the fault"]
    # The bot answers what was kept, as always.
    await visitor.wait_for(lambda: len(visitor.texts("bot")) >= 2)


async def test_one_failed_commit_does_not_wedge_later_requests(
    bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    """Once, a single failed commit at start made every later request (even /healthz) fail until
    a restart: later requests inherited the failure through the server's context."""
    store = bot.app[STORE]
    assert isinstance(store, SqliteStore)
    with faulty(store) as disk:
        disk.full = True
        async with http.post(f"{bot.directline}/tokens/generate", headers={"Origin": bot.url}) as r:
            assert r.status == 503
        disk.full = False
    for _ in range(5):
        # New connections each time, as browsers and probes make them.
        async with aiohttp.ClientSession() as fresh:
            assert (await _health(fresh, bot))[0] == 200
            visitor = DirectLineClient(fresh, bot.directline, origin=bot.url)
            await visitor.start()
            status, body, _ = await visitor.send("hello")
            assert status == 200, body
            await visitor.disconnect()


async def test_2xx_means_committed_and_5xx_means_not_while_commits_fail_at_random(
    bot: RunningBot, visitor: DirectLineClient, http: aiohttp.ClientSession
) -> None:
    await visitor.wait_text("virtual assistant")
    store = bot.app[STORE]
    assert isinstance(store, SqliteStore)
    bot.without_rate_limits()
    rng = random.Random(12)
    answered: dict[str, int] = {}
    with faulty(store) as disk:

        async def flicker() -> None:
            while True:
                disk.full = rng.random() < 0.5
                await asyncio.sleep(rng.uniform(0, 0.004))

        async def sender(k: int) -> None:
            for n in range(25):
                text = f"m{k}-{n}"
                answered[text] = (await visitor.send(text))[0]

        flickering = asyncio.create_task(flicker())
        await asyncio.gather(*(sender(k) for k in range(6)))
        flickering.cancel()
        disk.full = False
        assert disk.refused > 0
    assert set(answered.values()) == {200, 503}, answered
    kept = await _logged_texts(http, visitor)
    assert len(kept) == len(set(kept)), "a message was stored twice"
    assert set(kept) == {text for text, status in answered.items() if status == 200}


async def test_a_retry_after_503_is_stored_once(
    bot: RunningBot, visitor: DirectLineClient, http: aiohttp.ClientSession
) -> None:
    store = bot.app[STORE]
    assert isinstance(store, SqliteStore)
    with faulty(store) as disk:
        disk.full = True
        assert (await visitor.send("retried", "same-id"))[0] == 503
    assert (await visitor.send("retried", "same-id"))[0] == 200
    assert (await visitor.send("retried", "same-id"))[0] == 200  # a duplicate
    assert await _logged_texts(http, visitor) == ["retried"]


async def test_a_write_refused_mid_transaction_loses_only_its_transaction(
    bot: RunningBot, visitor: DirectLineClient, http: aiohttp.ClientSession
) -> None:
    """A real SQLITE_FULL at statement time (a page the file may not grow by): SQLite rolls the
    whole transaction back. It must neither be committed nor promised, and the next one works."""
    await visitor.wait_text("virtual assistant")
    store = bot.app[STORE]
    assert isinstance(store, SqliteStore)
    real = store._db
    await asyncio.sleep(0.05)  # the greeting's writes are committed
    pages = real.execute("PRAGMA page_count").fetchone()[0]
    real.execute(f"PRAGMA max_page_count = {pages}")
    try:
        status, body, _ = await visitor.send("x" * 3_900)
        assert status == 503, body
    finally:
        real.execute("PRAGMA max_page_count = 1073741823")
    assert (await visitor.send("small again"))[0] == 200
    assert await _logged_texts(http, visitor) == ["small again"]
    assert (await _health(http, bot))[0] == 200


async def test_a_storm_of_failures_logs_one_bounded_line_each_and_few_tracebacks(
    bot: RunningBot,
    visitor: DirectLineClient,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await visitor.wait_text("virtual assistant")
    store = bot.app[STORE]
    assert isinstance(store, SqliteStore)
    bot.without_rate_limits()
    caplog.set_level(logging.INFO)
    caplog.clear()
    with faulty(store) as disk:
        disk.full = True
        for n in range(40):
            assert (await visitor.send(f"storm {n}"))[0] == 503
        await asyncio.sleep(0.1)
        disk.full = False
    records = caplog.records
    assert len(records) >= 40
    with_traceback = [r for r in records if r.exc_info]
    assert len(with_traceback) <= 2, [r.getMessage() for r in with_traceback]
    assert max(len(r.getMessage()) for r in records) < 1_000


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda tmp: tmp, "unable to open database file"),  # a directory
        (lambda tmp: tmp / "garbage.db", "file is not a database"),
        (lambda tmp: tmp / "plain-file" / "handoff.db", "plain-file is not a directory"),
    ],
    ids=["directory", "not-a-database", "parent-is-a-file"],
)
def test_a_store_that_cannot_be_opened_exits_with_one_line(
    tmp_path: Path, make: Any, reason: str
) -> None:
    (tmp_path / "garbage.db").write_bytes(b"this is not SQLite, " * 100)
    (tmp_path / "plain-file").write_text("x")
    path = make(tmp_path)
    config = tmp_path / "handoff.yaml"
    config.write_text(f'storage:\n  sqlite_path: "{path}"\n')
    done = subprocess.run(
        [sys.executable, "app.py", "--config", str(config), "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HANDOFF_EVENT_LOOP": "asyncio"},
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if "storage:" in line]
    assert len(lines) == 1, done.stderr
    assert str(path) in lines[0] and reason in lines[0], lines[0]
    assert "Traceback" not in done.stderr


async def test_a_second_process_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    """The store keeps what it wrote in memory: two processes on one file would serve each
    other stale data. The second one is told, and stops."""
    held = SqliteStore(tmp_path / "handoff.db")
    try:
        config = tmp_path / "handoff.yaml"
        config.write_text(f'storage:\n  sqlite_path: "{tmp_path / "handoff.db"}"\n')
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "app.py", "--config", str(config), "--port", "0"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "HANDOFF_EVENT_LOOP": "asyncio"},
        )
    finally:
        await held.close()
    assert done.returncode == 2, done.stderr
    assert "another process is using it" in done.stderr and "Traceback" not in done.stderr
    reopened = SqliteStore(tmp_path / "handoff.db")  # free again once the first is closed
    await reopened.close()
