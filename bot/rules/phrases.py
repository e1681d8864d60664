"""Phrases: does this visitor want a person, is this a greeting, which keyword answer fits."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

from bot.config import Answer

# "can I talk to a human", "I want to speak with a real person", "connect me to an agent", ...
_ASK_FOR_PERSON = re.compile(
    r"\b(talk|speak|chat|connect|transfer|put)\w*\b.{0,24}?\b(to|with|me)\b.{0,16}?"
    r"\b(human|person|agent|someone|somebody|representative|rep|operator|specialist|staff)s?\b"
    r"|\b(real|live|actual)\s+(human|person|agent|people)\b"
    r"|\b(human|agent|person|operator)\s+please\b"
    r"|^\s*(human|agent|operator|representative)\s*[!.?]*\s*$"
)
# Every way above names one of these: a message without any needs no closer look.
_PERSON_WORD = re.compile(r"human|person|agent|some|rep|operator|specialist|staff|people")


_PUNCTUATION = re.compile(r"[^\w'\s]")


# A message is looked at several times per turn (intents for the rules, the escalation checks,
# the checks over the transcript): the functions below remember their recent answers.
@lru_cache(maxsize=512)
def normalise(text: str) -> str:
    """Lowercase, accents kept, punctuation and runs of spaces collapsed for matching."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCTUATION.sub(" ", folded).split())


@lru_cache(maxsize=128)
def padded_words(words: tuple[str, ...]) -> tuple[str, ...]:
    """Each phrase normalised and padded with spaces, to look for as whole words."""
    return tuple(f" {normalise(word)} " for word in words)


def contains_any(text: str, words: Iterable[str]) -> bool:
    """True when one of the phrases appears as whole words in the text."""
    return _contains_any(text, tuple(words))


@lru_cache(maxsize=512)
def _contains_any(text: str, words: tuple[str, ...]) -> bool:
    padded = f" {normalise(text)} "
    return any(map(padded.__contains__, padded_words(words)))


def asks_for_person(text: str, phrases: Iterable[str]) -> bool:
    """True when the visitor asks, in ordinary words, for a human."""
    return _asks_for_person(text, tuple(phrases))


@lru_cache(maxsize=512)
def _asks_for_person(text: str, phrases: tuple[str, ...]) -> bool:
    plain = normalise(text)
    if not plain:
        return False
    if _PERSON_WORD.search(plain) and _ASK_FOR_PERSON.search(plain):
        return True
    padded = f" {plain} "
    return any(map(padded.__contains__, padded_words(phrases)))


def find_answer(text: str, answers: Sequence[Answer]) -> Answer | None:
    """The first canned answer one of whose keywords appears as words in the text."""
    padded = f" {normalise(text)} "
    for answer in answers:
        if any(map(padded.__contains__, padded_words(tuple(answer.match)))):
            return answer
    return None


_GREETING = re.compile(
    r"^(hi|hello|hey|hallo|bonjour|hola|ciao|good (morning|afternoon|evening))\b"
)


def is_greeting(text: str) -> bool:
    """A bare hello."""
    plain = normalise(text)
    return bool(_GREETING.match(plain)) and len(plain.split()) <= 4
