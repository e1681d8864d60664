"""What a desk shows, channel-neutral: thread roots and end summaries, as tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Route
from bot.model import Handoff, HandoffState, Page, Party, Person, Role, Turn, Visitor
from bot.summary import EndSummary
from bot.views import (
    DeskAction,
    Fact,
    Section,
    Status,
    Tone,
    actions,
    extra_facts,
    status,
    summary_view,
    thread_view,
    visitor_facts,
)

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SAM = Person("29:1", "Sam")
ROUTE = Route(id="support", name="Support", description="Orders", channel="19:a@thread.tacv2")
QUEUED = Handoff("h-1", "c-1", "support", HandoffState.QUEUED, T0, "the visitor asked")
JOINED = replace(
    QUEUED, state=HandoffState.JOINED, specialist=SAM, joined_at=T0 + timedelta(minutes=2)
)
ENDED_AT = T0 + timedelta(minutes=27, seconds=5)


def ended(by: Party | None, name: str) -> Handoff:
    return replace(
        JOINED, state=HandoffState.ENDED, ended_at=ENDED_AT, ended_by=by, ended_by_name=name
    )


@pytest.mark.parametrize(
    ("handoff", "parts", "tone"),
    [
        (QUEUED, ("Waiting for a specialist since ", T0), Tone.WAITING),
        (
            replace(QUEUED, timed_out_at=T0 + timedelta(minutes=10)),
            (
                "Waiting for a specialist since ",
                T0,
                " \u2014 no one joined in time; the visitor can leave a message here",
            ),
            Tone.WAITING,
        ),
        (JOINED, ("Sam joined at ", T0 + timedelta(minutes=2)), Tone.GOOD),
        (
            ended(Party.SPECIALIST, "Sam"),
            ("Ended by Sam at ", ENDED_AT, " after 27 min"),
            Tone.CALM,
        ),
        (
            ended(Party.VISITOR, ""),
            ("Ended by the visitor at ", ENDED_AT, " after 27 min"),
            Tone.CALM,
        ),
        (
            ended(Party.SYSTEM, "no messages for 20 min"),
            ("Closed automatically at ", ENDED_AT, " (no messages for 20 min) after 27 min"),
            Tone.CALM,
        ),
        (
            replace(QUEUED, state=HandoffState.FAILED, failure="the channel refused (403)"),
            ("Could not be delivered: the channel refused (403)",),
            Tone.ALERT,
        ),
        (
            replace(
                QUEUED, state=HandoffState.EXPIRED, timed_out_at=T0 + timedelta(hours=1, minutes=5)
            ),
            ("No one joined within 1 h 5 min; the visitor was told",),
            Tone.ALERT,
        ),
    ],
)
def test_status(handoff: Handoff, parts: tuple[object, ...], tone: Tone) -> None:
    assert status(handoff) == Status(parts, tone)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "offered"),
    [
        (HandoffState.QUEUED, (DeskAction.JOIN, DeskAction.END)),
        (HandoffState.JOINED, (DeskAction.END,)),
        (HandoffState.ENDED, ()),
        (HandoffState.FAILED, ()),
        (HandoffState.EXPIRED, ()),
    ],
)
def test_actions_offered(state: HandoffState, offered: tuple[DeskAction, ...]) -> None:
    assert actions(state) == offered


@pytest.mark.parametrize(
    ("visitor", "facts"),
    [
        (Visitor(id="v"), ()),
        (
            Visitor(
                id="v",
                name="Ada",
                email="ada@example.com",
                company="AE",
                page=Page(url="https://x/p", title="Pricing", referrer="https://r"),
                locale="en-GB",
                timezone="Europe/London",
                user_agent="not shown",
            ),
            (
                Fact("Company", "AE"),
                Fact("Name", "Ada"),
                Fact("Email", "ada@example.com"),
                Fact("Page", "Pricing \u2014 https://x/p"),
                Fact("Came from", "https://r"),
                Fact("Locale", "en-GB \u00b7 Europe/London"),
            ),
        ),
        (Visitor(id="v", page=Page(url="https://x/p")), (Fact("Page", "https://x/p"),)),
        (Visitor(id="v", page=Page(title="Pricing")), (Fact("Page", "Pricing"),)),
        (Visitor(id="v", timezone="UTC"), (Fact("Locale", "UTC"),)),
    ],
)
def test_visitor_facts(visitor: Visitor, facts: tuple[Fact, ...]) -> None:
    assert visitor_facts(visitor) == facts


@pytest.mark.parametrize(
    ("extra", "facts"),
    [
        ({}, ()),
        ({"plan": "Pro", "seats": 12}, (Fact("Plan", "Pro"), Fact("Seats", "12"))),
        ({"account_id": "a-1"}, (Fact("Account id", "a-1"),)),
        ({"trial": False, "score": 4.5}, (Fact("Trial", "False"), Fact("Score", "4.5"))),
        ({"empty": "", "nested": {"x": 1}, "none": None, "list": [1]}, ()),
    ],
)
def test_extra_facts(extra: dict[str, object], facts: tuple[Fact, ...]) -> None:
    assert extra_facts(Visitor(id="v", extra=extra)) == facts


def said(minute: int, role: Role, text: str, fallback: bool = False) -> Turn:
    return Turn("c-1", T0 + timedelta(minutes=minute), role, role.value, text, fallback)


def test_thread_view_sums_up_what_came_before_the_handoff() -> None:
    turns = [
        said(-3, Role.VISITOR, "Can it export invoices?"),
        said(-2, Role.BOT, "Sorry", fallback=True),
        said(0, Role.VISITOR, "Hello?"),
        said(5, Role.VISITOR, "Is anyone there?"),  # after the handoff: not in the summary
    ]
    visitor = Visitor(id="v", name="Ada", extra={"plan": "Pro"})
    view = thread_view(
        handoff=JOINED, route=ROUTE, visitor=visitor, turns=turns, notice="Already joined."
    )
    assert view.handoff_id == "h-1"
    assert view.headline == "Handoff request from Ada"
    assert (view.route, view.route_description) == ("Support", "Orders")
    assert (view.state, view.specialist) == (HandoffState.JOINED, "Sam")
    assert view.status == Status(("Sam joined at ", T0 + timedelta(minutes=2)), Tone.GOOD)
    assert view.visitor == (Fact("Name", "Ada"),)
    assert view.extras == (Fact("Plan", "Pro"),)
    assert view.brief.wants == "Can it export invoices?"
    assert view.brief.also == ()  # "Hello?" adds nothing
    assert view.brief.context == (
        "Ada was with the bot for 3 min (2 messages); handed off: the visitor asked."
    )
    assert view.brief.open == ("Can it export invoices?",)  # "Hello?" asks nothing
    assert view.actions == (DeskAction.END,)
    assert view.notice == "Already joined."


def test_thread_view_of_a_visitor_who_said_nothing() -> None:
    view = thread_view(handoff=QUEUED, route=ROUTE, visitor=Visitor(id="v"), turns=[])
    assert view.headline == "Handoff request from Visitor"
    assert view.brief.context.startswith("Visitor asked for a specialist before saying anything")
    assert (view.brief.wants, view.brief.open, view.brief.answered) == ("", (), ())
    assert (view.visitor, view.extras, view.notice) == ((), (), "")
    assert view.specialist == ""


@pytest.mark.parametrize(
    ("summary", "facts", "sections"),
    [
        (
            EndSummary(
                "Ada with Sam", "12 min", 4, ("Why?", "How?"), ("Why?",), ("How?",), "Sam", "45 s"
            ),
            (
                Fact("Who", "Ada with Sam"),
                Fact("Time to join", "45 s"),
                Fact("Duration", "12 min"),
                Fact("Messages", "4"),
                Fact("Ended by", "Sam"),
            ),
            (
                Section("Asked", ("Why?", "How?"), "Nothing was asked."),
                Section("Resolved", ("Why?",), "Nothing recorded as resolved."),
                Section("Still open", ("How?",), "Nothing left open."),
            ),
        ),
        (
            EndSummary("Ada with nobody", "40 s", 0, (), (), (), ""),
            (Fact("Who", "Ada with nobody"), Fact("Duration", "40 s"), Fact("Messages", "0")),
            (
                Section("Asked", (), "Nothing was asked."),
                Section("Resolved", (), "Nothing recorded as resolved."),
                Section("Still open", (), "Nothing left open."),
            ),
        ),
    ],
)
def test_summary_view(
    summary: EndSummary, facts: tuple[Fact, ...], sections: tuple[Section, ...]
) -> None:
    view = summary_view(summary)
    assert view.headline == f"Summary: {summary.who}, {summary.duration}"
    assert view.facts == facts
    assert view.sections == sections
