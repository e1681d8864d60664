"""How the service logs: ``LOG_LEVEL`` (default INFO) and ``LOG_FORMAT``: ``text`` (default,
for a terminal) or ``json`` (one JSON object a line, for a log pipeline such as Azure Monitor,
Loki or Elasticsearch), each line with the conversation, handoff and thread it is about
(``bot.logcontext``). What visitors and specialists write is never logged at INFO or above in
either format; secrets never."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from adapters.runtime import jsonio
from bot import logcontext

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class JsonLines(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the ids the
    work is about, and the traceback of an exception as ``error``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **logcontext.current(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["error"] = record.exc_text
        return jsonio.dumps(entry)


class TextWithIds(logging.Formatter):
    """The text format, with the ids the work is about after the message."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = logcontext.current()
        if not ids:
            return line
        head, _, rest = line.partition("\n")  # a traceback stays below
        tail = " ".join(f"{kind}={value}" for kind, value in ids.items())
        return f"{head} [{tail}]" + (f"\n{rest}" if rest else "")


def configure(env: Mapping[str, str]) -> None:
    """Set up the root logger from ``LOG_LEVEL`` and ``LOG_FORMAT`` (ValueError: unknown)."""
    level = env.get("LOG_LEVEL", "INFO").upper()
    kind = env.get("LOG_FORMAT", "text").lower()
    if level not in LEVELS:
        raise ValueError(f"LOG_LEVEL={level!r} is not one of {', '.join(LEVELS)}")
    if kind not in FORMATS:
        raise ValueError(f"LOG_FORMAT={kind!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if kind == "json" else TextWithIds(TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
