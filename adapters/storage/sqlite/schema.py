"""The SQLite store's tables, and the migrations that bring an older file up to date.

``SCHEMA`` is the baseline (schema version 0: what files had before versions were counted);
``MIGRATIONS`` take a file from its ``PRAGMA user_version`` to ``VERSION``, one transaction
each. A new file takes the same path as an old one, so both end up alike. Migrations are
additive and tolerate finding their change made already (files from before versions counted).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, version INTEGER NOT NULL, created_at TEXT NOT NULL,
    fallbacks INTEGER NOT NULL, visitor TEXT NOT NULL, context TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS conversations_by_creation ON conversations (created_at, id);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL, at TEXT NOT NULL, role TEXT NOT NULL, author TEXT NOT NULL,
    text TEXT NOT NULL, fallback INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns (conversation_id);
CREATE TABLE IF NOT EXISTS handoffs (
    id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, state TEXT NOT NULL,
    thread_id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS handoffs_by_conversation ON handoffs (conversation_id, state);
CREATE INDEX IF NOT EXISTS handoffs_by_thread ON handoffs (thread_id);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS activities (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, key TEXT,
    PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (conversation_id TEXT PRIMARY KEY, processed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbound (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL, item TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outbound_by_thread ON outbound (thread_id, seq);
"""


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}


def _conversation_context(db: sqlite3.Connection) -> None:
    """1: conversations carry the context rules match on."""
    if "context" not in _columns(db, "conversations"):
        db.execute("ALTER TABLE conversations ADD COLUMN context TEXT NOT NULL DEFAULT '{}'")


def _activity_keys(db: sqlite3.Connection) -> None:
    """2: activities carry the key they were stored with (a client or Teams message id)."""
    if "key" not in _columns(db, "activities"):
        db.execute("ALTER TABLE activities ADD COLUMN key TEXT")


# LEGACY, for ``_meta_by_conversation`` only: before meta rows were filed under their
# conversation, retention found a conversation's rows by these key prefixes (the Direct Line
# channel's, keys ``{prefix}:{cid}`` or ``{prefix}:{cid}:{more}``). Frozen: rows written since
# name their conversation (``set_meta(conversation_id=...)``), so nothing new is added here.
_LEGACY_CONVERSATION_PREFIXES = ("dl.posted", "dl.ref", "dl.attempt", "dl.quarantined")


def _meta_by_conversation(db: sqlite3.Connection) -> None:
    """3: meta rows are filed under a conversation (NULL: none) and deleted with it."""
    if "conversation_id" not in _columns(db, "meta"):
        db.execute("ALTER TABLE meta ADD COLUMN conversation_id TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS meta_by_conversation ON meta (conversation_id)")
    for prefix in _LEGACY_CONVERSATION_PREFIXES:
        # Conversation ids are URL-safe (no ':'): the id ends at the next ':', if any.
        keys = db.execute(
            "SELECT key FROM meta WHERE key > ? AND key < ? AND conversation_id IS NULL",
            (f"{prefix}:", f"{prefix};"),
        ).fetchall()
        rest = (str(key).removeprefix(f"{prefix}:") for (key,) in keys)
        filed = [(tail.split(":", 1)[0], f"{prefix}:{tail}") for tail in rest]
        db.executemany("UPDATE meta SET conversation_id = ? WHERE key = ?", filed)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _conversation_context,
    _activity_keys,
    _meta_by_conversation,
)
VERSION = len(MIGRATIONS)


def prepare(db: sqlite3.Connection) -> None:
    """Create what is missing and migrate an older file (``db`` in autocommit mode)."""
    db.executescript(SCHEMA)
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > VERSION:
        raise sqlite3.DatabaseError(
            f"written by a newer version (schema {version}; this one knows up to {VERSION})"
        )
    for number in range(version, VERSION):
        db.execute("BEGIN")
        try:
            MIGRATIONS[number](db)
            db.execute(f"PRAGMA user_version = {number + 1}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
