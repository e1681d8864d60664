"""The ``storage`` section: where handoffs and transcripts are kept, and for how long."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.config import ConfigModel, NonEmpty


class StorageSettings(ConfigModel):
    """Where handoffs and transcripts are kept; a relative path is from the working directory."""

    # sqlite: one file, one process (the default). postgres: several instances share one
    # database, whose URL comes from DATABASE_URL in the environment (a secret: never here);
    # DATABASE_URL alone chooses postgres too.
    backend: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: NonEmpty = "data/handoff.db"
    # A conversation idle this long (no open handoff, no widget connected) is deleted with its
    # transcript; the Teams thread keeps its own copy. None keeps everything.
    retention_days: int | None = Field(default=90, ge=1, le=3650)
