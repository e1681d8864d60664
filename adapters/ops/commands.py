"""The commands ops run besides the service: ``check`` (validate config files), ``schema`` (the
JSON Schema generated from the models), ``explain`` (what the rules would do) and ``report``
(how the team did, from the store), ``diff`` (what a config change changes, for whom) and
``transcript`` (a conversation's transcript, notes marked).

    python app.py check [FILE ...]
    python app.py schema [--write]
    python app.py explain VISITOR.json [--config FILE] [--at TIME] [--category C]
    python app.py report [--since 7d] [--route R] [--format md|csv|json] [--config FILE]
    python app.py diff OLD.yaml NEW.yaml [--visitors SAMPLES.jsonl] [--at TIME] [--days 7]
    python app.py transcript ID [--format json|text|html] [--config FILE]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from adapters.ops.config_file import load_settings
from adapters.ops.settings import ServiceSettings
from bot.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from adapters.storage.contract import Store

_T = TypeVar("_T")

DEFAULT_CONFIG = Path("config/handoff.yaml")
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "handoff.schema.json"


def config_schema() -> str:
    """The config's JSON Schema, generated from the models (never written by hand)."""
    schema = ServiceSettings.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Teams handoff bot configuration (config/handoff.yaml)"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def load_for_command(path: str | None) -> ServiceSettings:
    """The config a command reads: ``path``, else the default file if there is one, else the
    embedded defaults (as the service itself starts)."""
    if path is not None:
        return load_settings(path)
    if DEFAULT_CONFIG.exists():
        return load_settings(DEFAULT_CONFIG)
    return ServiceSettings()


def from_store(command: str, config: str | None, read: Callable[[Store], Awaitable[_T]]) -> _T:
    """``read`` on the store the config names (opened, then closed). A bad config or a store
    that cannot be read is said on stderr and exits 2."""

    async def reading(settings: ServiceSettings) -> _T:
        from adapters.storage.backend import choose, open_store  # drivers load when asked for

        store = await open_store(choose(settings.storage, os.environ))
        try:
            return await read(store)
        finally:
            await store.close()

    try:
        return asyncio.run(reading(load_for_command(config)))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
    except StoreError as exc:
        print(f"{command}: storage: {exc}", file=sys.stderr)
    raise SystemExit(2)


def check(paths: list[str]) -> int:
    """Print ``file:line: key.path: message`` for every problem, and run each config's tests
    (``FILE.tests.yaml`` beside it, see ``adapters.ops.config_tests``); non-zero exit if any."""
    failed = False
    for path in paths or [str(DEFAULT_CONFIG)]:
        try:
            settings = load_settings(path)
        except ConfigError as exc:
            failed = True
            for problem in exc.problems:
                print(problem)
        else:
            print(f"{path}: ok ({len(settings.routes)} route(s))")
            failed = not _config_tests(settings, Path(path)) or failed
    return 1 if failed else 0


def _config_tests(settings: ServiceSettings, config: Path) -> bool:
    """Run the config's tests, if it has a tests file; False if any fails."""
    from adapters.ops.config_tests import run, tests_file

    path = tests_file(config)
    if not path.exists():
        return True
    ran, problems = run(settings, path)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{path}: {ran} test(s) passed")
    return not problems


def schema(argv: list[str]) -> int:
    text = config_schema()
    if "--write" in argv:
        SCHEMA_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {SCHEMA_PATH}")
    else:
        print(text, end="")
    return 0


def explain(argv: list[str]) -> int:
    from adapters.ops.explain import main  # its rule engine loads only when asked for

    return main(argv)


def report(argv: list[str]) -> int:
    from adapters.ops.report import main  # the store's drivers load only when asked for

    return main(argv)


def diff(argv: list[str]) -> int:
    from adapters.ops.diff import main

    return main(argv)


def transcript(argv: list[str]) -> int:
    from adapters.ops.transcript import main

    return main(argv)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "check": check,
    "schema": schema,
    "explain": explain,
    "report": report,
    "diff": diff,
    "transcript": transcript,
}
