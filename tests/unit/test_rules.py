"""Escalation phrases and routing, as tables."""

from __future__ import annotations

import pytest

from bot.config import DEFAULT_PHRASES, Answer
from bot.rules import asks_for_person, find_answer, is_greeting

ASKS = [
    ("can I talk to a human", True),
    ("Can I talk to a human?", True),
    ("I want a real person", True),
    ("agent please", True),
    ("AGENT!!!", True),
    ("human", True),
    ("please connect me with someone from support", True),
    ("I'd like to speak with a representative", True),
    ("let me chat to a live agent now", True),
    ("transfer me to an operator", True),
    ("Ich möchte mit einem Menschen sprechen", True),
    ("je veux parler à un humain", True),
    ("quiero hablar con una persona", True),
    ("what are your opening hours", False),
    ("is this a real product?", False),
    ("my agent software crashed", False),
    ("the person who ordered is my boss", False),
    ("", False),
    ("   ", False),
]


@pytest.mark.parametrize(("text", "expected"), ASKS, ids=[t or "empty" for t, _ in ASKS])
def test_asks_for_person(text: str, expected: bool) -> None:
    assert asks_for_person(text, DEFAULT_PHRASES) is expected


def test_extra_phrases_from_yaml() -> None:
    assert asks_for_person("escalate this ticket", ["escalate"])
    assert not asks_for_person("escalated privileges", ["escalate"])


ANSWERS = [
    Answer(match=["opening hours", "open"], answer="9-17"),
    Answer(match=["price"], answer="29"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What are your opening hours?", "9-17"),
        ("are you OPEN today", "9-17"),
        ("the price?", "29"),
        ("opened my account", None),
        ("priceless", None),
    ],
)
def test_find_answer(text: str, expected: str | None) -> None:
    found = find_answer(text, ANSWERS)
    assert (found.answer if found else None) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hi", True),
        ("Hello there!", True),
        ("good morning", True),
        ("hi, my invoice from March is wrong and I need it fixed", False),
        ("history", False),
    ],
)
def test_is_greeting(text: str, expected: bool) -> None:
    assert is_greeting(text) is expected
