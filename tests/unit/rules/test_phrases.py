"""Escalation phrases and routing, as tables."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import pytest

from bot.config import DEFAULT_PHRASES, Answer
from bot.rules.escalation import NEGATIVE_WORDS, _words, is_negative, same_question
from bot.rules.phrases import (
    _ASK_FOR_PERSON,
    asks_for_person,
    contains_any,
    find_answer,
    is_greeting,
    normalise,
    padded_words,
)

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


def old_normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w'\s]", " ", folded).split())


def old_asks_for_person(text: str, phrases: Sequence[str]) -> bool:
    plain = old_normalise(text)
    if not plain:
        return False
    if _ASK_FOR_PERSON.search(plain):
        return True
    return any(f" {old_normalise(p)} " in f" {plain} " for p in phrases)


def old_is_negative(text: str, extra: Sequence[str] = ()) -> bool:
    padded = f" {old_normalise(text)} "
    return any(f" {old_normalise(w)} " in padded for w in (*NEGATIVE_WORDS, *extra))


TEXTS = [text for text, _ in ASKS] + [
    "can I speak with someone",
    "connect me to a rep",
    "live people please",
    "operator!",
    "I want to talk to your staff",
    "transfer me to a specialist",
    "somebody help",
    "I need to put this to an end",
    "this is USELESS!!",
    "das ist nutzlos",
    "ÇA NE MARCHE PAS",
    "ﬁne, whatever",  # NFKC folds the ligature
    "",
    "   ",
    "?!",
]


@pytest.mark.parametrize("extra", [(), ("escalate", "Meh!", "!!!")])
def test_text_checks_answer_as_before_and_when_asked_again(extra: tuple[str, ...]) -> None:
    phrases = (*DEFAULT_PHRASES, *extra)
    for _ in range(2):  # the second time from what was remembered
        for text in TEXTS:
            assert normalise(text) == old_normalise(text)
            assert asks_for_person(text, phrases) is old_asks_for_person(text, phrases), text
            assert asks_for_person(text, list(phrases)) is old_asks_for_person(text, phrases)
            assert is_negative(text, extra) is old_is_negative(text, extra), text
            assert contains_any(text, extra) is any(
                f" {old_normalise(w)} " in f" {old_normalise(text)} " for w in extra
            )
    assert padded_words(("talk to a human", "Customer Service!")) == (
        " talk to a human ",
        " customer service ",
    )
    assert _words("How do I export invoices?") == {"how", "export", "invoices"}
    assert same_question("How do I export invoices?", "how do i export my invoices")
