"""Reload the ops YAML when it changes (and on SIGHUP); a bad edit never replaces a good config."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from adapters.config_file import load_settings
from bot.config import Settings
from bot.errors import ConfigError

log = logging.getLogger(__name__)


class ConfigReloader:
    """Watches one file by modification time and size (no extra dependency, works on any FS)."""

    def __init__(
        self, path: Path, apply: Callable[[Settings], None], interval: float = 2.0
    ) -> None:
        self.path = path
        self._apply = apply
        self._interval = interval
        self._seen = self._stamp()

    def _stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime, stat.st_size

    def reload(self, cause: str = "on request") -> bool:
        """Load and apply the file now; on any problem keep the config in force and say why."""
        self._seen = self._stamp()
        try:
            settings = load_settings(self.path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("%s", problem)
            log.error("config %s rejected; the last good config stays in force", self.path)
            return False
        except Exception:  # whatever a half-written file does, the watcher must go on
            log.exception("config %s could not be read; the last good config stays", self.path)
            return False
        self._apply(settings)
        log.info("config %s reloaded %s (%d route(s))", self.path, cause, len(settings.routes))
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            stamp = self._stamp()
            if stamp is not None and stamp != self._seen:
                self.reload("(file changed)")
