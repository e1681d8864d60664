"""What waits to be sent into a Teams thread, typed: a relayed message, the bot's own text, a
new card, a card update. Stored as JSON (the shape earlier versions wrote, so queues written
before an upgrade are still sent); a row that cannot be read is ``Unreadable``, never a crash."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.teams.cards import Card


@dataclass(frozen=True, slots=True)
class Relay:
    """A visitor's message (or a numbered part of one), shown under their name."""

    author: str
    text: str


@dataclass(frozen=True, slots=True)
class Text:
    """The bot's own words; ``markdown`` when formatted (the setup help)."""

    text: str
    markdown: bool = False


@dataclass(frozen=True, slots=True)
class CardPost:
    """A card posted as a new message of the thread (a summary, say)."""

    card: Card
    summary: str


@dataclass(frozen=True, slots=True)
class CardUpdate:
    """A new version of a message's card (only the newest pending one is sent)."""

    activity_id: str
    card: Card


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A stored row that is none of the above: it can never be sent."""

    why: str


Item = Relay | Text | CardPost | CardUpdate
# Made fresh for each call, and holding no card a caller might still change: safe to keep in
# memory as they are (the queue's mirror).
KEPT_AS_IS = (Relay, Text)


def encode(item: Item) -> dict[str, Any]:
    """The row's JSON."""
    if isinstance(item, Relay):
        return {"kind": "relay", "author": item.author, "text": item.text}
    if isinstance(item, Text):
        return {
            "kind": "text",
            "text": item.text,
            **({"format": "markdown"} if item.markdown else {}),
        }
    if isinstance(item, CardPost):
        return {"kind": "card", "card": item.card, "summary": item.summary}
    return {"kind": "update", "activity_id": item.activity_id, "card": item.card}


def decode(row: Any) -> Item | Unreadable:
    """The item a stored row holds."""
    if not isinstance(row, dict):
        return Unreadable(f"not an object: {type(row).__name__}")
    kind = row.get("kind")
    try:
        if kind == "relay":
            return Relay(str(row["author"]), str(row["text"]))
        if kind == "text":
            return Text(str(row.get("text", "")), row.get("format") == "markdown")
        if kind == "card" and isinstance(row["card"], dict):
            return CardPost(row["card"], str(row.get("summary", "")))
        if kind == "update" and isinstance(row["card"], dict):
            return CardUpdate(str(row["activity_id"]), row["card"])
    except KeyError as exc:
        return Unreadable(f"a {kind} without {exc}")
    return Unreadable(f"unknown kind {kind!r}")
