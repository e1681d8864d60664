"""Summaries and open loops, computed from the transcript without any model or service."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.model import Handoff, Role, Turn

_QUESTION_START = re.compile(
    r"^(how|what|why|when|where|who|whom|which|can|could|is|are|am|do|does|did|will|would|"
    r"should|shall|may|have|has|wie|was|warum|wann|wo|kann|können|comment|pourquoi|quand|"
    r"où|est-ce|cómo|qué|por qué|cuándo|dónde|puedo|puede)\b",
    re.IGNORECASE,
)
QUOTE_LIMIT = 140


def is_question(text: str) -> bool:
    """Ends in a question mark or opens like a question."""
    stripped = text.strip()
    return stripped.endswith("?") or bool(_QUESTION_START.match(stripped))


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """One line, cut at a word boundary with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    if flat[limit - 1] != " ":
        cut = cut.rsplit(" ", 1)[0]
    return f"{cut.rstrip()}…"


def format_duration(delta: timedelta) -> str:
    """Like '45 s', '3 min', '1 h 5 min'."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


@dataclass(frozen=True)
class Loops:
    """Visitor questions, split into answered and still open."""

    answered: tuple[str, ...]
    open: tuple[str, ...]


def loops(turns: Sequence[Turn]) -> Loops:
    """A question is answered by the next real bot answer or by any specialist reply after it."""
    pending: list[str] = []
    answered: list[str] = []
    for turn in turns:
        if turn.role is Role.VISITOR and is_question(turn.text):
            pending.append(quote(turn.text))
        elif turn.role is Role.BOT and not turn.fallback and pending:
            answered.append(pending.pop())
        elif turn.role is Role.SPECIALIST and pending:
            answered.extend(pending)
            pending.clear()
    return Loops(tuple(answered), tuple(pending))


def summary_so_far(turns: Sequence[Turn], visitor_name: str, reason: str) -> str:
    """Two or three sentences for the thread's root: how long, what about, why handed off."""
    said = [t for t in turns if t.role is Role.VISITOR]
    if not said:
        return f"{visitor_name} asked for a specialist before saying anything else ({reason})."
    span = format_duration(turns[-1].at - turns[0].at)
    first = quote(said[0].text)
    parts = [
        f"{visitor_name} chatted with the bot for {span} ({len(said)} "
        f"message{'s' if len(said) != 1 else ''}).",
        f"First message: \u201c{first}\u201d.",
    ]
    if len(said) > 1:
        parts.append(f"Latest: \u201c{quote(said[-1].text)}\u201d.")
    parts.append(f"Handed off: {reason}.")
    return " ".join(parts)


@dataclass(frozen=True)
class EndSummary:
    """What is posted in the thread when a handoff ends."""

    who: str
    duration: str
    messages: int
    asked: tuple[str, ...]
    resolved: tuple[str, ...]
    still_open: tuple[str, ...]
    ended_by: str


def end_summary(
    handoff: Handoff, turns: Sequence[Turn], visitor_name: str, now: datetime
) -> EndSummary:
    """Summarise the human part of the conversation (from handoff to end)."""
    during = [t for t in turns if t.at >= handoff.created_at]
    result = loops(turns)
    asked_during = tuple(
        quote(t.text) for t in during if t.role is Role.VISITOR and is_question(t.text)
    )
    if not asked_during:
        asked_during = tuple(quote(t.text) for t in during if t.role is Role.VISITOR)[:3]
    specialist = handoff.specialist.name if handoff.specialist else "nobody"
    start = handoff.joined_at or handoff.created_at
    return EndSummary(
        who=f"{visitor_name} with {specialist}",
        duration=format_duration((handoff.ended_at or now) - start),
        messages=sum(1 for t in during if t.role in (Role.VISITOR, Role.SPECIALIST)),
        asked=asked_during,
        resolved=tuple(q for q in result.answered if q in asked_during),
        still_open=result.open,
        ended_by=handoff.ended_by_name or (handoff.ended_by.value if handoff.ended_by else ""),
    )
