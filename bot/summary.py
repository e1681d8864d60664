"""Summaries and open loops, computed from the transcript without any model or service."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import DEFAULT_PHRASES
from bot.model import Handoff, Role, Turn
from bot.rules.phrases import asks_for_person, is_greeting, normalise

_QUESTION_START = re.compile(
    r"^(how|what|why|when|where|who|whom|which|can|could|is|are|am|do|does|did|will|would|"
    r"should|shall|may|have|has|wie|was|warum|wann|wo|kann|können|comment|pourquoi|quand|"
    r"où|est-ce|cómo|qué|por qué|cuándo|dónde|puedo|puede)\b",
    re.IGNORECASE,
)
QUOTE_LIMIT = 140


_LEADING_AND = re.compile(
    r"^((and|also|so|but|ok|okay|well|hi|hello|und|also|et|alors|y|e)[,]?\s+)+", re.IGNORECASE
)


def is_question(text: str) -> bool:
    """Ends in a question mark or opens like a question (after "and", "ok so", "hi"...)."""
    stripped = text.strip()
    return stripped.endswith("?") or bool(_QUESTION_START.match(_LEADING_AND.sub("", stripped)))


# What asks nothing of the team, even when it ends in "?" (the whole sentence, so "ok so how do
# I export?" still asks): checking the chat is alive, asking whether the bot is one, thanks and
# pleasantries (a greeting or a request for a person is
# recognised by the escalation's own rules).
_SMALL_TALK = re.compile(
    r"^(how are you|how r u|are you (a |an )?(bot|robot|human|real|there)|"
    r"(is )?(any ?one|some ?one|somebody|anybody) (still )?there|(are you )?still there|"
    r"you there|hello|hi|hey|thanks|thank you|thx|danke|merci|gracias|ok|okay|"
    r"wie geht'?s|ça va|bist du (ein )?bot|are we done)( (today|doing|please|there|again))?$"
)
# A question that leans on the sentence before it ("How do I fix that?").
_POINTS_BACK = re.compile(r"\b(this|that|it|these|those|das|dies|es|ça|cela|ceci|eso|esto)\b")
# Where sentences end: after a closing mark and a space (not the dot in "example.com"), or
# at a line's end.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _chatter(text: str) -> bool:
    """A request for a person, a greeting, thanks or small talk: nothing to answer."""
    plain = normalise(text)
    return (
        not plain
        or asks_for_person(text, DEFAULT_PHRASES)
        or is_greeting(text)
        or bool(_SMALL_TALK.match(plain))
    )


def questions_in(text: str) -> list[str]:
    """The questions a message really asks, sentence by sentence: never a request for a person,
    a greeting, thanks or small talk, even when they end in a question mark."""
    found = []
    before = ""  # the statement just before, which "that" in a question may point back to
    for part in _SENTENCE_END.split(text):
        sentence = part.strip()
        if not sentence or _chatter(sentence):
            continue
        if not is_question(sentence):
            before = sentence
            continue
        if before and (len(sentence.split()) <= 2 or _POINTS_BACK.search(normalise(sentence))):
            sentence = f"{before} {sentence}"
        found.append(sentence)
        before = ""
    return found


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
        if turn.role is Role.VISITOR:
            pending.extend(quote(question) for question in questions_in(turn.text))
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
    said = [t.text for t in during if t.role is Role.VISITOR]
    # What the specialist took on: the questions still open when the handoff began (what the
    # visitor came about), then those asked since.
    carried = loops([t for t in turns if t.at < handoff.created_at]).open
    asked_since = [quote(q) for text in said for q in questions_in(text)]
    asked_during = tuple(dict.fromkeys([*carried, *asked_since]))
    if not asked_during:  # no question as such: what they came about, in their words
        asked_during = tuple(quote(text) for text in said if not _chatter(text))[:3]
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
