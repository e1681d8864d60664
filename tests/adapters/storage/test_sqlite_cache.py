"""The SQLite store's cache of records: what it answers, the file agrees; switched off, every
answer comes from the file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from adapters.storage.sqlite import SqliteStore
from bot.model import Conversation, Handoff, HandoffState
from tests.adapters.storage.samples import T0, VISITOR


async def test_sqlite_answers_from_memory_match_the_file(tmp_path: Path) -> None:
    """Conversations and handoffs are cached: whatever the cache answers, the file agrees."""
    store = SqliteStore(tmp_path / "m.db")
    conversation = await store.save_conversation(conversation=Conversation("c1", VISITOR, T0))
    await store.save_conversation(conversation=replace(conversation, fallbacks_in_row=2))
    assert await store.open_handoff(conversation_id="c1") is None  # "none open" is cached too
    first = await store.save_handoff(
        handoff=Handoff("h1", "c1", "support", HandoffState.QUEUED, T0, "asked", "19:a")
    )
    assert await store.open_handoff(conversation_id="c1") == first
    await store.save_handoff(handoff=replace(first, state=HandoffState.ENDED, ended_at=T0))
    assert await store.open_handoff(conversation_id="c1") is None
    second = await store.save_handoff(
        handoff=Handoff("h2", "c1", "support", HandoffState.QUEUED, T0, "again", "19:b")
    )
    answers = [
        await store.get_conversation(conversation_id="c1"),
        await store.open_handoff(conversation_id="c1"),
        await store.get_handoff(handoff_id="h1"),
        await store.handoff_for_thread(thread_id="19:a"),
        await store.handoff_for_thread(thread_id="19:b"),
    ]
    assert answers[1] == second and answers[0].fallbacks_in_row == 2
    await store.close()
    fresh = SqliteStore(tmp_path / "m.db")
    assert answers == [
        await fresh.get_conversation(conversation_id="c1"),
        await fresh.open_handoff(conversation_id="c1"),
        await fresh.get_handoff(handoff_id="h1"),
        await fresh.handoff_for_thread(thread_id="19:a"),
        await fresh.handoff_for_thread(thread_id="19:b"),
    ]
    await fresh.close()


@pytest.mark.parametrize("cache", [True, False], ids=["cached", "uncached"])
async def test_the_cache_switch_decides_who_answers(tmp_path: Path, cache: bool) -> None:
    """Rows changed behind the store's back (nothing does this but the test): a cached store
    still answers what it wrote, an uncached one reads the file."""
    store = SqliteStore(tmp_path / "s.db", cache=cache)
    try:
        await store.save_conversation(conversation=Conversation("c1", VISITOR, T0))
        await store.save_handoff(
            handoff=Handoff("h1", "c1", "support", HandoffState.QUEUED, T0, "asked", "19:a")
        )
        await store.flush()
        store._db.execute("UPDATE conversations SET fallbacks = 7")
        store._db.execute("UPDATE handoffs SET state = 'ended'")
        conversation = await store.get_conversation(conversation_id="c1")
        assert conversation is not None
        assert conversation.fallbacks_in_row == (0 if cache else 7)
        by_thread = await store.handoff_for_thread(thread_id="19:a")
        by_id = await store.get_handoff(handoff_id="h1")
        assert by_thread is not None and by_id is not None
        state = HandoffState.QUEUED if cache else HandoffState.ENDED
        assert by_thread.state is by_id.state is state
        assert (await store.open_handoff(conversation_id="c1") is None) is not cache
    finally:
        await store.close()
