"""What a desk shows, channel-neutral: a handoff thread's root (``ThreadView``) and the summary
posted when a handoff ends (``SummaryView``), built from the domain's records by pure functions.

Views hold words and facts, never markup: each desk renders them its own way (Teams as Adaptive
Cards, in ``adapters/teams/cards.py``). Times stay ``datetime``s so that a desk can show them
in each reader's own locale and time zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.config import Route
from bot.model import Conversation, Handoff, HandoffState, Party, Role, Turn, Visitor
from bot.summary import Brief, EndSummary, brief, format_duration


class DeskAction(StrEnum):
    """What a specialist can do from a thread's root."""

    JOIN = "join"
    END = "end"


class Tone(StrEnum):
    """How a status should strike the reader."""

    CALM = "calm"  # over: nothing to do
    WAITING = "waiting"  # someone should act
    GOOD = "good"  # a specialist is on it
    ALERT = "alert"  # it went wrong


Parts = tuple[str | datetime, ...]


@dataclass(frozen=True)
class Status:
    """How the handoff stands, in words with times between them (shown by the desk)."""

    parts: Parts
    tone: Tone


@dataclass(frozen=True)
class Fact:
    """A labelled value; both may come from the visitor, so a desk shows them verbatim."""

    label: str
    value: str


@dataclass(frozen=True)
class ThreadView:
    """Everything a handoff thread's root shows, as the handoff stands."""

    handoff_id: str
    headline: str  # one line for notifications and hosts that show no more
    route: str  # the route's title
    route_description: str
    state: HandoffState
    status: Status
    specialist: str  # who joined ("" while nobody has)
    visitor: tuple[Fact, ...]  # what we know of the visitor
    extras: tuple[Fact, ...]  # what the site or an upstream agent added about them
    brief: Brief  # the conversation before the handoff: what they want, what is still open
    actions: tuple[DeskAction, ...]  # offered in this state, in order
    notice: str = ""  # for the one who acted (why their click was refused, say)


@dataclass(frozen=True)
class Line:
    """One transcript line as a desk shows it."""

    at: datetime
    author: str
    role: Role
    text: str


@dataclass(frozen=True)
class TranscriptView:
    """A conversation's transcript for the team (internal notes included, marked by role)."""

    title: str
    facts: tuple[Fact, ...]
    lines: tuple[Line, ...]  # the latest ``TRANSCRIPT_LINES`` of them
    left_out: int  # earlier lines not shown


TRANSCRIPT_LINES = 200  # what a desk's dialog shows at most (the latest)


@dataclass(frozen=True)
class Section:
    """A titled list; ``empty`` is said instead when it has no items."""

    title: str
    items: tuple[str, ...]
    empty: str


@dataclass(frozen=True)
class SummaryView:
    """The summary posted in the thread when a handoff ends."""

    headline: str
    facts: tuple[Fact, ...]
    sections: tuple[Section, ...]


def facts(pairs: Iterable[tuple[str, str]]) -> tuple[Fact, ...]:
    """The pairs that have a value, in order."""
    return tuple(Fact(label, value) for label, value in pairs if value)


def visitor_facts(visitor: Visitor) -> tuple[Fact, ...]:
    """What we know about the visitor, in reading order."""
    page = visitor.page
    return facts(
        [
            ("Company", visitor.company),
            ("Name", visitor.name),
            ("Email", visitor.email),
            ("Page", " \u2014 ".join(p for p in (page.title, page.url) if p)),
            ("Came from", page.referrer),
            ("Locale", " \u00b7 ".join(p for p in (visitor.locale, visitor.timezone) if p)),
        ]
    )


def extra_facts(visitor: Visitor) -> tuple[Fact, ...]:
    """What the site or an upstream agent added: scalar values only, keys made labels."""
    return facts(
        (str(k).replace("_", " ").capitalize(), str(v))
        for k, v in visitor.extra.items()
        if isinstance(v, str | int | float | bool)
    )


def status(handoff: Handoff) -> Status:
    """How the handoff stands, for the thread's root."""
    match handoff.state:
        case HandoffState.QUEUED:
            waiting: Parts = ("Waiting for a specialist since ", handoff.created_at)
            if handoff.timed_out_at is not None:
                waiting += (" \u2014 no one joined in time; the visitor can leave a message here",)
            return Status(waiting, Tone.WAITING)
        case HandoffState.JOINED:
            assert handoff.joined_at is not None
            specialist = handoff.specialist.name if handoff.specialist else ""
            return Status((f"{specialist} joined at ", handoff.joined_at), Tone.GOOD)
        case HandoffState.ENDED:
            assert handoff.ended_at is not None
            took = format_duration(handoff.ended_at - handoff.created_at)
            if handoff.ended_by is Party.SYSTEM:
                why = f" ({handoff.ended_by_name}) after {took}"
                return Status(("Closed automatically at ", handoff.ended_at, why), Tone.CALM)
            who = handoff.ended_by_name or "the visitor"
            return Status((f"Ended by {who} at ", handoff.ended_at, f" after {took}"), Tone.CALM)
        case HandoffState.FAILED:
            return Status((f"Could not be delivered: {handoff.failure}",), Tone.ALERT)
        case HandoffState.EXPIRED:
            assert handoff.timed_out_at is not None
            waited = format_duration(handoff.timed_out_at - handoff.created_at)
            return Status((f"No one joined within {waited}; the visitor was told",), Tone.ALERT)


def actions(state: HandoffState) -> tuple[DeskAction, ...]:
    """What a specialist may do in this state: join while queued, end while open."""
    offered = (DeskAction.JOIN,) if state is HandoffState.QUEUED else ()
    return offered + ((DeskAction.END,) if state.is_open else ())


def thread_view(
    *, handoff: Handoff, route: Route, visitor: Visitor, turns: Sequence[Turn], notice: str = ""
) -> ThreadView:
    """The thread's root as the handoff stands; ``turns``: the transcript (what was said up to
    the handoff is summed up)."""
    before = [t for t in turns if t.at <= handoff.created_at]
    name = visitor.display_name
    return ThreadView(
        handoff_id=handoff.id,
        headline=f"Handoff request from {name}",
        route=route.title,
        route_description=route.description,
        state=handoff.state,
        status=status(handoff),
        specialist=handoff.specialist.name if handoff.specialist else "",
        visitor=visitor_facts(visitor),
        extras=extra_facts(visitor),
        brief=brief(before, name, handoff.reason),
        actions=actions(handoff.state),
        notice=notice,
    )


def transcript_view(*, conversation: Conversation, turns: Sequence[Turn]) -> TranscriptView:
    """The transcript as a desk shows it: who the visitor is, then every line (the latest
    ``TRANSCRIPT_LINES``)."""
    visitor = conversation.visitor
    shown = turns[-TRANSCRIPT_LINES:]
    return TranscriptView(
        title=f"Transcript: {visitor.display_name}",
        facts=visitor_facts(visitor),
        lines=tuple(Line(t.at, t.author, t.role, t.text) for t in shown),
        left_out=len(turns) - len(shown),
    )


def summary_view(summary: EndSummary) -> SummaryView:
    """The end summary as a desk shows it."""
    return SummaryView(
        headline=f"Summary: {summary.who}, {summary.duration}",
        facts=facts(
            [
                ("Who", summary.who),
                ("Time to join", summary.time_to_join),
                ("Duration", summary.duration),
                ("Messages", str(summary.messages)),
                ("Ended by", summary.ended_by),
            ]
        ),
        sections=(
            Section("Asked", summary.asked, "Nothing was asked."),
            Section("Resolved", summary.resolved, "Nothing recorded as resolved."),
            Section("Still open", summary.still_open, "Nothing left open."),
        ),
    )
