"""The statements of the PostgreSQL store (``store.PostgresStore``), and why each is written
as it is: numbering, dedupe, claims and the Teams outbox hold across instances by how these
statements take their locks and numbers."""

from __future__ import annotations

from adapters.storage.postgres import encoding, feed
from adapters.storage.postgres.retention import OPEN_STATES
from adapters.storage.records import SaveStatements

CONFLICT = " ON CONFLICT (id) DO NOTHING"
CONVERSATIONS = SaveStatements.of(
    "conversations", "conversation", encoding.CONVERSATION_COLUMNS, "${}".format, CONFLICT
)
HANDOFFS = SaveStatements.of(
    "handoffs", "handoff", encoding.HANDOFF_COLUMNS, "${}".format, CONFLICT
)

# The next seq comes from the conversation's counter row, in the same statement (so the same
# transaction) as the row it numbers: a second appender waits on the row lock until the first
# commits, then takes the next number. Numbers are handed out in commit order with no gaps, so
# a reader that has seen N never finds an N - 1 committing after it. A rolled-back append
# rolls its number back too, but it was never handed out: the call raised instead. The same
# statement notifies the other instances (``feed``): sent on commit, never for a rollback, and
# signed with this store's origin ($4), so that its own listener passes over it.
APPEND = f"""
WITH next AS (
    INSERT INTO activity_counters AS c (conversation_id, last_seq) VALUES ($1, 1)
    ON CONFLICT (conversation_id) DO UPDATE SET last_seq = c.last_seq + 1
    RETURNING last_seq),
appended AS (
    INSERT INTO activities (conversation_id, seq, body, key)
    SELECT $1, last_seq, $2, $3 FROM next RETURNING seq)
SELECT seq, pg_notify('{feed.CHANNEL}', $4 || ' ' || $1 || ':' || seq) FROM appended
"""
# With a key: appended unless the conversation holds an activity with that key already (then
# no number is taken, and that one's seq comes back, not new). Two instances appending the same
# key at once both find none; the second waits on the counter row, then breaks the unique
# index: rolled back whole (its number too), and tried again it finds the first.
APPEND_ONCE = f"""
WITH existing AS (SELECT seq FROM activities WHERE conversation_id = $1 AND key = $3),
next AS (
    INSERT INTO activity_counters AS c (conversation_id, last_seq)
    SELECT $1, 1 WHERE NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (conversation_id) DO UPDATE SET last_seq = c.last_seq + 1
    RETURNING last_seq),
appended AS (
    INSERT INTO activities (conversation_id, seq, body, key)
    SELECT $1, last_seq, $2, $3 FROM next RETURNING seq)
SELECT seq, true AS new, pg_notify('{feed.CHANNEL}', $4 || ' ' || $1 || ':' || seq) FROM appended
UNION ALL SELECT seq, false, NULL FROM existing
"""
# A delivery is claimed while it is handled: by nobody else unless it is not done and either
# was claimed long ago or the connection that claimed it is gone (its process went down: a
# process's pooled connections live as long as it, or longer than a claim's lease).
CLAIM = """
INSERT INTO seen AS s (key, at, done, claimer) VALUES ($1, $2, false, pg_backend_pid())
ON CONFLICT (key) DO UPDATE SET at = excluded.at, claimer = excluded.claimer
    WHERE NOT s.done AND (
        s.at <= excluded.at - $3::interval
        OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = s.claimer))
RETURNING key
"""
# A thread's posts are numbered (from one sequence for all threads) under a lock of that
# thread's, held until commit: one thread's numbers are in commit order, so its delivery
# worker never finds an older post behind one it has sent.
ENQUEUE = f"""
WITH thread AS MATERIALIZED (SELECT pg_advisory_xact_lock($3, hashtext($1))),
queued AS (INSERT INTO outbound (thread_id, item) SELECT $1, $2 FROM thread RETURNING seq)
SELECT seq, pg_notify('{feed.OUTBOX}', $4 || ' ' || $1) FROM queued
"""
# A drop is the end of a send (or of a post Teams refused, or of a thread gone): its time is
# kept for the next leader's rate windows (a refusal counted as a send: on the safe side), once
# per thread however many rows one post folded.
DROP = """
WITH gone AS (DELETE FROM outbound WHERE seq = ANY($1::bigint[]) RETURNING thread_id)
INSERT INTO sent (thread_id, at)
SELECT thread_id, clock_timestamp() FROM (SELECT DISTINCT thread_id FROM gone) AS threads
"""
ADD_TURN = f"INSERT INTO turns ({', '.join(encoding.TURN_COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6)"
# Spelled out, not a parameter: so the planner can use the partial index of open handoffs.
OPEN_IN = ", ".join(f"'{state}'" for state in OPEN_STATES)
# Both rows whole (composite values), in one round trip.
CONVERSATION_AND_OPEN_HANDOFF = f"""
SELECT c AS conversation,
       (SELECT h FROM handoffs h WHERE h.conversation_id = c.id AND h.state IN ({OPEN_IN})
        LIMIT 1) AS handoff
FROM conversations c WHERE c.id = $1
"""
OPEN_THREAD = f"""
SELECT (SELECT thread_id FROM handoffs WHERE conversation_id = c.id AND state IN ({OPEN_IN})
        LIMIT 1) AS thread_id
FROM conversations c WHERE c.id = $1
"""
KEEP_META = "INSERT INTO meta (key, value, conversation_id) VALUES ($1, $2, $3)"
