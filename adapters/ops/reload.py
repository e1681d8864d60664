"""Reload the ops YAML when it changes (and on SIGHUP); a bad edit never replaces a good config.

Reading a config takes up to seconds (a large file, a rule-heavy one): it runs in a worker
thread, so the event loop keeps serving; only applying the new settings runs on the loop. One
reload runs at a time; asks that arrive meanwhile are served together by one more reload, of
the file as it is then. So reloads apply in the order they read the file: an older reading
never replaces a newer one.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from adapters.ops.config_file import load_settings
from adapters.ops.settings import ServiceSettings
from bot.errors import ConfigError
from bot.rules.routing import prepare

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_A = TypeVar("_A")


def _without_collector(work: Callable[[_A], _T], argument: _A) -> _T:
    """Run ``work`` with the cyclic garbage collector paused.

    Reading a large file allocates a few hundred thousand objects; each few hundred thousand
    make the collector scan the whole heap, holding the GIL: the event loop stopped for 70 ms
    to 400 ms at a time (more in a larger process). What the parse drops is freed by reference
    counting anyway; the collector resumes afterwards. Reloads run one at a time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return work(argument)
    finally:
        if enabled:
            gc.enable()


def load_prepared(path: Path) -> ServiceSettings:
    """Read the file and build what its rules need (both off the event loop)."""
    settings = load_settings(path)
    prepare(settings)
    return settings


class ConfigReloader:
    """Watches one file by modification time and size (no extra dependency, works on any FS)."""

    def __init__(
        self,
        path: Path,
        apply: Callable[[ServiceSettings], None],
        interval: float = 2.0,
        *,
        load: Callable[[Path], ServiceSettings] = load_prepared,
    ) -> None:
        self.path = path
        self._apply = apply
        self._interval = interval
        self._load = load  # runs in a worker thread
        self._seen = self._stamp()
        self._asked: list[tuple[str, asyncio.Future[bool]]] = []
        self._runner: asyncio.Task[None] | None = None
        # Told of each reload's outcome (True: applied), for the metrics.
        self.on_outcome: Callable[[bool], None] = lambda _applied: None

    def _stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime, stat.st_size

    def reload(self, cause: str = "on request") -> asyncio.Future[bool]:
        """Reload the file soon (a signal handler may call this); await it for the outcome.

        The result is True when the file was applied, False when it was rejected (the config
        in force stays, and the log says why).
        """
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[bool] = loop.create_future()
        self._asked.append((cause, outcome))
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._serve(), name="config-reload")
        return outcome

    async def _serve(self) -> None:
        while self._asked:
            asked, self._asked = self._asked, []
            try:
                applied = await self._reload_once(asked[-1][0])
                self.on_outcome(applied)
            except BaseException:
                for _, outcome in asked:
                    outcome.cancel()
                raise
            for _, outcome in asked:
                if not outcome.done():
                    outcome.set_result(applied)

    async def _reload_once(self, cause: str) -> bool:
        self._seen = self._stamp()
        try:
            settings = await asyncio.to_thread(_without_collector, self._load, self.path)
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
                await self.reload("(file changed)")
