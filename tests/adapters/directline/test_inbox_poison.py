"""A visitor message whose handling fails is set aside (a failed handler may have done part of
its work, so it is not repeated): logged, recorded, the visitor told politely; the conversation
goes on. (One that takes the whole process down: tests/e2e/test_poison.py.)"""

from __future__ import annotations

import json
import logging
from datetime import datetime

import pytest

from adapters.directline import meta_keys
from adapters.web.app import SERVICE, STORE
from tests.conftest import RunningBot
from tests.support.directline_client import DirectLineClient


def failing_on_boom(bot: RunningBot, monkeypatch: pytest.MonkeyPatch, why: str) -> list[str]:
    """Handling a visitor message that says "boom" raises ``why``, every time; returns the
    texts handled, in order (each recorded before it is handled)."""
    service = bot.app[SERVICE]
    real = service.visitor_message
    calls: list[str] = []

    async def failing(*, conversation_id: str, text: str, now: datetime) -> None:
        calls.append(text)
        if "boom" in text:
            raise RuntimeError(why)
        await real(conversation_id=conversation_id, text=text, now=now)

    monkeypatch.setattr(service, "visitor_message", failing)
    return calls


async def test_a_message_that_always_fails_is_quarantined_and_the_visitor_told(
    bot: RunningBot,
    visitor: DirectLineClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = failing_on_boom(bot, monkeypatch, "a bug that fires on every attempt")
    await visitor.wait_text("virtual assistant")
    caplog.set_level(logging.INFO)
    await visitor.say("boom")
    await visitor.wait_text("something went wrong with your last message")
    assert calls == ["boom"]  # what it did before it raised is not done twice
    # The conversation is not wedged: the next message is handled as usual.
    await visitor.say("what does it cost?")
    await visitor.wait_text("29 EUR")
    assert calls[-1] == "what does it cost?"
    seq = next(int(a["id"].split("|")[1]) for a in visitor.activities if a.get("text") == "boom")
    record = await bot.app[STORE].get_meta(
        key=f"{meta_keys.QUARANTINED}:{visitor.conversation_id}:{seq}"
    )
    assert record is not None and "a bug that fires on every attempt" in json.loads(record)["why"]
    assert sum(1 for r in caplog.records if r.exc_info) == 1  # one traceback for one cause


async def test_a_failing_apology_does_not_bring_the_message_back(
    bot: RunningBot, visitor: DirectLineClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The activity is set aside (and its place committed) before the visitor is told: should
    telling fail too, the activity is not handled again and again."""
    calls = failing_on_boom(bot, monkeypatch, "a bug")

    async def cannot_apologise(**_: object) -> None:
        raise RuntimeError("the apology fails too")

    monkeypatch.setattr(bot.app[SERVICE], "message_failed", cannot_apologise)
    await visitor.wait_text("virtual assistant")
    await visitor.say("boom")
    await visitor.say("what does it cost?")
    await visitor.wait_text("29 EUR")
    assert calls == ["boom", "what does it cost?"]
