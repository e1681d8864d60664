"""A visitor message whose handling fails again and again is set aside after a few attempts:
logged, recorded, the visitor told politely; the conversation goes on."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import pytest

from adapters import meta_keys
from adapters.directline import MAX_ATTEMPTS
from adapters.http import SERVICE, STORE
from tests.conftest import RunningBot
from tests.support.directline_client import DirectLineClient


async def test_a_message_that_always_fails_is_quarantined_and_the_visitor_told(
    bot: RunningBot,
    visitor: DirectLineClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = bot.app[SERVICE]
    real = service.visitor_message
    calls: list[str] = []

    async def flaky(*, conversation_id: str, text: str, now: datetime) -> None:
        calls.append(text)
        if "boom" in text:
            raise RuntimeError("a bug that fires on every attempt")
        await real(conversation_id=conversation_id, text=text, now=now)

    monkeypatch.setattr(service, "visitor_message", flaky)
    await visitor.wait_text("virtual assistant")
    caplog.set_level(logging.INFO)
    await visitor.say("boom")
    await visitor.wait_text("something went wrong with your last message")
    assert calls == ["boom"] * MAX_ATTEMPTS
    # The conversation is not wedged: the next message is handled as usual.
    await visitor.say("what does it cost?")
    await visitor.wait_text("29 EUR")
    assert calls[-1] == "what does it cost?"
    seq = next(
        int(a["id"].split("|")[1]) for a in visitor.activities if a.get("text") == "boom"
    )
    record = await bot.app[STORE].get_meta(
        key=f"{meta_keys.QUARANTINED}:{visitor.conversation_id}:{seq}"
    )
    assert record is not None and "a bug that fires on every attempt" in json.loads(record)["why"]
    assert sum(1 for r in caplog.records if r.exc_info) == 1  # one traceback for one cause


async def test_a_failure_that_clears_is_handled_not_quarantined(
    bot: RunningBot, visitor: DirectLineClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = bot.app[SERVICE]
    real = service.visitor_message
    failures = [RuntimeError("once")]

    async def once(*, conversation_id: str, text: str, now: datetime) -> None:
        if failures:
            raise failures.pop()
        await real(conversation_id=conversation_id, text=text, now=now)

    monkeypatch.setattr(service, "visitor_message", once)
    await visitor.wait_text("virtual assistant")
    await visitor.say("what does it cost?")
    await visitor.wait_text("29 EUR")
    assert not any("went wrong" in t for t in visitor.texts())
