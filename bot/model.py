"""Domain records: frozen dataclasses and string enums, nothing framework-shaped."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

EMPTY: Mapping[str, Any] = MappingProxyType({})


class HandoffState(StrEnum):
    """Where a handoff is in its life; a conversation with no open handoff is bot-only."""

    QUEUED = "queued"
    JOINED = "joined"
    ENDED = "ended"
    FAILED = "failed"
    EXPIRED = "expired"  # nobody joined in time

    @property
    def is_open(self) -> bool:
        """True while a human is (about to be) first responder."""
        return self in (HandoffState.QUEUED, HandoffState.JOINED)


class Role(StrEnum):
    """Who wrote a transcript turn."""

    VISITOR = "visitor"
    BOT = "bot"
    SPECIALIST = "specialist"
    SYSTEM = "system"
    NOTE = "note"  # written in the desk thread and never relayed: kept for the team only


class Party(StrEnum):
    """Which side did something (ended a handoff, for example)."""

    VISITOR = "visitor"
    SPECIALIST = "specialist"
    SYSTEM = "system"


@dataclass(frozen=True)
class Person:
    """Someone on a desk (a specialist): the id the desk knows them by, and their display name."""

    id: str
    name: str


@dataclass(frozen=True)
class Page:
    """The page the visitor is on."""

    url: str = ""
    title: str = ""
    referrer: str = ""


@dataclass(frozen=True)
class Visitor:
    """What the site (or an upstream agent) told us about the visitor."""

    id: str
    name: str = ""
    email: str = ""
    company: str = ""
    page: Page = field(default_factory=Page)
    locale: str = ""
    timezone: str = ""
    user_agent: str = ""
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    @property
    def display_name(self) -> str:
        """The name to show for the visitor, never empty."""
        return self.name or "Visitor"

    def fields(self) -> dict[str, Any]:
        """Everything known, as plain data (stored as JSON, seen by rules)."""
        page = self.page
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "company": self.company,
            "locale": self.locale,
            "timezone": self.timezone,
            "user_agent": self.user_agent,
            "page": {"url": page.url, "title": page.title, "referrer": page.referrer},
            "extra": dict(self.extra),
        }


@dataclass(frozen=True)
class Conversation:
    """A widget conversation: the visitor, and the bot's running state."""

    id: str
    visitor: Visitor
    created_at: datetime
    fallbacks_in_row: int = 0
    # What the site or an upstream agent passed (visitor.context, handoff.initiate): rules read it.
    context: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    version: int = 0


@dataclass(frozen=True)
class Turn:
    """One transcript line."""

    conversation_id: str
    at: datetime
    role: Role
    author: str
    text: str
    # A bot turn that could not answer the visitor: its question stays an open loop.
    fallback: bool = False


@dataclass(frozen=True)
class Handoff:
    """A request for a human, from queued to ended."""

    id: str
    conversation_id: str
    route_id: str
    state: HandoffState
    created_at: datetime
    reason: str
    thread_id: str = ""
    root_activity_id: str = ""
    specialist: Person | None = None
    joined_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: Party | None = None
    ended_by_name: str = ""
    failure: str = ""
    # Lifecycle marks: the join timeout passed (visitor told), the idle reminder was sent.
    timed_out_at: datetime | None = None
    reminded_at: datetime | None = None
    context: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    version: int = 0


_VISITOR_FIELDS = {"name", "email", "company", "locale", "timezone"}
_EXTRA_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9 _-]{0,39}$")
_MAX_EXTRAS = 20


def _text(value: Any, limit: int = 500) -> str:
    return str(value)[:limit] if isinstance(value, str | int | float) else ""


def merge_context(visitor: Visitor, context: Mapping[str, Any]) -> Visitor:
    """Fold a ``visitor.context`` payload into what we know; unknown keys become extras."""
    known = {key: _text(context[key]) for key in _VISITOR_FIELDS if key in context}
    known = {key: value for key, value in known.items() if value}
    page = visitor.page
    raw_page = context.get("page")
    if isinstance(raw_page, Mapping):
        page = Page(
            url=_text(raw_page.get("url", page.url), 2000),
            title=_text(raw_page.get("title", page.title)),
            referrer=_text(raw_page.get("referrer", page.referrer), 2000),
        )
    user_agent = _text(context.get("userAgent", visitor.user_agent))
    skip = _VISITOR_FIELDS | {"page", "userAgent", "screen"}
    extra = dict(visitor.extra)
    for key, value in context.items():
        # Extras are shown on the desk: plain short keys and scalar values only.
        if (
            len(extra) < _MAX_EXTRAS
            and key not in skip
            and _EXTRA_KEY.match(str(key))
            and _text(value)
        ):
            extra[str(key)] = _text(value)
    return Visitor(
        id=visitor.id,
        name=known.get("name", visitor.name),
        email=known.get("email", visitor.email),
        company=known.get("company", visitor.company),
        page=page,
        locale=known.get("locale", visitor.locale),
        timezone=known.get("timezone", visitor.timezone),
        user_agent=user_agent,
        extra=MappingProxyType(extra),
    )


CONTEXT_LIMIT = 16_384  # characters of JSON kept per conversation


def merge_raw_context(current: Mapping[str, Any], update: Mapping[str, Any]) -> Mapping[str, Any]:
    """Newer keys win; a context that would grow past the limit keeps what it had."""
    merged = {**current, **update}
    if len(json.dumps(merged, default=str)) > CONTEXT_LIMIT:
        return current
    return MappingProxyType(merged)
