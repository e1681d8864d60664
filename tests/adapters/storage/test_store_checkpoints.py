"""The SQLite store's checkpoints: on a thread of their own, and the log still starts over."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.storage.sqlite import SqliteStore, checkpoints

PAGE = 4096


def checkpoint_threads() -> int:
    return sum(t.name == "sqlite-checkpoint" for t in threading.enumerate())


async def until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return bool(condition())


async def test_commits_reach_the_database_file_without_the_loop_checkpointing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    try:
        await store.set_meta_once(key="marker", value="zqxj-checkpointed-by-the-thread")
        await store.flush()
        # The loop's own checkpoints start at thousands of pages: this one was the thread's.
        assert await until(lambda: b"zqxj-checkpointed-by-the-thread" in path.read_bytes())
    finally:
        await store.close()


async def test_the_log_starts_over_while_writes_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "RESTART_PAGES", 60)
    monkeypatch.setattr(checkpoints, "BACKSTOP_PAGES", 1_000_000)  # SQLite's own: never
    monkeypatch.setattr(checkpoints, "CHECKPOINT_INTERVAL", 0.002)
    path = tmp_path / "s.db"
    wal = Path(f"{path}-wal")
    store = SqliteStore(path)
    biggest = 0
    try:
        body = {"type": "message", "text": "x" * 3000}
        for i in range(1200):  # one page or more per commit, a commit about every millisecond
            await store.append_activity(conversation_id=f"c{i % 50}", activity=body)
            await store.flush()
            biggest = max(biggest, wal.stat().st_size)
        assert len(await store.activities_after(conversation_id="c7", watermark=0)) == 24
    finally:
        await store.close()
    # Without restarts the log would hold every page written: thousands.
    assert biggest < 20 * 60 * (PAGE + 24), biggest
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM activities").fetchone()[0] == 1200


async def test_close_stops_the_checkpoint_thread(tmp_path: Path) -> None:
    before = checkpoint_threads()
    store = SqliteStore(tmp_path / "s.db")
    assert checkpoint_threads() == before + 1
    await store.set_meta_once(key="k", value="v")
    await store.close()
    assert checkpoint_threads() == before
    memory = SqliteStore(":memory:")  # nothing to checkpoint
    assert checkpoint_threads() == before
    await memory.close()


class FailingConnection:
    def execute(self, sql: str) -> Any:
        raise sqlite3.OperationalError("disk I/O error")


async def test_a_failing_checkpoint_is_reported_once_and_writes_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    checkpointer = store._conn.checkpointer
    assert checkpointer is not None
    real = checkpointer._db
    checkpointer._db = FailingConnection()  # type: ignore[assignment]  # idle: nothing written yet
    caplog.set_level(logging.INFO, logger="adapters.storage.sqlite")
    try:
        for i in range(5):
            await store.set_meta_once(key=f"k{i}", value=f"v{i}")
            await store.flush()
            await asyncio.sleep(checkpoints.CHECKPOINT_INTERVAL * 2)
        failed = [r for r in caplog.records if "checkpoint failed" in r.getMessage()]
        assert len(failed) == 1 and "disk I/O error" in failed[0].getMessage()
        with sqlite3.connect(path) as db:  # committed all the same (in the log)
            assert db.execute("SELECT COUNT(*) FROM meta").fetchone()[0] >= 5
        checkpointer._db = real
        await store.set_meta_once(key="again", value="v")
        await store.flush()
        assert await until(lambda: any("work again" in r.getMessage() for r in caplog.records))
    finally:
        checkpointer._db = real
        await store.close()
