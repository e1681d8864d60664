"""The PostgreSQL store's tables, and the migrations that bring an older database up to date.

``schema_version`` holds the version; ``MIGRATIONS[n]`` takes a database from version ``n`` to
``n + 1``, each in a transaction of its own (DDL is transactional here: a migration is all or
nothing) under an advisory lock, so instances starting together migrate once and the others
wait, then find it done. A database written by a newer version is refused, not guessed at.

Times that queries compare are ``timestamptz``; JSON is kept as text, exactly as written
(``jsonb`` would refuse ``\\u0000`` and reorder keys, and nothing queries inside it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from bot.errors import StoreError

# Advisory lock kinds (the first key of the two-key form), so later kinds cannot collide.
LOCK_MIGRATIONS = 0x68640001
LOCK_OUTBOX_THREAD = 0x68640002  # with hashtext(thread id): enqueues into one thread, in turn
LOCK_LEADER = 0x68640003  # with 0: held (a session lock) by the one leading instance
LOCK_CONVERSATION = 0x68640004  # with hashtext(conversation id): its events, one at a time

MARK_OPENED = (
    "INSERT INTO meta (key, value) VALUES ('store.opened', now()::text)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
MARK_PROBED = (
    "INSERT INTO meta (key, value) VALUES ('store.probe', now()::text)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

_TABLES = """
CREATE TABLE conversations (
    id text PRIMARY KEY,
    version integer NOT NULL,
    created_at timestamptz NOT NULL,
    fallbacks integer NOT NULL,
    visitor text NOT NULL,
    context text NOT NULL DEFAULT '{}');
CREATE INDEX conversations_by_creation ON conversations (created_at, id);

CREATE TABLE turns (
    n bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id text NOT NULL,
    at timestamptz NOT NULL,
    role text NOT NULL,
    author text NOT NULL,
    text text NOT NULL,
    fallback boolean NOT NULL);
CREATE INDEX turns_by_conversation ON turns (conversation_id, n);

CREATE TABLE handoffs (
    id text PRIMARY KEY,
    version integer NOT NULL,
    conversation_id text NOT NULL,
    state text NOT NULL,
    thread_id text NOT NULL,
    created_at timestamptz NOT NULL,
    data text NOT NULL);
CREATE INDEX handoffs_by_conversation ON handoffs (conversation_id, state);
CREATE INDEX handoffs_by_thread ON handoffs (thread_id) WHERE thread_id <> '';
CREATE INDEX handoffs_open ON handoffs (state) WHERE state IN ('queued', 'joined');

CREATE TABLE seen (key text PRIMARY KEY, at timestamptz NOT NULL);
CREATE INDEX seen_by_time ON seen (at);

-- The activity log: seq is 1, 2, ... per conversation, taken from the conversation's counter
-- in the appending transaction (its row lock orders appends by commit).
CREATE TABLE activity_counters (conversation_id text PRIMARY KEY, last_seq bigint NOT NULL);
CREATE TABLE activities (
    conversation_id text NOT NULL,
    seq bigint NOT NULL,
    body text NOT NULL,
    key text,
    PRIMARY KEY (conversation_id, seq));
CREATE TABLE inbox (conversation_id text PRIMARY KEY, processed bigint NOT NULL);

CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL, conversation_id text);
CREATE INDEX meta_by_conversation ON meta (conversation_id) WHERE conversation_id IS NOT NULL;

CREATE TABLE outbound (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    thread_id text NOT NULL,
    item text NOT NULL);
CREATE INDEX outbound_by_thread ON outbound (thread_id, seq);
"""


async def _tables(db: asyncpg.Connection) -> None:
    """1: every table the contract needs."""
    await db.execute(_TABLES)


_SHARED = """
-- One activity per key in a conversation, claimed in the appending statement: a retry that
-- reaches another instance finds it. (Copies stored before this version keep no key.)
UPDATE activities a SET key = NULL WHERE key IS NOT NULL AND EXISTS (
    SELECT 1 FROM activities b
    WHERE b.conversation_id = a.conversation_id AND b.key = a.key AND b.seq < a.seq);
CREATE UNIQUE INDEX activities_by_key ON activities (conversation_id, key)
    WHERE key IS NOT NULL;

-- A delivery being handled (done = false) is claimed until it is done, or its claim is old, or
-- the connection that claimed it is gone (its process with it).
ALTER TABLE seen ADD COLUMN done boolean NOT NULL DEFAULT true;
ALTER TABLE seen ADD COLUMN claimer integer;

-- When posts were sent into each thread (the server's clock), for the Teams rate windows of
-- the next leader; kept an hour (the longest window).
CREATE TABLE sent (thread_id text NOT NULL, at timestamptz NOT NULL);
CREATE INDEX sent_by_thread ON sent (thread_id, at);
CREATE INDEX sent_by_time ON sent (at);

-- The leader's lease: who holds it (backend pid), its epoch, and its last heartbeat.
CREATE TABLE leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    pid integer NOT NULL,
    epoch bigint NOT NULL,
    beat timestamptz NOT NULL,
    released boolean NOT NULL DEFAULT false);
"""


async def _shared(db: asyncpg.Connection) -> None:
    """2: what several instances need: keys claimed per conversation, deliveries claimed while
    handled, when posts were sent, and the leader's lease."""
    await db.execute(_SHARED)


_LOCK_AND_READ = """
-- A conversation's lock and its rows in one round trip: the lock (a session lock, kept until
-- let go), then the conversation and its open handoff read with a snapshot taken after it was
-- granted (each statement of a volatile function takes its own), so nothing committed by the
-- lock's previous holder is missed.
CREATE FUNCTION lock_conversation(lock_kind integer, conversation_id text)
RETURNS TABLE (conversation conversations, handoff handoffs)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_lock(lock_kind, hashtext(conversation_id));
    RETURN QUERY
        SELECT c, (SELECT h FROM handoffs h
                   WHERE h.conversation_id = c.id AND h.state IN ('queued', 'joined') LIMIT 1)
        FROM conversations c WHERE c.id = lock_conversation.conversation_id;
END
$$;
"""


async def _lock_and_read(db: asyncpg.Connection) -> None:
    """3: ``lock_conversation()``, the lock of a conversation and its rows at once."""
    await db.execute(_LOCK_AND_READ)


MIGRATIONS: tuple[Callable[[asyncpg.Connection], Awaitable[None]], ...] = (
    _tables,
    _shared,
    _lock_and_read,
)
VERSION = len(MIGRATIONS)


async def prepare(db: asyncpg.Connection) -> int:
    """Create what is missing and migrate an older database; returns the schema version."""
    while True:
        async with db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1, 0)", LOCK_MIGRATIONS)
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL);"
                " INSERT INTO schema_version (version) VALUES (0) ON CONFLICT DO NOTHING"
            )
            version: int = await db.fetchval("SELECT version FROM schema_version")
            if version > VERSION:
                raise StoreError(
                    f"written by a newer version (schema {version}; this one knows up to {VERSION})"
                )
            if version == VERSION:
                return version
            await MIGRATIONS[version](db)
            await db.execute("UPDATE schema_version SET version = $1", version + 1)
