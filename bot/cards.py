"""Adaptive Card builders (schema 1.5): pure functions from domain records to card dicts.

Anything a visitor typed goes into ``RichTextBlock``/``TextRun``, which Adaptive Cards never
treat as markdown: a visitor cannot disguise a link or inject formatting into the card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.config import Route
from bot.model import Handoff, HandoffState, Party, Visitor
from bot.summary import EndSummary, format_duration

Card = dict[str, Any]

JOIN_VERB = "handoff.join"
END_VERB = "handoff.end"
CARD_VERSION = "1.5"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


def _when(at: datetime) -> str:
    """Rendered by Teams in each reader's own locale and time zone."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}"


def _plain(text: str, **style: Any) -> Card:
    """A block of verbatim text (never markdown)."""
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": text, **style}]}


def _label(text: str) -> Card:
    return {
        "type": "TextBlock",
        "text": text,
        "weight": "Bolder",
        "wrap": True,
        "spacing": "Medium",
    }


def _fact_rows(facts: Sequence[tuple[str, str]]) -> list[Card]:
    """Label/value rows; values are visitor data, so verbatim."""
    rows = []
    for label, value in facts:
        if not value:
            continue
        rows.append(
            {
                "type": "ColumnSet",
                "spacing": "Small",
                "columns": [
                    # Labels can come from visitor context keys: verbatim too.
                    {"type": "Column", "width": "90px", "items": [_plain(label, isSubtle=True)]},
                    {"type": "Column", "width": "stretch", "items": [_plain(value)]},
                ],
            }
        )
    return rows


def _action(title: str, verb: str, handoff_id: str, style: str = "default") -> Card:
    data = {"verb": verb, "handoffId": handoff_id}
    return {
        "type": "Action.Execute",
        "title": title,
        "verb": verb,
        "data": data,
        "style": style,
        # Hosts without Universal Actions send the same data as a message ``value``.
        "fallback": {"type": "Action.Submit", "title": title, "data": data, "style": style},
    }


def visitor_facts(visitor: Visitor) -> list[tuple[str, str]]:
    """What we know about the visitor, in reading order."""
    page = visitor.page
    facts = [
        ("Company", visitor.company),
        ("Name", visitor.name),
        ("Email", visitor.email),
        ("Page", " \u2014 ".join(p for p in (page.title, page.url) if p)),
        ("Came from", page.referrer),
        ("Locale", " \u00b7 ".join(p for p in (visitor.locale, visitor.timezone) if p)),
    ]
    facts += [
        (str(k).replace("_", " ").capitalize(), str(v))
        for k, v in visitor.extra.items()
        if isinstance(v, str | int | float | bool)
    ]
    return facts


@dataclass(frozen=True)
class ThreadCardView:
    """Everything the root card shows."""

    handoff: Handoff
    route: Route
    visitor: Visitor
    summary: str
    open_loops: Sequence[str]
    notice: str = ""


def _status(handoff: Handoff) -> Card:
    specialist = handoff.specialist.name if handoff.specialist else ""
    match handoff.state:
        case HandoffState.QUEUED:
            text = f"Waiting for a specialist since {_when(handoff.created_at)}"
            if handoff.timed_out_at is not None:
                text += " \u2014 no one joined in time; the visitor can leave a message here"
            color = "Warning"
        case HandoffState.JOINED:
            assert handoff.joined_at is not None
            text, color = f"{specialist} joined at {_when(handoff.joined_at)}", "Good"
        case HandoffState.ENDED:
            assert handoff.ended_at is not None
            took = format_duration(handoff.ended_at - handoff.created_at)
            when = _when(handoff.ended_at)
            if handoff.ended_by is Party.SYSTEM:
                text = f"Closed automatically at {when} ({handoff.ended_by_name}) after {took}"
            else:
                who = handoff.ended_by_name or "the visitor"
                text = f"Ended by {who} at {when} after {took}"
            color = "Default"
        case HandoffState.FAILED:
            text, color = f"Could not be delivered: {handoff.failure}", "Attention"
        case HandoffState.EXPIRED:
            assert handoff.timed_out_at is not None
            waited = format_duration(handoff.timed_out_at - handoff.created_at)
            text, color = f"No one joined within {waited}; the visitor was told", "Attention"
    # Verbatim: the text can carry the visitor's own name ("Ended by ...").
    return _plain(text, color=color, weight="Bolder")


def thread_card(view: ThreadCardView) -> Card:
    """The root card of a handoff thread, for its current state."""
    handoff, route = view.handoff, view.route
    body: list[Card] = []
    if view.notice:
        body.append({"type": "TextBlock", "text": view.notice, "wrap": True, "color": "Attention"})
    body += [
        {
            "type": "TextBlock",
            "text": f"Handoff request \u00b7 {route.title}",
            "size": "Large",
            "weight": "Bolder",
            "wrap": True,
        },
        *([_plain(route.description, isSubtle=True)] if route.description else []),
        _status(handoff),
        _label("Visitor"),
        *_fact_rows(visitor_facts(view.visitor)),
        _label("Summary so far"),
        _plain(view.summary),
    ]
    if view.open_loops:
        body.append(_label("Open questions"))
        body += [_plain(f"\u2022 {loop}") for loop in view.open_loops]
    body.append(
        {
            "type": "TextBlock",
            "text": f"Handoff {handoff.id}",
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
            "spacing": "Medium",
        }
    )
    actions: list[Card] = []
    if handoff.state is HandoffState.QUEUED:
        actions.append(_action("Join conversation", JOIN_VERB, handoff.id, "positive"))
    if handoff.state.is_open:
        actions.append(_action("End conversation", END_VERB, handoff.id, "destructive"))
    return {
        "type": "AdaptiveCard",
        "$schema": SCHEMA,
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
        "actions": actions,
    }


def summary_card(summary: EndSummary) -> Card:
    """The end-of-handoff summary, posted as a reply in the thread."""
    body: list[Card] = [
        {"type": "TextBlock", "text": "Conversation summary", "size": "Medium", "weight": "Bolder"},
        *_fact_rows(
            [
                ("Who", summary.who),
                ("Duration", summary.duration),
                ("Messages", str(summary.messages)),
                ("Ended by", summary.ended_by),
            ]
        ),
    ]
    for title, items, empty in (
        ("Asked", summary.asked, "Nothing was asked."),
        ("Resolved", summary.resolved, "Nothing recorded as resolved."),
        ("Still open", summary.still_open, "Nothing left open."),
    ):
        body.append(_label(title))
        body += [_plain(f"\u2022 {item}") for item in items] or [_plain(empty, isSubtle=True)]
    return {
        "type": "AdaptiveCard",
        "$schema": SCHEMA,
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
