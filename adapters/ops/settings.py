"""The model of the whole config file: the domain's ``Settings`` and every edge's sections.

Each edge keeps the model of its own section beside its code; this is the one place that puts
them together, so ``check``, ``schema``, reloads and the service all read the same file.
"""

from __future__ import annotations

from pydantic import Field

from adapters.directline.settings import WidgetLimits, WidgetSettings
from adapters.ops.weekly import ReportSettings
from adapters.storage.settings import StorageSettings
from adapters.teams.settings import Route, TeamsSettings
from adapters.web.settings import ServerLimits, ServerSettings
from bot.config import DEFAULT_ROUTE, Limits, Settings


class LimitsSettings(WidgetLimits, ServerLimits, Limits):
    """Abuse limits. Past a rate the answer is 429 with Retry-After; ``null`` turns a rate off."""


class ServiceSettings(Settings):
    """The whole file; every section has defaults, so an empty file is a working local setup."""

    routes: list[Route] = Field(  # type: ignore[assignment]
        default_factory=lambda: [Route(**DEFAULT_ROUTE)], min_length=1
    )
    teams: TeamsSettings = Field(default_factory=TeamsSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    widget: WidgetSettings = Field(default_factory=WidgetSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
