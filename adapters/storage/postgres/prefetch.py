"""What a conversation's lock read when it was taken: its conversation and open handoff.

Taking a conversation's lock (``locks.SharedLocks``) is one round trip that also reads those two
rows with a snapshot taken after the lock is granted (``lock_conversation()``, a function in the
database), since the block's first reads are nearly always of them. Until the task holding the
lock writes anything, the store answers those reads from here: nobody else writes a
conversation's records without its lock, so they are what a read would find. The first write
of the task (it may change them) sends every later read to the database. Each task sees only
its own (a context variable), and only inside the lock's block.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

import asyncpg


@dataclass
class Prefetched:
    key: str  # the conversation id
    conversation: asyncpg.Record | None  # the conversations row (composite), None: none
    handoff: asyncpg.Record | None  # its open handoff's row, None: none open
    fresh: bool = True  # until the task writes


PREFETCHED: ContextVar[Prefetched | None] = ContextVar("handoff_prefetched", default=None)


def current(conversation_id: str) -> Prefetched | None:
    """What the lock on ``conversation_id`` read, while the task has not written since."""
    found = PREFETCHED.get()
    if found is None or not found.fresh or found.key != conversation_id:
        return None
    return found


def writing() -> None:
    """The task is about to write: what was read under its lock may no longer hold."""
    found = PREFETCHED.get()
    if found is not None:
        found.fresh = False
