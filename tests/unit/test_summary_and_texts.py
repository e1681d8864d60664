"""Summaries, open loops and text templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.model import Handoff, HandoffState, Party, Person, Role, Turn
from bot.summary import (
    brief,
    end_summary,
    format_duration,
    is_question,
    loops,
    questions_in,
    quote,
)
from bot.texts import Texts

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def turn(minute: int, role: Role, text: str, fallback: bool = False) -> Turn:
    return Turn("c", T0 + timedelta(minutes=minute), role, role.value, text, fallback)


TURNS = [
    turn(0, Role.BOT, "Hi! How can I help?"),
    turn(1, Role.VISITOR, "How do I export invoices?"),
    turn(1, Role.BOT, "I'm not sure", fallback=True),
    turn(2, Role.VISITOR, "What does the Pro plan cost?"),
    turn(2, Role.BOT, "29 EUR"),
    turn(3, Role.VISITOR, "can I talk to a human"),
]


def test_loops_split_answered_and_open() -> None:
    result = loops(TURNS)
    assert result.answered == ("What does the Pro plan cost?",)
    assert result.open == ("How do I export invoices?",)  # asking for a person is no question


def test_specialist_reply_answers_everything_pending() -> None:
    result = loops([*TURNS, turn(5, Role.SPECIALIST, "Here is how")])
    assert result.open == ()


@pytest.mark.parametrize(
    ("text", "questions"),
    [
        ("Can I talk to a human please?", []),
        ("Kann ich bitte mit einem Menschen sprechen?", []),
        ("Hello? Anyone there?", []),
        ("Still there?", []),
        ("Are you a bot?", []),
        ("Thanks! Ok?", []),
        ("How are you today?", []),
        ("Hi, how do I export invoices?", ["How do I export invoices?"]),
        ("Hello there! where is my order", ["where is my order"]),
        ("human pls", []),
        ("can someone help me", []),
        ("Mitarbeiter bitte", []),
        ("my agent code is wrong, why?", ["my agent code is wrong, why?"]),
        ("ok so how do I pay", ["ok so how do I pay"]),
        ("How do I export invoices?", ["How do I export invoices?"]),
        (
            "Can I talk to a human please? My invoices will not export. How do I fix that?",
            ["My invoices will not export. How do I fix that?"],
        ),
        ("I was charged twice. Why?", ["I was charged twice. Why?"]),
        (
            "Where is my order? And when does it ship",
            ["Where is my order?", "And when does it ship"],
        ),
        ("Wie kann ich kündigen?", ["Wie kann ich kündigen?"]),
        ("¿Cómo puedo pagar?", ["¿Cómo puedo pagar?"]),
    ],
)
def test_only_real_questions_are_questions(text: str, questions: list[str]) -> None:
    assert questions_in(text) == questions


def test_the_brief_before_a_handoff() -> None:
    made = brief(TURNS, "Jane", "the visitor asked for a person")
    assert made.wants == "How do I export invoices?"  # the bot could not answer it
    assert made.also == ()  # a question the bot answered: listed below
    assert made.answered == (("What does the Pro plan cost?", "29 EUR"),)
    assert made.open == ("How do I export invoices?",)
    assert made.context == (
        "Jane was with the bot for 3 min (3 messages); handed off: the visitor asked for a person."
    )
    assert "before saying anything" in brief([], "Jane", "button").context


def test_end_summary() -> None:
    handoff = Handoff(
        "h",
        "c",
        "support",
        HandoffState.ENDED,
        T0 + timedelta(minutes=3),
        "asked",
        specialist=Person("a", "Alex"),
        joined_at=T0 + timedelta(minutes=4),
        ended_at=T0 + timedelta(minutes=16),
        ended_by=Party.SPECIALIST,
        ended_by_name="Alex",
    )
    during = [
        *TURNS,
        turn(5, Role.VISITOR, "Why was I charged twice?"),
        turn(6, Role.SPECIALIST, "Fixed it"),
        turn(7, Role.VISITOR, "Can I get a PDF too?"),
    ]
    summary = end_summary(handoff, during, "Jane", T0)
    assert (
        summary.who == "Jane with Alex" and summary.duration == "12 min" and summary.messages == 4
    )
    assert summary.time_to_join == "1 min"  # queued at minute 3, joined at minute 4
    # What she came about (still open at the handoff) counts; asking for a person does not.
    assert summary.asked == (
        "How do I export invoices?",
        "Why was I charged twice?",
        "Can I get a PDF too?",
    )
    assert summary.resolved == ("How do I export invoices?", "Why was I charged twice?")
    assert summary.still_open == ("Can I get a PDF too?",)
    assert summary.ended_by == "Alex"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("How much?", True),
        ("why is it broken", True),
        ("Kann ich zahlen", True),
        ("Thanks.", False),
        ("I need help", False),
        ("Is it on?", True),
    ],
)
def test_is_question(text: str, expected: bool) -> None:
    assert is_question(text) is expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(5, "5 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 h"), (3900, "1 h 5 min"), (-3, "0 s")],
)
def test_format_duration(seconds: int, expected: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == expected


def test_quote_cuts_at_a_word() -> None:
    assert quote("word " * 50, limit=20) == "word word word word…"


def test_texts_render_with_and_without_names() -> None:
    texts = Texts()
    assert texts.render("hello", {"visitor": "Jane"}) == "Hello Jane! How can I help you today?"
    assert texts.render("hello", {}) == "Hello! How can I help you today?"
    assert texts.render("joined", {"specialist": "Alex"}).startswith("Alex has joined")
