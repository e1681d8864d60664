"""A backlog of a visitor's plain messages is handled in runs (one call for several, in order,
one position after), never across a message that must be handled alone, never while the inbox
is careful after a crash; a run that fails is handled message by message, so only a poison one
is set aside."""

from __future__ import annotations

from typing import Any

from adapters.directline import inbox as inbox_module
from adapters.directline import meta_keys
from adapters.directline.inbox import Inbox
from adapters.runtime.clock import utc_now
from adapters.storage.memory import MemoryStore
from adapters.web.app import SERVICE, STORE
from tests.conftest import RunningBot
from tests.support.directline_client import DirectLineClient
from tests.support.scenarios import Teams, joined

CID = "c1"


def _visitor(text: str) -> dict[str, Any]:
    return {"type": "message", "from": {"id": "u", "role": "user"}, "text": text}


def _bot(text: str) -> dict[str, Any]:
    return {"type": "message", "from": {"id": "bot", "role": "bot"}, "text": text}


def _runnable(activity: dict[str, Any]) -> bool:
    return activity.get("type") == "message" and "!" not in activity["text"]


class Recorder:
    """What the inbox handed on: a text for one alone, a list of texts for a run."""

    def __init__(self, poison: str = "") -> None:
        self.handled: list[str | list[str]] = []
        self.poison = poison

    async def one(self, cid: str, activity: dict[str, Any]) -> None:
        if self.poison and self.poison in activity["text"]:
            raise RuntimeError("a poison message")
        self.handled.append(activity["text"])

    async def run(self, cid: str, activities: list[dict[str, Any]]) -> None:
        texts = [activity["text"] for activity in activities]
        if self.poison and any(self.poison in text for text in texts):
            raise RuntimeError("a poison message in the run")
        self.handled.append(texts)


async def _backlog(store: MemoryStore, activities: list[dict[str, Any]]) -> int:
    seq = 0
    for activity in activities:
        seq = await store.append_activity(conversation_id=CID, activity=activity)
    return seq


async def test_a_backlog_is_handled_in_runs_in_order_and_its_position_kept() -> None:
    store = MemoryStore()
    recorder = Recorder()
    inbox = Inbox(store, recorder.one, handle_run=recorder.run, runnable=_runnable)
    more = [f"m{n}" for n in range(inbox_module.RUN_MAX + 3)]
    last = await _backlog(
        store,
        [
            _visitor("a"),
            _bot("the bot's own row, passed"),
            _visitor("b"),
            _visitor("pick a team!"),  # handled alone: it may start a handoff
            _visitor("c"),
            *map(_visitor, more),
        ],
    )
    inbox.kick(CID)
    await inbox.drain()
    assert recorder.handled == [
        ["a", "b"],
        "pick a team!",
        ["c", *more[: inbox_module.RUN_MAX - 1]],
        more[inbox_module.RUN_MAX - 1 :],
    ]
    assert await store.inbox_position(conversation_id=CID) == last


async def test_a_single_message_and_a_careful_start_are_handled_one_by_one() -> None:
    store = MemoryStore()
    recorder = Recorder()
    inbox = Inbox(store, recorder.one, handle_run=recorder.run, runnable=_runnable)
    await _backlog(store, [_visitor("x")])
    inbox.kick(CID)
    await inbox.drain()
    assert recorder.handled == ["x"]
    # After a crash the backlog is handled carefully: each attempt recorded, one at a time.
    await _backlog(store, [_visitor("y"), _visitor("z")])
    restarted = Inbox(store, recorder.one, handle_run=recorder.run, runnable=_runnable)
    await restarted.resume()
    await restarted.drain()
    assert recorder.handled == ["x", "y", "z"]


async def test_a_run_that_fails_is_handled_one_by_one_and_only_the_poison_set_aside() -> None:
    store = MemoryStore()
    recorder = Recorder(poison="boom")
    told: list[str] = []

    async def quarantined(cid: str) -> None:
        told.append(cid)

    inbox = Inbox(store, recorder.one, quarantined, handle_run=recorder.run, runnable=_runnable)
    last = await _backlog(store, [_visitor("a"), _visitor("boom"), _visitor("b")])
    inbox.kick(CID)
    await inbox.drain()
    assert recorder.handled == ["a", "b"]
    assert told == [CID]
    assert await store.get_meta(key=f"{meta_keys.QUARANTINED}:{CID}:2") is not None
    assert await store.inbox_position(conversation_id=CID) == last


async def test_a_run_while_a_specialist_is_joined_is_relayed_in_order_once(
    bot: RunningBot, visitor: DirectLineClient, teams: Teams
) -> None:
    """The domain's side of a run: one transcript line each, every message in the thread, in
    the order typed."""
    handoff = await joined(visitor, teams)
    texts = ["first of three", "second of three", "third of three"]
    await bot.app[SERVICE].visitor_messages(
        conversation_id=visitor.conversation_id, texts=texts, now=utc_now()
    )
    await teams.standin.wait_text_in(handoff.thread_id, "third of three")
    posted = " ".join(teams.standin.texts_in(handoff.thread_id))
    assert [posted.count(text) for text in texts] == [1, 1, 1]
    assert posted.index(texts[0]) < posted.index(texts[1]) < posted.index(texts[2])
    turns = await bot.app[STORE].turns(conversation_id=visitor.conversation_id)
    assert [turn.text for turn in turns if turn.text in texts] == texts


async def test_a_run_without_a_specialist_is_answered_message_by_message(
    bot: RunningBot, visitor: DirectLineClient
) -> None:
    await visitor.wait_text("virtual assistant")
    await bot.app[SERVICE].visitor_messages(
        conversation_id=visitor.conversation_id,
        texts=["what does it cost?", "what are your opening hours?"],
        now=utc_now(),
    )
    await visitor.wait_text("29 EUR")
    await visitor.wait_text("Monday to Friday")
