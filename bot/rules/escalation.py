"""When a handoff starts: explicit requests, frustration, and CEL context rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from bot.cel import Facts, FirstMatch
from bot.config import DEFAULT_PHRASES, ContextRule, Escalation
from bot.model import Role, Turn
from bot.rules.phrases import asks_for_person, contains_any, is_greeting, normalise
from bot.summary import is_question

# Wording that signals a visitor is getting annoyed; ops can add more in YAML.
NEGATIVE_WORDS = (
    "useless",
    "not helpful",
    "unhelpful",
    "doesn't help",
    "does not help",
    "doesn't work",
    "does not work",
    "not working",
    "still broken",
    "terrible",
    "awful",
    "horrible",
    "ridiculous",
    "stupid",
    "annoying",
    "frustrating",
    "frustrated",
    "angry",
    "wtf",
    "waste of time",
    "pointless",
    "you don't understand",
    "not what i asked",
    "makes no sense",
    "nonsense",
    "worst",
    "nutzlos",
    "hilft nicht",
    "funktioniert nicht",
    "inutile",
    "ça ne marche pas",
    "no sirve",
    "inútil",
    "no funciona",
)


@dataclass(frozen=True)
class Trigger:
    """Why a handoff starts."""

    kind: str  # phrase | frustration | rule
    reason: str


def is_negative(text: str, extra: Sequence[str] = ()) -> bool:
    """Negative wording anywhere in the message."""
    return contains_any(text, (*NEGATIVE_WORDS, *extra))


@lru_cache(maxsize=512)
def _words(text: str) -> frozenset[str]:
    return frozenset(w for w in normalise(text).split() if len(w) > 2)


def same_question(a: str, b: str) -> bool:
    """Near-identical wording (word overlap of 80% or more)."""
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return normalise(a) == normalise(b) and bool(normalise(a))
    return len(wa & wb) / len(wa | wb) >= 0.8


def intents(text: str, phrases: Sequence[str], negative: Sequence[str] = ()) -> list[str]:
    """Coarse labels of a visitor message, for rules (``conversation.intents``)."""
    found = []
    if asks_for_person(text, phrases):
        found.append("handoff_request")
    if is_question(text):
        found.append("question")
    if is_greeting(text):
        found.append("greeting")
    if is_negative(text, negative):
        found.append("negative")
    return found


def detect(settings: Escalation, text: str, turns: Sequence[Turn], facts: Facts) -> Trigger | None:
    """The first escalation trigger the latest visitor message fires, if any.

    ``turns`` is the transcript including that message. Bot fallbacks in a row are counted by
    the caller, which knows whether the bot is about to fail again (``fallback_trigger``).
    """
    if settings.phrases.enabled and asks_for_person(
        text, (*DEFAULT_PHRASES, *settings.phrases.extra)
    ):
        return Trigger("phrase", "the visitor asked for a person")
    if settings.rules:
        rules, first = escalation_plan(settings)
        position = first.first(facts)
        if position is not None:
            return Trigger("rule", f"rule \u201c{rules[position].name}\u201d matched")
    frustration = settings.frustration
    if not frustration.enabled:
        return None
    said = [t.text for t in turns if t.role is Role.VISITOR]
    negative = 0
    for line in reversed(said):
        if not is_negative(line, frustration.extra_negative_words):
            break
        negative += 1
    if negative >= frustration.negative_in_row:
        return Trigger(
            "frustration", f"the visitor seems frustrated ({negative} upset messages in a row)"
        )
    if said and is_question(said[-1]):
        repeats = sum(1 for line in said if same_question(line, said[-1]))
        if repeats >= frustration.repeated_question:
            return Trigger("frustration", f"the visitor asked the same question {repeats} times")
    return None


_KEEP = 8
_PLANS: dict[int, tuple[Escalation, tuple[ContextRule, ...], FirstMatch]] = {}


def escalation_plan(settings: Escalation) -> tuple[tuple[ContextRule, ...], FirstMatch]:
    """The context rules in order, and compiled to find the first that matches."""
    rules = tuple(settings.rules)
    kept = _PLANS.get(id(settings))
    if kept is not None and kept[0] is settings and kept[1] == rules:
        return kept[1], kept[2]
    first = FirstMatch([rule.when for rule in rules])
    if len(_PLANS) >= _KEEP:
        _PLANS.pop(next(iter(_PLANS)))
    _PLANS[id(settings)] = (settings, rules, first)
    return rules, first


def fallback_trigger(settings: Escalation, fallbacks_so_far: int) -> Trigger | None:
    """The bot is about to fail to answer again: hand off once that makes N in a row."""
    frustration = settings.frustration
    count = fallbacks_so_far + 1
    if frustration.enabled and count >= frustration.fallbacks_in_row:
        return Trigger("frustration", f"the bot could not answer {count} times in a row")
    return None
