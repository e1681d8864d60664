"""The SQLite store's schema: files written by older versions are brought up to date."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.runtime.clock import iso
from adapters.storage.sqlite import SqliteStore, schema
from bot.errors import StoreError
from tests.adapters.storage.samples import T0

# The tables as every file had them before schema versions were counted (user_version 0),
# written out here so the test keeps building an old file whatever the schema becomes.
SCHEMA_BEFORE_VERSIONS = """
CREATE TABLE conversations (
    id TEXT PRIMARY KEY, version INTEGER NOT NULL, created_at TEXT NOT NULL,
    fallbacks INTEGER NOT NULL, visitor TEXT NOT NULL, context TEXT NOT NULL DEFAULT '{}');
CREATE INDEX conversations_by_creation ON conversations (created_at, id);
CREATE TABLE turns (
    conversation_id TEXT NOT NULL, at TEXT NOT NULL, role TEXT NOT NULL, author TEXT NOT NULL,
    text TEXT NOT NULL, fallback INTEGER NOT NULL);
CREATE INDEX turns_by_conversation ON turns (conversation_id);
CREATE TABLE handoffs (
    id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, state TEXT NOT NULL,
    thread_id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX handoffs_by_conversation ON handoffs (conversation_id, state);
CREATE INDEX handoffs_by_thread ON handoffs (thread_id);
CREATE TABLE seen (key TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE activities (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, key TEXT,
    PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE inbox (conversation_id TEXT PRIMARY KEY, processed INTEGER NOT NULL);
CREATE TABLE outbound (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL, item TEXT NOT NULL);
CREATE INDEX outbound_by_thread ON outbound (thread_id, seq);
"""
VISITOR_JSON = (
    '{"id": "v1", "name": "Jane", "email": "", "company": "", "page": {"url": "", "title": ""},'
    ' "locale": "en", "timezone": "UTC", "user_agent": "", "extra": {}}'
)
# What the Direct Line channel kept per conversation then, named by key alone.
LEGACY_KEYS = ("dl.posted:{}", "dl.ref:{}:m1", "dl.attempt:{}", "dl.quarantined:{}:3")


def old_file(path: Path, conversations: dict[str, str]) -> None:
    """A file as an older version left it: conversations (id -> time of their last line)
    with their transcript, activity log and Direct Line meta rows, and meta of no one's."""
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.executescript(SCHEMA_BEFORE_VERSIONS)
        for cid, last in conversations.items():
            old.execute(
                "INSERT INTO conversations VALUES (?, 1, ?, 0, ?, '{}')",
                (cid, T0.isoformat(), VISITOR_JSON),
            )
            old.execute("INSERT INTO turns VALUES (?, ?, 'visitor', 'Jane', 'hi', 0)", (cid, last))
            old.execute(
                "INSERT INTO activities VALUES (?, 1, ?, NULL)",
                (cid, f'{{"type": "message", "timestamp": "{last}"}}'),
            )
            old.executemany(
                "INSERT INTO meta VALUES (?, 'x')", [(key.format(cid),) for key in LEGACY_KEYS]
            )
        old.execute("INSERT INTO meta VALUES ('directline.token_key', 'secret')")
        old.execute("INSERT INTO meta VALUES ('dl.posted', 'no conversation named')")
        old.commit()


async def test_an_old_files_meta_rows_are_purged_with_their_conversation(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    cutoff = T0 + timedelta(days=30)
    # "idle-2" extends "idle": the rows of one are not the other's.
    old_file(path, {"idle": iso(T0), "idle-2": iso(cutoff), "recent": iso(cutoff)})
    store = SqliteStore(path)
    try:
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
        purged: list[str] = []
        done = False
        while not done:
            step, done = await store.purge(before=cutoff)
            purged += step
            await store.flush()
        assert purged == ["idle"]
        for key in LEGACY_KEYS:
            assert await store.get_meta(key=key.format("idle")) is None, key
            assert await store.get_meta(key=key.format("idle-2")) == "x", key
            assert await store.get_meta(key=key.format("recent")) == "x", key
        assert await store.get_meta(key="directline.token_key") == "secret"
        assert await store.get_meta(key="dl.posted") == "no conversation named"
    finally:
        await store.close()


async def test_a_migrated_file_opens_again_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_file(path, {"c1": iso(T0)})
    await SqliteStore(path).close()
    store = SqliteStore(path)  # nothing left to migrate
    try:
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
        assert await store.get_meta(key="dl.posted:c1") == "x"
        assert (await store.get_conversation(conversation_id="c1")) is not None
    finally:
        await store.close()


async def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    await SqliteStore(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    with pytest.raises(StoreError, match="newer version"):
        SqliteStore(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {schema.VERSION}")
    await SqliteStore(path).close()


async def test_sqlite_file_from_before_activity_keys_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.execute(
            "CREATE TABLE activities (conversation_id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " body TEXT NOT NULL, PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID"
        )
        old.execute("INSERT INTO activities VALUES ('c1', 1, '{\"type\": \"message\"}')")
        old.commit()
    store = SqliteStore(path)
    try:
        assert await store.append_activity(conversation_id="c1", activity={}, key="client:x") == 2
        assert await store.recent_keys(conversation_id="c1", limit=5) == [(2, "client:x")]
        assert [a for _, a in await store.activities_after(conversation_id="c1", watermark=0)] == [
            {"type": "message"},
            {},
        ]
    finally:
        await store.close()
