"""The desk's views as Adaptive Cards (schema 1.5), and the card verbs Teams sends back.

Anything a visitor typed goes into ``RichTextBlock``/``TextRun``, which Adaptive Cards never
treat as markdown: a visitor cannot disguise a link or inject formatting into the card.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.model import Role
from bot.summary import Brief
from bot.views import DeskAction, Fact, Status, SummaryView, ThreadView, Tone, TranscriptView

Card = dict[str, Any]

JOIN_VERB = "handoff.join"
END_VERB = "handoff.end"
# The wire values of the card buttons, and what each asks the desk to do.
VERBS = {JOIN_VERB: DeskAction.JOIN, END_VERB: DeskAction.END}
TRANSCRIPT_VERB = "handoff.transcript"  # opens the transcript in a dialog (task/fetch)
MAX_LINE = 2000  # characters of one transcript line shown in the dialog
CARD_VERSION = "1.5"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"

# title, verb, style
_BUTTONS = {
    DeskAction.JOIN: ("Join conversation", JOIN_VERB, "positive"),
    DeskAction.END: ("End conversation", END_VERB, "destructive"),
}
_COLORS = {
    Tone.WAITING: "Warning",
    Tone.GOOD: "Good",
    Tone.CALM: "Default",
    Tone.ALERT: "Attention",
}


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


def _fact_rows(facts: Sequence[Fact]) -> list[Card]:
    """Label/value rows; values are visitor data, so verbatim."""
    return [
        {
            "type": "ColumnSet",
            "spacing": "Small",
            "columns": [
                # Labels can come from visitor context keys: verbatim too.
                {"type": "Column", "width": "90px", "items": [_plain(fact.label, isSubtle=True)]},
                {"type": "Column", "width": "stretch", "items": [_plain(fact.value)]},
            ],
        }
        for fact in facts
    ]


def _action(action: DeskAction, handoff_id: str) -> Card:
    title, verb, style = _BUTTONS[action]
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


def _status(status: Status) -> Card:
    text = "".join(part if isinstance(part, str) else _when(part) for part in status.parts)
    # Verbatim: the text can carry the visitor's own name ("Ended by ...").
    return _plain(text, color=_COLORS[status.tone], weight="Bolder")


def thread_card(view: ThreadView) -> Card:
    """The root card of a handoff thread, for its current state."""
    body: list[Card] = []
    if view.notice:
        body.append({"type": "TextBlock", "text": view.notice, "wrap": True, "color": "Attention"})
    body += [
        {
            "type": "TextBlock",
            "text": f"Handoff request \u00b7 {view.route}",
            "size": "Large",
            "weight": "Bolder",
            "wrap": True,
        },
        *([_plain(view.route_description, isSubtle=True)] if view.route_description else []),
        _status(view.status),
        _label("Visitor"),
        *_fact_rows([*view.visitor, *view.extras]),
        *_brief(view.brief),
    ]
    body.append(
        {
            "type": "TextBlock",
            "text": f"Handoff {view.handoff_id}",
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
            "spacing": "Medium",
        }
    )
    return {
        **envelope(body),
        "actions": [
            *(_action(action, view.handoff_id) for action in view.actions),
            _transcript_action(view.handoff_id),
        ],
    }


def _transcript_action(handoff_id: str) -> Card:
    """Opens the whole transcript in a dialog (Teams asks the bot for it: ``task/fetch``), so
    it is one click away and never pasted into the channel."""
    return {
        "type": "Action.Submit",
        "title": "Transcript",
        "data": {
            "msteams": {"type": "task/fetch"},
            "verb": TRANSCRIPT_VERB,
            "handoffId": handoff_id,
        },
    }


_LINE_COLORS = {Role.VISITOR: "Accent", Role.SPECIALIST: "Good", Role.NOTE: "Warning"}


def transcript_card(view: TranscriptView) -> Card:
    """A conversation's transcript, for a dialog: visitor facts, then each line (its time in
    the reader's zone), internal notes marked. Everything the visitor wrote, verbatim."""
    body: list[Card] = [
        _plain(view.title, size="Medium", weight="Bolder"),  # (the visitor's name: verbatim)
        *_fact_rows(view.facts),
    ]
    if view.left_out:
        body.append(_plain(f"{view.left_out} earlier line(s) not shown", isSubtle=True))
    for line in view.lines:
        who = "internal note" if line.role is Role.NOTE else line.role.value
        body.append(
            {
                "type": "RichTextBlock",
                "spacing": "Medium",
                "inlines": [
                    {
                        "type": "TextRun",
                        "text": line.author,
                        "weight": "Bolder",
                        "color": _LINE_COLORS.get(line.role, "Default"),
                    },
                    {"type": "TextRun", "text": f" \u00b7 {who}", "isSubtle": True},
                ],
            }
        )
        # A TextBlock of its own: Adaptive Cards localise DATE()/TIME() in a TextBlock's text.
        body.append(
            {
                "type": "TextBlock",
                "text": _when(line.at),
                "isSubtle": True,
                "size": "Small",
                "spacing": "None",
            }
        )
        body.append(_plain(line.text[:MAX_LINE]))
    return envelope(body)


def _said(label: str, text: str) -> Card:
    """``label: “text”``: the visitor's words verbatim."""
    return {
        "type": "RichTextBlock",
        "inlines": [
            {"type": "TextRun", "text": f"{label}: ", "weight": "Bolder"},
            {"type": "TextRun", "text": f"\u201c{text}\u201d"},
        ],
    }


def _brief(brief: Brief) -> list[Card]:
    """What the visitor wants first, then what is still open and what the bot answered."""
    body: list[Card] = [_label("Summary so far")]
    if brief.wants:
        body.append(_said("Wants", brief.wants))
    body += [_said("Also said", text) for text in brief.also]
    body.append(_plain(brief.context, isSubtle=True))
    if brief.open:
        body.append(_label("Open questions"))
        body += [_plain(f"\u2022 {question}") for question in brief.open]
    if brief.answered:
        body.append(_label("The bot answered"))
        body += [
            _plain(f"\u2022 {question} \u2192 \u201c{answer}\u201d")
            for question, answer in brief.answered
        ]
    return body


def summary_card(view: SummaryView) -> Card:
    """The end-of-handoff summary, posted as a reply in the thread."""
    body: list[Card] = [
        {"type": "TextBlock", "text": "Conversation summary", "size": "Medium", "weight": "Bolder"},
        *_fact_rows(view.facts),
    ]
    for section in view.sections:
        body.append(_label(section.title))
        body += [_plain(f"\u2022 {item}") for item in section.items] or [
            _plain(section.empty, isSubtle=True)
        ]
    return envelope(body)


def envelope(body: list[Card]) -> Card:
    """A full-width card around ``body``."""
    return {
        "type": "AdaptiveCard",
        "$schema": SCHEMA,
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
