"""Load ``handoff.yaml`` into ``Settings``; problems read ``file:line: key.path: message``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.config import Settings
from bot.errors import ConfigError


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The line of the deepest YAML node the path reaches (1-based)."""
    node, line = root, (root.start_mark.line + 1 if root is not None else 1)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _duplicate_keys(
    node: yaml.Node | None, path: tuple[int | str, ...] = ()
) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                found.append(
                    (key.start_mark.line + 1, f"{_key_path((*path, key.value))}: key given twice")
                )
            seen.add(key.value)
            found += _duplicate_keys(value, (*path, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found += _duplicate_keys(item, (*path, index))
    return found


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def parse_settings(text: str, source: str) -> Settings:
    """Validate YAML text; raise ``ConfigError`` listing every problem with its line."""
    try:
        return _parse(text, source)
    except RecursionError as exc:
        raise ConfigError([f"{source}:1: (yaml): an alias refers to itself"]) from exc


def _parse(text: str, source: str) -> Settings:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError([f"{source}:{line}: (yaml): {exc.problem or exc}"]) from exc
    except yaml.YAMLError as exc:  # e.g. a control character the reader refuses
        where = getattr(exc, "position", None)
        line = text.count("\n", 0, where) + 1 if isinstance(where, int) else 1
        message = " ".join(str(exc).split())
        raise ConfigError([f"{source}:{line}: (yaml): {message}"]) from exc

    duplicates = _duplicate_keys(root)
    if duplicates:
        raise ConfigError([f"{source}:{line}: {what}" for line, what in duplicates])
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}:1: (top level): must be a mapping of sections"])
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        found = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            found.append((_line_of(root, loc), f"{_key_path(loc)}: {_message(error)}"))
        raise ConfigError([f"{source}:{line}: {what}" for line, what in sorted(found)]) from exc


def load_settings(path: str | Path) -> Settings:
    """Read and validate a config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}:0: (file): cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}:{line}: (file): not UTF-8 ({exc.reason})"]) from exc
    return parse_settings(text, str(path))
