"""What the SQLite store keeps in memory of the records it wrote: a cache, never the truth.

Conversations and handoffs are written through: this store is the file's only writer (one
process owns it, see ``connection``), so what it last wrote is what the file holds, and every
relayed message would otherwise read and decode both again. A failed commit empties the cache;
``SqliteStore(cache=False)`` runs with ``NoCache``, every read going to the file.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from bot.model import Conversation, Handoff

LIMIT = 20_000  # entries per map; a map that reaches it starts over (cheap, bounded)


class Miss(Enum):
    """The cache does not know (as opposed to knowing there is none)."""

    MISS = "miss"


MISS = Miss.MISS


def keep(cache: dict[str, Any], key: str, value: Any) -> None:
    """Keep ``value``; a map that reached ``LIMIT`` entries starts over."""
    if len(cache) >= LIMIT and key not in cache:
        cache.clear()
    cache[key] = value


class RecordCache:
    """Conversations and handoffs as last written or read, and which handoff is open for a
    conversation (or that none is) and which one a Teams thread belongs to."""

    def __init__(self) -> None:
        self._conversations: dict[str, Conversation] = {}
        self._handoffs: dict[str, Handoff] = {}
        self._open_by_conversation: dict[str, str | None] = {}  # -> open handoff id, or none
        self._by_thread: dict[str, str] = {}  # thread id -> handoff id

    def conversation(self, conversation_id: str) -> Conversation | None:
        return self._conversations.get(conversation_id)

    def keep_conversation(self, conversation: Conversation) -> None:
        keep(self._conversations, conversation.id, conversation)

    def handoff(self, handoff_id: str) -> Handoff | None:
        return self._handoffs.get(handoff_id)

    def open_handoff(self, conversation_id: str) -> Handoff | None | Miss:
        """The open handoff, None if it is known that none is, else ``MISS``."""
        if conversation_id not in self._open_by_conversation:
            return MISS
        known = self._open_by_conversation[conversation_id]
        if known is None:
            return None
        return self._handoffs.get(known, MISS)

    def none_open(self, conversation_id: str) -> None:
        keep(self._open_by_conversation, conversation_id, None)

    def thread_handoff(self, thread_id: str) -> Handoff | None:
        known = self._by_thread.get(thread_id)
        return None if known is None else self._handoffs.get(known)

    def keep_handoff(self, handoff: Handoff) -> None:
        if len(self._handoffs) >= LIMIT:
            self.clear()
        self._handoffs[handoff.id] = handoff
        if handoff.thread_id:
            self._by_thread[handoff.thread_id] = handoff.id
        if handoff.state.is_open:
            self._open_by_conversation[handoff.conversation_id] = handoff.id
        elif self._open_by_conversation.get(handoff.conversation_id) == handoff.id:
            self._open_by_conversation[handoff.conversation_id] = None

    def clear(self) -> None:
        """Forget everything (after a rollback: what it held may be gone)."""
        self._conversations.clear()
        self._handoffs.clear()
        self._open_by_conversation.clear()
        self._by_thread.clear()

    def evict(self, conversation_ids: set[str]) -> None:
        """Drop deleted conversations and their handoffs (only them: the rest stay warm)."""
        for cid in conversation_ids:
            self._conversations.pop(cid, None)
            self._open_by_conversation.pop(cid, None)
        gone = [h for h in self._handoffs.values() if h.conversation_id in conversation_ids]
        for handoff in gone:
            del self._handoffs[handoff.id]
            if self._by_thread.get(handoff.thread_id) == handoff.id:
                del self._by_thread[handoff.thread_id]


class NoCache(RecordCache):
    """The switch turned off: knows nothing, keeps nothing."""

    def conversation(self, conversation_id: str) -> Conversation | None:
        return None

    def keep_conversation(self, conversation: Conversation) -> None:
        pass

    def handoff(self, handoff_id: str) -> Handoff | None:
        return None

    def open_handoff(self, conversation_id: str) -> Handoff | None | Miss:
        return MISS

    def none_open(self, conversation_id: str) -> None:
        pass

    def thread_handoff(self, thread_id: str) -> Handoff | None:
        return None

    def keep_handoff(self, handoff: Handoff) -> None:
        pass
