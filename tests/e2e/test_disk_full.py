"""A real full disk under the real process: ``python app.py`` with its SQLite file on a tiny
tmpfs that a ballast file fills, then frees. Nothing is answered 500, nothing answered 503 is
kept, everything answered 200 is, the log stays small, and no restart is needed."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ProcessFactory, VisitorFactory, need, one_route_config
from tests.support.standin import Standin

pytestmark = pytest.mark.e2e


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB filesystem of its own (tmpfs), unmounted after."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    need(done.returncode == 0, f"cannot mount a tmpfs here (root is needed): {done.stderr}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> Path:
    """Write a ballast file until the filesystem is full."""
    ballast = disk / "ballast"
    with ballast.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 4096)
    return ballast


async def test_a_full_disk_under_the_real_process(
    tiny_disk: Path,
    tmp_path: Path,
    standin: Standin,
    http: aiohttp.ClientSession,
    start_process: ProcessFactory,
    start_visitor: VisitorFactory,
) -> None:
    bot = await start_process(one_route_config(tmp_path, standin, tiny_disk / "handoff.db"))
    visitor = await start_visitor(bot)
    await visitor.wait_text("virtual assistant")
    ballast = _fill(tiny_disk)
    answered: dict[str, int] = {}

    async def post(text: str) -> int:
        status, _, retry_after = await visitor.send(text)
        if status == 503:
            assert retry_after
        answered[text] = status
        return status

    # Big messages: the log must grow, and the disk has no room for it (what the
    # write-ahead log already holds may take a few first).
    statuses: list[int] = []
    while len(statuses) < 300 and statuses.count(503) < 10:
        statuses.append(await post(f"{len(statuses)} " + "x" * 3_800))
    assert statuses.count(503) == 10 and set(statuses) <= {200, 503}, statuses
    async with http.get(f"{bot.url}/healthz") as r:
        health = await r.json()
        assert r.status == 200, health  # alive all the same
        if health["status"] != "ok":
            assert "full" in health["store"]
    ballast.unlink()
    # Room again: writes succeed without a restart (Retry-After is 2 s).
    for _ in range(50):
        if await post(f"after {uuid.uuid4().hex}") == 200:
            break
        await asyncio.sleep(0.2)
    assert list(answered.values())[-1] == 200
    async with http.get(f"{bot.url}/healthz") as r:
        assert (await r.json())["store"] == "ok"
    kept = [
        a["text"]
        for a in await visitor.history()
        if a["type"] == "message" and a["from"]["role"] == "user"
    ]
    assert sorted(kept) == sorted(t for t, s in answered.items() if s == 200)
    await visitor.disconnect()
    bot.stop()
    log = bot.log.read_text()
    assert len(log) < 100_000, f"{len(log)} bytes of log"
    assert log.count("Traceback") <= 2, log[-3000:]
    assert "unhandled error" not in log  # what a 500 would have logged
