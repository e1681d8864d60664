"""The ``teams`` section: where the Bot Connector is, which tenant the bot serves, and what in
a thread is an internal note."""

from __future__ import annotations

from pydantic import Field, field_validator

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
