"""The domain's part of the ops-owned configuration, as pydantic models; the edges' sections,
the model of the whole file and loading YAML live in ``adapters``."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from bot.cel import Rule
from bot.hours import Hours
from bot.texts import Texts

# The Playground's team channel, so the embedded defaults work with ``make run`` as shipped.
PLAYGROUND_CHANNEL = "19:handoff-support@thread.tacv2"

WEEK_MINUTES = 7 * 24 * 60  # the longest wait a route may set (longer is a typo, or infinity)
_ROUTE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

# The route of the embedded defaults.
DEFAULT_ROUTE = {
    "id": "support",
    "name": "Customer support",
    "description": "Questions about orders, billing and your account",
    "channel": PLAYGROUND_CHANNEL,
}

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class ConfigModel(BaseModel):
    """A part of the config file: unknown keys are errors, and a reload makes new ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OutOfHours(StrEnum):
    """What happens when a handoff is asked for outside the route's hours."""

    CONTINUE = "continue"  # the bot keeps helping, no handoff
    MESSAGE = "message"  # the bot says when the team is back
    FALLBACK_ROUTE = "fallback_route"  # try another route instead


class JoinTimeout(StrEnum):
    """What happens when nobody joins in time."""

    KEEP_BOT = "keep_bot"  # tell the visitor; the bot is first responder again
    LEAVE_MESSAGE = "leave_message"  # keep the request open; the visitor leaves a message
    ROUTE = "route"  # try another route (``join_timeout_route``)


class Route(ConfigModel):
    """Where a handoff goes: a channel of the specialists' desk, when it is staffed, and how it
    is shown. What a channel may be is the desk's to say (``adapters/<desk>/settings.py``)."""

    id: NonEmpty
    name: str = ""
    description: str = ""
    # Where on the desk this route's threads open (for Teams, a channel id).
    channel: NonEmpty
    # Metadata: the domain/category this route serves (shown on the card, usable in rules).
    domain: str = ""
    # Widget ``handoff.request`` categories that pick this route.
    categories: list[str] = Field(default_factory=list)
    # CEL: is the route offered at all? (omitted: always)
    pretrigger: Rule | None = None
    # CEL: does a handoff take this route? (omitted: the default route, catches the rest)
    trigger: Rule | None = None
    hours: Hours | None = None
    out_of_hours: OutOfHours = OutOfHours.CONTINUE
    fallback_route: str = ""
    # Nobody joined within this many minutes: apply ``on_join_timeout``.
    join_timeout_minutes: float = Field(default=10, gt=0, le=WEEK_MINUTES)
    on_join_timeout: JoinTimeout = JoinTimeout.KEEP_BOT
    join_timeout_route: str = ""
    # A joined chat with no message for this long: remind the visitor, then close it.
    idle_reminder_minutes: float = Field(default=10, gt=0, le=WEEK_MINUTES)
    idle_close_minutes: float = Field(default=20, gt=0, le=WEEK_MINUTES)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ROUTE_ID.match(value):
            raise ValueError("use lowercase letters, digits, '-' and '_' (max 64)")
        return value

    @model_validator(mode="after")
    def _fallback_named(self) -> Route:
        if self.out_of_hours is OutOfHours.FALLBACK_ROUTE and not self.fallback_route:
            raise ValueError("out_of_hours: fallback_route needs `fallback_route: <route id>`")
        if self.fallback_route == self.id:
            raise ValueError("fallback_route cannot be the route itself")
        if self.on_join_timeout is JoinTimeout.ROUTE and not self.join_timeout_route:
            raise ValueError("on_join_timeout: route needs `join_timeout_route: <route id>`")
        if self.join_timeout_route == self.id:
            raise ValueError("join_timeout_route cannot be the route itself")
        if self.idle_close_minutes <= self.idle_reminder_minutes:
            raise ValueError("idle_close_minutes must be longer than idle_reminder_minutes")
        return self

    @property
    def title(self) -> str:
        """Display name, falling back to the id."""
        return self.name or self.id


class Answer(ConfigModel):
    """A canned answer the built-in bot gives when any of its keywords appears."""

    match: list[NonEmpty] = Field(min_length=1)
    answer: NonEmpty


DEFAULT_PHRASES = [
    "talk to a human",
    "talk to a person",
    "speak to a human",
    "speak to a person",
    "real person",
    "real human",
    "human please",
    "agent please",
    "talk to an agent",
    "speak to an agent",
    "live agent",
    "customer service",
    "representative",
    "talk to someone",
    "speak to someone",
    "mit einem menschen",
    "mitarbeiter sprechen",
    "parler à un humain",
    "parler à quelqu'un",
    "hablar con una persona",
    "hablar con un agente",
    "parlare con una persona",
    "falar com uma pessoa",
    "met een mens",
]


class BotSettings(ConfigModel):
    """The built-in first responder."""

    name: NonEmpty = "Ava"
    answers: list[Answer] = Field(
        default_factory=lambda: [
            Answer(
                match=["opening hours", "hours", "open"],
                answer="Our specialists are available Monday to Friday, 9:00 to 17:00.",
            ),
            Answer(
                match=["price", "pricing", "cost"],
                answer="Plans start at 29 EUR per seat and month; the pricing page has details.",
            ),
        ]
    )


class PhraseTrigger(ConfigModel):
    """Explicit requests for a person ("can I talk to a human")."""

    enabled: bool = True
    # Added to the built-in multilingual list.
    extra: list[NonEmpty] = Field(default_factory=list)


class FrustrationTrigger(ConfigModel):
    """Hand off when the visitor is getting nowhere with the bot."""

    enabled: bool = True
    # Visitor messages in a row with negative wording ("useless", "this is ridiculous").
    negative_in_row: int = Field(default=2, ge=1)
    # The same question asked this many times.
    repeated_question: int = Field(default=3, ge=2)
    # Bot answers in a row that could not help.
    fallbacks_in_row: int = Field(default=3, ge=1)
    extra_negative_words: list[NonEmpty] = Field(default_factory=list)


class ContextRule(ConfigModel):
    """A CEL rule checked on every visitor message; true starts a handoff."""

    name: NonEmpty
    when: Rule


class Escalation(ConfigModel):
    """When a handoff starts; every trigger can be switched off."""

    phrases: PhraseTrigger = Field(default_factory=PhraseTrigger)
    frustration: FrustrationTrigger = Field(default_factory=FrustrationTrigger)
    rules: list[ContextRule] = Field(default_factory=list)
    # The widget's "talk to a person" button (event handoff.request).
    widget_request: bool = True
    # Bot Framework handoff.initiate from an upstream agent.
    upstream_initiate: bool = True


class Limits(ConfigModel):
    """The domain's part of the ``limits`` section (the edges add theirs)."""

    # Handoffs one conversation may start in an hour: each opens a thread in a Teams channel,
    # and a visitor asking, cancelling and asking again would bury the channel.
    handoffs_per_conversation_per_hour: int = Field(default=6, ge=1, le=1000)


class Settings(ConfigModel):
    """What the domain reads from the file; the edges' sections (``teams``, ``storage``,
    ``widget``, ``server``, their ``limits``) are added in ``adapters``."""

    routes: list[Route] = Field(default_factory=lambda: [Route(**DEFAULT_ROUTE)], min_length=1)
    bot: BotSettings = Field(default_factory=BotSettings)
    escalation: Escalation = Field(default_factory=Escalation)
    limits: Limits = Field(default_factory=Limits)
    texts: Texts = Field(default_factory=Texts)

    @field_validator("routes")
    @classmethod
    def _routes_consistent(cls, routes: list[Route]) -> list[Route]:
        ids = [route.id for route in routes]
        for route_id in ids:
            if ids.count(route_id) > 1:
                raise ValueError(f"route id {route_id!r} is used twice")
        for route in routes:
            for key in ("fallback_route", "join_timeout_route"):
                target = getattr(route, key)
                if target and target not in ids:
                    raise ValueError(f"route {route.id!r}: {key} {target!r} is not a route id")
        by_id = {route.id: route for route in routes}
        for route in routes:
            seen, current = [route.id], route
            while (
                current.on_join_timeout is JoinTimeout.ROUTE and current.join_timeout_route in by_id
            ):
                current = by_id[current.join_timeout_route]
                if current.id in seen:
                    circle = " -> ".join([*seen, current.id])
                    raise ValueError(f"join_timeout_route goes round in a circle: {circle}")
                seen.append(current.id)
        if all(route.trigger is not None for route in routes):
            raise ValueError(
                "no default route: leave `trigger` off one route (usually the last) so it "
                "catches every handoff the others do not"
            )
        return routes

    def route(self, route_id: str) -> Route | None:
        """The route with this id, if any."""
        return next((r for r in self.routes if r.id == route_id), None)
