"""Summaries and open loops, computed from the transcript without any model or service."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    r"you there|hello|hi|hey|thanks|thank you|thx|danke|merci|gracias|ok|okay|salut|bonjour|"
    r"hola|buenas|hallo|moin|servus|good (morning|afternoon|evening)|guten (morgen|tag|abend)|"
    r"wie geht'?s|ça va|bist du (ein )?bot|are we done)( (today|doing|please|there|again))?$"
)
# A question that leans on the sentence before it ("How do I fix that?").
_POINTS_BACK = re.compile(r"\b(this|that|it|these|those|das|dies|es|ça|cela|ceci|eso|esto)\b")
# Where sentences end: after a closing mark and a space (not the dot in "example.com"), or
# at a line's end.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


# A short request for a person in any words ("human pls", "can someone help me", "Mitarbeiter
# bitte"): a person word, and nothing but such words and these.
_PERSON_WORDS = frozenset(
    "human humans person people someone somebody anyone anybody agent agents operator"
    " representative rep support staff mensch menschen mitarbeiter mitarbeiterin jemand"
    " humain humaine quelqu'un quelqu personne conseiller persona alguien agente humano".split()
)
_REQUEST_WORDS = frozenset(
    "can could may i me we let talk speak chat to with a an the real live please pls plz need"
    " want get connect transfer help now asap actual some one you your ich möchte will bitte"
    " mit einem einer sprechen reden je veux voudrais parler à un une svp s'il plait vous"
    " quiero puedo hablar con una por favor".split()
)
# A greeting opening a sentence that goes on ("Hi there, how do I...": "how do I...").
_GREETING_LEAD = re.compile(
    r"^(hi|hello|hey|hallo|moin|servus|bonjour|salut|hola|buenas|good (morning|afternoon|"
    r"evening)|guten (morgen|tag|abend))( there| all| team| everyone)?\s*[,!.:-]+\s*(?=\S)",
    re.IGNORECASE,
)


def _only_asks_for_person(plain: str) -> bool:
    words = plain.split()
    return any(w in _PERSON_WORDS for w in words) and all(
        w in _PERSON_WORDS or w in _REQUEST_WORDS for w in words
    )


def _chatter(text: str) -> bool:
    """A request for a person, a greeting, thanks or small talk: nothing to answer."""
    plain = normalise(text)
    return (
        not plain
        or asks_for_person(text, DEFAULT_PHRASES)
        or _only_asks_for_person(plain)
        or is_greeting(text)
        or bool(_SMALL_TALK.match(plain))
    )


def _ungreeted(sentence: str) -> str:
    """The sentence without a greeting it opens with ("Hi, how do I..." -> "How do I...")."""
    rest = _GREETING_LEAD.sub("", sentence)
    return rest[:1].upper() + rest[1:] if rest is not sentence and rest != sentence else sentence


def _sentences(text: str) -> list[str]:
    """The message's sentences, each without a greeting it opens with."""
    return [_ungreeted(p.strip()) for p in _SENTENCE_END.split(text) if p.strip()]


def questions_in(text: str) -> list[str]:
    """The questions a message really asks, sentence by sentence: never a request for a person,
    a greeting, thanks or small talk, even when they end in a question mark."""
    found = []
    before = ""  # the statement just before, which "that" in a question may point back to
    for sentence in _sentences(text):
        if _chatter(sentence):
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
class Question:
    """A visitor's question (quoted), in the message it came in, and its answer if any."""

    text: str
    message: int  # the index of the visitor's turn it came in
    answered_by: Role | None = None
    answer: str = ""  # the answer, quoted (the bot's; a specialist's replies are not quoted)
    answered_at: int = -1  # the index of the answering turn


# Words too common to tell which question an answer is about.
_COMMON = frozenset(
    "the and for you your can could how what why when where who which does did are is was will"
    " would should have has not with this that there here about from into our out get got use"
    " und der die das ist wie was wer wann ich sie ein eine les des est une pour que qui comment"
    " los las una que por como para".split()
)


def _topic(text: str) -> set[str]:
    return {w for w in normalise(text).split() if len(w) > 2 and w not in _COMMON}


def _answered(pending: list[int], found: list[Question], answer: str) -> int:
    """Which pending question an answer is about: the one sharing most words with it, else
    the latest (an answer follows the question it answers)."""
    words = _topic(answer)
    best = max(range(len(pending)), key=lambda i: (len(words & _topic(found[pending[i]].text)), i))
    return pending.pop(best)


def questions(turns: Sequence[Turn]) -> list[Question]:
    """The visitor's questions in order, each answered by a real bot answer after it (the one
    it shares most words with, else the latest) or by any specialist reply after it."""
    found: list[Question] = []
    pending: list[int] = []
    for index, turn in enumerate(turns):
        if turn.role is Role.VISITOR:
            for question in questions_in(turn.text):
                pending.append(len(found))
                found.append(Question(quote(question), index))
        elif turn.role is Role.BOT and not turn.fallback and pending:
            at = _answered(pending, found, turn.text)
            found[at] = replace(
                found[at], answered_by=Role.BOT, answer=quote(turn.text), answered_at=index
            )
        elif turn.role is Role.SPECIALIST and pending:
            for at in pending:
                found[at] = replace(found[at], answered_by=Role.SPECIALIST, answered_at=index)
            pending.clear()
    return found


@dataclass(frozen=True)
class Loops:
    """Visitor questions, split into answered and still open."""

    answered: tuple[str, ...]
    open: tuple[str, ...]


def loops(turns: Sequence[Turn]) -> Loops:
    """A question is answered by the next real bot answer or by any specialist reply after it."""
    asked = questions(turns)
    return Loops(
        tuple(q.text for q in asked if q.answered_by is not None),
        tuple(q.text for q in asked if q.answered_by is None),
    )


def substance(text: str) -> str:
    """A message without its greetings, thanks, small talk and requests for a person: what it
    is about, in the visitor's words ("" if nothing is left)."""
    return " ".join(s for s in _sentences(text) if not _chatter(s))


@dataclass(frozen=True)
class Brief:
    """The conversation before a handoff, as a specialist needs it before saying hello."""

    wants: str  # what the visitor came about, in their words ("" if they said nothing else)
    also: tuple[str, ...]  # what else they said (their last three such messages, in order)
    answered: tuple[tuple[str, str], ...]  # what the bot answered: (question, its answer)
    open: tuple[str, ...]  # the questions still open
    context: str  # how long, how much, and why handed off, in one sentence


def brief(turns: Sequence[Turn], visitor_name: str, reason: str) -> Brief:
    """The brief for a handoff thread's root, from the transcript up to the handoff.

    What the visitor wants, in their words: the message of their first question still open
    (what the bot could not answer); else what they said after the bot's last answer (the
    answer did not settle it: "that link does not work", or a new matter); else the question
    the bot answered last (they asked for a person after its answer); else their first message
    with any substance. ``also``: the rest of what they said with substance (the last three of
    those messages), but for questions listed anyway."""
    asked = questions(turns)
    said = [(i, substance(t.text)) for i, t in enumerate(turns) if t.role is Role.VISITOR]
    meant = [(i, text) for i, text in said if text]
    still_open = [q for q in asked if q.answered_by is None]
    answered = [q for q in asked if q.answered_by is Role.BOT]
    last_answer = max((q.answered_at for q in answered), default=-1)
    after = [i for i, _ in meant if i > last_answer]
    if still_open:
        wants_at = still_open[0].message
    elif answered and after:
        wants_at = after[0]
    elif answered:
        wants_at = max(answered, key=lambda q: q.answered_at).message
    else:
        wants_at = meant[0][0] if meant else -1
    wants = next((quote(text) for i, text in meant if i == wants_at), "")
    listed = {q.text for q in asked}  # shown already, as open or answered
    also = [quote(text) for i, text in meant if i != wants_at and quote(text) not in listed]
    if not meant:
        context = (
            f"{visitor_name} asked for a specialist without saying what about ({reason})."
            if said
            else f"{visitor_name} asked for a specialist before saying anything else ({reason})."
        )
    else:
        span = format_duration(turns[-1].at - turns[0].at)
        plural = "s" if len(said) != 1 else ""
        context = (
            f"{visitor_name} was with the bot for {span} ({len(said)} message{plural});"
            f" handed off: {reason}."
        )
    return Brief(
        wants=wants,
        also=tuple(also[-3:]),
        answered=tuple((q.text, q.answer) for q in answered),
        open=tuple(q.text for q in still_open),
        context=context,
    )


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
    time_to_join: str = ""  # "" when nobody joined


def end_summary(
    handoff: Handoff, turns: Sequence[Turn], visitor_name: str, now: datetime
) -> EndSummary:
    """Summarise the human part of the conversation (from handoff to end)."""
    during = [t for t in turns if t.at >= handoff.created_at]
    result = loops(turns)
    said = [t.text for t in during if t.role is Role.VISITOR]
    # What the specialist took on: the questions still open when the handoff began (what the
    # visitor came about), then those asked since.
    before = [t for t in turns if t.at < handoff.created_at]
    carried = loops(before).open
    asked_since = [quote(q) for text in said for q in questions_in(text)]
    asked_during = tuple(dict.fromkeys([*carried, *asked_since]))
    if not asked_during:  # no question as such: what they came about, in their words
        came_about = brief(before, visitor_name, handoff.reason).wants
        meant = [quote(text) for text in map(substance, said) if text]
        asked_during = (came_about,) if came_about else tuple(meant[:3])
    specialist = handoff.specialist.name if handoff.specialist else "nobody"
    start = handoff.joined_at or handoff.created_at
    joined = handoff.joined_at
    return EndSummary(
        time_to_join=format_duration(joined - handoff.created_at) if joined else "",
        who=f"{visitor_name} with {specialist}",
        duration=format_duration((handoff.ended_at or now) - start),
        messages=sum(1 for t in during if t.role in (Role.VISITOR, Role.SPECIALIST)),
        asked=asked_during,
        resolved=tuple(q for q in result.answered if q in asked_during),
        still_open=result.open,
        ended_by=handoff.ended_by_name or (handoff.ended_by.value if handoff.ended_by else ""),
    )
