"""Load ``handoff.yaml`` (``ServiceSettings``); problems read ``file:line: key.path: message``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from adapters.ops.settings import ServiceSettings
from bot.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
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


# What a config file may be, so that reading one is quick and bounded whatever it holds. The
# shipped file is 3 KiB and ~150 values; a large one (a hundred routes) a few thousand values.
MAX_FILE_BYTES = 1024 * 1024
# Values after YAML aliases are expanded: "billion laughs" (a few lines of aliases, each used
# ten times by the next) expands to billions, and it is refused as soon as it passes this.
MAX_VALUES = 100_000
# Collections inside collections: real files nest 8 deep; PyYAML recurses per level.
MAX_DEPTH = 32


class _LimitError(Exception):
    """A limit the YAML passes: where, and what."""

    def __init__(self, line: int, loc: tuple[int | str, ...], message: str) -> None:
        super().__init__(message)
        self.line, self.loc, self.message = line, loc, message


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader``, refusing self-referencing aliases, deep nesting and large expansions.

    It counts while composing, before any Python object is built: the expanded size of a
    node is computed once (an alias reuses its anchor's count), so the count costs the same
    as reading the text.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._loc: list[int | str] = []  # the key path of the node being composed
        self._open: list[str] = []  # anchors of the collections being composed
        self._values: dict[int, int] = {}  # expanded values, by node id

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]  # stubs: untyped
        step = index.value if isinstance(index, yaml.ScalarNode) else index
        if step is not None:
            self._loc.append(step if isinstance(step, int) else str(step))
        try:
            line = event.start_mark.line + 1
            if isinstance(event, yaml.AliasEvent) and event.anchor in self._open:
                raise _LimitError(
                    line, tuple(self._loc), f"an alias refers to itself (*{event.anchor})"
                )
            opens = isinstance(event, yaml.CollectionStartEvent)
            if opens and len(self._open) >= MAX_DEPTH:
                raise _LimitError(
                    line, tuple(self._loc), f"nested more than {MAX_DEPTH} levels deep"
                )
            if opens:
                self._open.append(event.anchor or "")
            try:
                node = super().compose_node(parent, index)
            finally:
                if opens:
                    self._open.pop()
            if node is not None:
                self._count(node, tuple(self._loc))
            return node
        finally:
            if step is not None:
                self._loc.pop()

    def _count(self, node: yaml.Node, loc: tuple[int | str, ...]) -> None:
        if id(node) in self._values:  # an alias: counted when its anchor was
            return
        if isinstance(node, yaml.SequenceNode):
            values = 1 + sum(self._values[id(item)] for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            values = 1 + sum(self._values[id(k)] + self._values[id(v)] for k, v in node.value)
        else:
            values = 1
        if values > MAX_VALUES:
            raise _LimitError(
                node.start_mark.line + 1,
                loc,
                f"expands to more than {MAX_VALUES:,} values (each use of an alias counts "
                "what it refers to)",
            )
        self._values[id(node)] = values

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # a date out of range, a huge integer...
            raise yaml.constructor.ConstructorError(
                None, None, " ".join(str(exc).split()), node.start_mark
            ) from exc


def parse_settings(text: str, source: str) -> ServiceSettings:
    """Validate YAML text; raise ``ConfigError`` listing every problem with its line."""
    return parse_model(text, source, ServiceSettings)[0]


def parse_model(text: str, source: str, model: type[M]) -> tuple[M, yaml.Node | None]:
    """Validate YAML text as ``model``, the same way (and its root node, for ``line_of``)."""
    size = len(text) if len(text) * 4 <= MAX_FILE_BYTES else len(text.encode(errors="replace"))
    if size > MAX_FILE_BYTES:
        raise ConfigError([_too_large(source, size)])
    try:
        return _parse(text, source, model)
    except _LimitError as exc:
        where = _key_path(exc.loc) if exc.loc else "(yaml)"
        raise ConfigError([f"{source}:{exc.line}: {where}: {exc.message}"]) from exc
    except RecursionError as exc:  # the limits above keep far from it; never a traceback
        raise ConfigError([f"{source}:1: (file): too deeply nested to read"]) from exc


def _too_large(source: str, size: int) -> str:
    return (
        f"{source}:1: (file): {size / 1024:,.0f} KiB, more than the "
        f"{MAX_FILE_BYTES // 1024:,} KiB a config file may be"
    )


def _parse(text: str, source: str, model: type[M]) -> tuple[M, yaml.Node | None]:
    loader = None
    try:
        loader = _BoundedLoader(text)
        root = loader.get_single_node()
        # Before constructing: that splices merged keys (``<<: *anchor``) into the nodes,
        # where an override would look like a key given twice.
        duplicates = _duplicate_keys(root)
        data = loader.construct_document(root) if root is not None and not duplicates else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        message = exc.problem or str(exc)
        if exc.context and exc.context.startswith("found duplicate anchor") and exc.context_mark:
            # PyYAML's problem reads "second occurrence"; the cause is in its context.
            first = exc.context.removesuffix("; first occurrence")
            message = f"{first} (first at line {exc.context_mark.line + 1})"
        raise ConfigError([f"{source}:{line}: (yaml): {message}"]) from exc
    except yaml.YAMLError as exc:  # e.g. a control character the reader refuses
        where = getattr(exc, "position", None)
        line = text.count("\n", 0, where) + 1 if isinstance(where, int) else 1
        message = " ".join(str(exc).split())
        raise ConfigError([f"{source}:{line}: (yaml): {message}"]) from exc
    finally:
        if loader is not None:
            loader.dispose()

    if duplicates:
        raise ConfigError([f"{source}:{line}: {what}" for line, what in duplicates])
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}:1: (top level): must be a mapping of sections"])
    try:
        return model.model_validate(data), root
    except ValidationError as exc:
        found = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            found.append((line_of(root, loc), f"{_key_path(loc)}: {_message(error)}"))
        raise ConfigError([f"{source}:{line}: {what}" for line, what in sorted(found)]) from exc


def load_settings(path: str | Path) -> ServiceSettings:
    """Read and validate a config file."""
    return load_model(path, ServiceSettings)[0]


def load_model(path: str | Path, model: type[M]) -> tuple[M, yaml.Node | None]:
    """Read and validate a YAML file as ``model`` (and its root node, for ``line_of``)."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)  # a larger file is never read whole
            size = len(raw) if len(raw) <= MAX_FILE_BYTES else os.fstat(file.fileno()).st_size
    except OSError as exc:
        raise ConfigError([f"{path}:0: (file): cannot read: {exc.strerror or exc}"]) from exc
    if size > MAX_FILE_BYTES:
        raise ConfigError([_too_large(str(path), size)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}:{line}: (file): not UTF-8 ({exc.reason})"]) from exc
    return parse_model(text, str(path), model)
