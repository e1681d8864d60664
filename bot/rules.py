"""Escalation and routing rules: does this visitor want a person, and which route takes them."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from bot.config import Answer

# "can I talk to a human", "I want to speak with a real person", "connect me to an agent", ...
_ASK_FOR_PERSON = re.compile(
    r"\b(talk|speak|chat|connect|transfer|put)\w*\b.{0,24}?\b(to|with|me)\b.{0,16}?"
    r"\b(human|person|agent|someone|somebody|representative|rep|operator|specialist|staff)s?\b"
    r"|\b(real|live|actual)\s+(human|person|agent|people)\b"
    r"|\b(human|agent|person|operator)\s+please\b"
    r"|^\s*(human|agent|operator|representative)\s*[!.?]*\s*$"
)


def normalise(text: str) -> str:
    """Lowercase, accents kept, punctuation and runs of spaces collapsed for matching."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w'\s]", " ", folded).split())


def asks_for_person(text: str, phrases: Iterable[str]) -> bool:
    """True when the visitor asks, in ordinary words, for a human."""
    plain = normalise(text)
    if not plain:
        return False
    if _ASK_FOR_PERSON.search(plain):
        return True
    padded = f" {plain} "
    return any(f" {normalise(p)} " in padded for p in phrases)


def find_answer(text: str, answers: Sequence[Answer]) -> Answer | None:
    """The first canned answer one of whose keywords appears as words in the text."""
    padded = f" {normalise(text)} "
    for answer in answers:
        if any(f" {normalise(keyword)} " in padded for keyword in answer.match):
            return answer
    return None


_GREETING = re.compile(
    r"^(hi|hello|hey|hallo|bonjour|hola|ciao|good (morning|afternoon|evening))\b"
)


def is_greeting(text: str) -> bool:
    """A bare hello."""
    plain = normalise(text)
    return bool(_GREETING.match(plain)) and len(plain.split()) <= 4
