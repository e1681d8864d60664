"""The ops-owned configuration, as pydantic models; loading YAML lives in ``adapters``."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from bot.hours import Hours
from bot.texts import Texts

# The Playground's team channel, so the embedded defaults work with ``make run`` as shipped.
PLAYGROUND_CONNECTOR = "http://127.0.0.1:56150/_connector"
PLAYGROUND_CHANNEL = "19:handoff-support@thread.tacv2"
PLAYGROUND_TENANT = "00000000-0000-0000-0000-0000000000001"

_ROUTE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TeamsSettings(_Model):
    """Where the Bot Connector is and which tenant the bot serves."""

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


class Route(_Model):
    """Where a handoff goes: a Teams channel, when it is staffed, and how it is shown."""

    id: NonEmpty
    name: str = ""
    description: str = ""
    channel: NonEmpty
    hours: Hours | None = None
    # Widget ``handoff.request`` categories that pick this route.
    categories: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ROUTE_ID.match(value):
            raise ValueError("use lowercase letters, digits, '-' and '_' (max 64)")
        return value

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        if not value.startswith("19:"):
            raise ValueError(
                "a Teams channel id starts with '19:' (for example 19:abc@thread.tacv2)"
            )
        return value

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
    handoff_phrases: list[NonEmpty] = Field(default_factory=lambda: list(DEFAULT_PHRASES))


class StorageSettings(_Model):
    """Where handoffs and transcripts are kept; a relative path is from the working directory."""

    sqlite_path: NonEmpty = "data/handoff.db"


class WidgetSettings(_Model):
    """The Direct Line widget channel."""

    allowed_origins: list[str] = Field(default_factory=list)
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    max_message_chars: int = Field(default=4000, ge=1, le=28000)


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
    storage: StorageSettings = Field(default_factory=StorageSettings)
    widget: WidgetSettings = Field(default_factory=WidgetSettings)
    texts: Texts = Field(default_factory=Texts)

    @field_validator("routes")
    @classmethod
    def _unique_ids(cls, routes: list[Route]) -> list[Route]:
        seen: set[str] = set()
        for route in routes:
            if route.id in seen:
                raise ValueError(f"route id {route.id!r} is used twice")
            seen.add(route.id)
        return routes

    def route(self, route_id: str) -> Route | None:
        """The route with this id, if any."""
        return next((r for r in self.routes if r.id == route_id), None)
