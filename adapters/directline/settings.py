"""The widget channel's settings: the ``widget`` section and its part of ``limits``."""

from __future__ import annotations

from pydantic import Field

from adapters.web.settings import Rate
from bot.config import ConfigModel


class WidgetSettings(ConfigModel):
    """The Direct Line widget channel."""

    allowed_origins: list[str] = Field(default_factory=list)
    # At least 30 min, as Direct Line's: botframework-directlinejs (Web Chat) refreshes every
    # 15 min whatever expires_in says, so a shorter token would lapse before its refresh.
    token_ttl_seconds: int = Field(default=3600, ge=1800, le=86400)
    max_message_chars: int = Field(default=4000, ge=1, le=28000)


class WidgetLimits(ConfigModel):
    """The channel's part of the ``limits`` section: rates, the Teams backlog, idle sockets."""

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
    # Messages waiting for one Teams thread (Teams takes about 2 a second): past this, the
    # visitor is asked to slow down and their messages are refused until it drains.
    teams_backlog: int = Field(default=30, ge=1, le=10_000)
    # A widget socket with nothing sent either way (keep-alives aside) this long is closed.
    websocket_idle_minutes: float = Field(default=60, gt=0, le=24 * 60)
