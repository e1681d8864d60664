"""The ops-owned configuration, as pydantic models; loading YAML lives in ``adapters``."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    StringConstraints,
    field_validator,
    model_validator,
)

from bot.cel import Rule
from bot.hours import Hours
from bot.links import parse_channel
from bot.texts import Texts

# The Playground's team channel, so the embedded defaults work with ``make run`` as shipped.
PLAYGROUND_CONNECTOR = "http://127.0.0.1:56150/_connector"
PLAYGROUND_CHANNEL = "19:handoff-support@thread.tacv2"
PLAYGROUND_TENANT = "00000000-0000-0000-0000-0000000000001"

WEEK_MINUTES = 7 * 24 * 60  # the longest wait a route may set (longer is a typo, or infinity)
_ROUTE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TeamsSettings(_Model):
    """Where the Bot Connector is and which tenant the bot serves."""

    # A thread reply starting with one of these is an internal note, never sent to the visitor.
    note_prefixes: list[NonEmpty] = Field(default_factory=lambda: ["//", "note:"])

    service_url: NonEmpty = PLAYGROUND_CONNECTOR
    tenant_id: str = PLAYGROUND_TENANT

    @field_validator("service_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(
                "must be an http(s) URL, for example https://smba.trafficmanager.net/teams/"
            )
        return value.rstrip("/")


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


class Route(_Model):
    """Where a handoff goes: a Teams channel, when it is staffed, and how it is shown."""

    id: NonEmpty
    name: str = ""
    description: str = ""
    # A channel id (19:...@thread.tacv2) or the link from "Copy link to channel".
    channel: NonEmpty
    # Filled from a channel link when it carries them.
    team_id: str = ""
    tenant_id: str = ""
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

    @model_validator(mode="before")
    @classmethod
    def _ids_from_link(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("channel"), str):
            try:
                ref = parse_channel(data["channel"])
            except ValueError:
                return data  # the channel field's own validator reports it
            data = {**data}
            data.setdefault("team_id", ref.team_group_id)
            data.setdefault("tenant_id", ref.tenant_id)
        return data

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ROUTE_ID.match(value):
            raise ValueError("use lowercase letters, digits, '-' and '_' (max 64)")
        return value

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        return parse_channel(value).channel_id

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


class Answer(_Model):
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


class BotSettings(_Model):
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


class PhraseTrigger(_Model):
    """Explicit requests for a person ("can I talk to a human")."""

    enabled: bool = True
    # Added to the built-in multilingual list.
    extra: list[NonEmpty] = Field(default_factory=list)


class FrustrationTrigger(_Model):
    """Hand off when the visitor is getting nowhere with the bot."""

    enabled: bool = True
    # Visitor messages in a row with negative wording ("useless", "this is ridiculous").
    negative_in_row: int = Field(default=2, ge=1)
    # The same question asked this many times.
    repeated_question: int = Field(default=3, ge=2)
    # Bot answers in a row that could not help.
    fallbacks_in_row: int = Field(default=3, ge=1)
    extra_negative_words: list[NonEmpty] = Field(default_factory=list)


class ContextRule(_Model):
    """A CEL rule checked on every visitor message; true starts a handoff."""

    name: NonEmpty
    when: Rule


class Escalation(_Model):
    """When a handoff starts; every trigger can be switched off."""

    phrases: PhraseTrigger = Field(default_factory=PhraseTrigger)
    frustration: FrustrationTrigger = Field(default_factory=FrustrationTrigger)
    rules: list[ContextRule] = Field(default_factory=list)
    # The widget's "talk to a person" button (event handoff.request).
    widget_request: bool = True
    # Bot Framework handoff.initiate from an upstream agent.
    upstream_initiate: bool = True


class StorageSettings(_Model):
    """Where handoffs and transcripts are kept; a relative path is from the working directory."""

    sqlite_path: NonEmpty = "data/handoff.db"
    # A conversation idle this long (no open handoff, no widget connected) is deleted with its
    # transcript; the Teams thread keeps its own copy. None keeps everything.
    retention_days: int | None = Field(default=90, ge=1, le=3650)


class WidgetSettings(_Model):
    """The Direct Line widget channel."""

    allowed_origins: list[str] = Field(default_factory=list)
    # At least 30 min, as Direct Line's: botframework-directlinejs (Web Chat) refreshes every
    # 15 min whatever expires_in says, so a shorter token would lapse before its refresh.
    token_ttl_seconds: int = Field(default=3600, ge=1800, le=86400)
    max_message_chars: int = Field(default=4000, ge=1, le=28000)


class Rate(_Model):
    """A token bucket: at most ``burst`` at once, refilled at ``per_minute``."""

    # At least one every 100 minutes (a smaller rate is a typo, and its waits overflow).
    per_minute: float = Field(ge=0.01, le=1_000_000)
    burst: int = Field(ge=1, le=1_000_000)


class LimitsSettings(_Model):
    """Abuse limits. Past a rate the answer is 429 with Retry-After; ``null`` turns a rate off."""

    # New conversations (tokens) from one client address, and for one website (Origin).
    # Requests with the widget secret (a website's own server) are not counted.
    conversations_per_ip: Rate | None = Field(default_factory=lambda: Rate(per_minute=30, burst=30))
    conversations_per_origin: Rate | None = Field(
        default_factory=lambda: Rate(per_minute=600, burst=300)
    )
    # Activities one conversation may post (messages, events; typing has its own small rate).
    messages_per_conversation: Rate | None = Field(
        default_factory=lambda: Rate(per_minute=60, burst=30)
    )
    # Handoffs one conversation may start in an hour: each opens a thread in a Teams channel,
    # and a visitor asking, cancelling and asking again would bury the channel.
    handoffs_per_conversation_per_hour: int = Field(default=6, ge=1, le=1000)
    # Messages waiting for one Teams thread (Teams takes about 2 a second): past this, the
    # visitor is asked to slow down and their messages are refused until it drains.
    teams_backlog: int = Field(default=30, ge=1, le=10_000)
    # Open connections (HTTP and WebSocket), in all and from one client address.
    connections: int = Field(default=10_000, ge=1, le=1_000_000)
    connections_per_ip: int = Field(default=256, ge=1, le=1_000_000)
    # A widget socket with nothing sent either way (keep-alives aside) this long is closed.
    websocket_idle_minutes: float = Field(default=60, gt=0, le=24 * 60)
    # A request's headers must arrive within this many seconds of the connection (or of the
    # previous answer on it), its body within ``body_timeout_seconds``.
    header_timeout_seconds: float = Field(default=15, gt=0, le=600)
    body_timeout_seconds: float = Field(default=30, gt=0, le=600)


class ServerSettings(_Model):
    """The HTTP server."""

    # Reverse proxies (addresses or networks) whose X-Forwarded-For, -Proto and -Host are
    # believed; from anyone else those headers are ignored.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)


class Settings(_Model):
    """The whole file; every section has defaults, so an empty file is a working local setup."""

    teams: TeamsSettings = Field(default_factory=TeamsSettings)
    routes: list[Route] = Field(
        default_factory=lambda: [
            Route(
                id="support",
                name="Customer support",
                description="Questions about orders, billing and your account",
                channel=PLAYGROUND_CHANNEL,
            )
        ],
        min_length=1,
    )
    bot: BotSettings = Field(default_factory=BotSettings)
    escalation: Escalation = Field(default_factory=Escalation)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    widget: WidgetSettings = Field(default_factory=WidgetSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
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
