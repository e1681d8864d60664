"""The ``teams`` section: where the Bot Connector is, which tenant the bot serves, and what in
a thread is an internal note; and what a route's channel is in Teams."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from adapters.teams.links import parse_channel
from bot import config
from bot.config import ConfigModel, NonEmpty

# The Playground's connector and tenant, so the embedded defaults work with ``make run``.
PLAYGROUND_CONNECTOR = "http://127.0.0.1:56150/_connector"
PLAYGROUND_TENANT = "00000000-0000-0000-0000-0000000000001"


class TeamsSettings(ConfigModel):
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

    def is_note(self, text: str) -> bool:
        """Whether a thread reply is an internal note (it starts with a note prefix)."""
        lowered = text.lstrip().casefold()
        return any(lowered.startswith(p.casefold()) for p in self.note_prefixes)


# A route as Teams reads it: its channel is a Teams channel id (19:...@thread.tacv2) or the link
# from "Copy link to channel", which also tells the team and the tenant. Named as the domain's
# ``Route``, whose place it takes in the file's model, so that ``check`` and the schema say "Route".
class Route(config.Route):
    """Where a handoff goes: a Teams channel, when it is staffed, and how it is shown."""

    # Filled from a channel link when it carries them.
    team_id: str = ""
    tenant_id: str = ""

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

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        return parse_channel(value).channel_id
