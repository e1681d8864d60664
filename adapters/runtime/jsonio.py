"""JSON on the hot paths (activities in and out, stored bodies, socket frames): orjson.

Every relayed message is parsed and serialized several times; orjson does it in C several
times faster than the standard library. Where orjson is stricter than the standard library
(NaN, lone UTF-16 surrogates such as half an emoji from a truncating client, both of which
earlier versions accepted and stored), the standard library takes over, so nothing that was
accepted before is refused now and every stored row stays readable. Nesting is bounded (a
ValueError, never a RecursionError): cheaply, since orjson bounds it itself and a body with
few brackets cannot nest deeply.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web

# What clients may send (``loads_text``): nesting deeper than this is refused. Real activities
# nest about 10 levels (an Adaptive Card in a transcript about 30); orjson serializes at most
# 254, and what a client sends is stored and sent on wrapped in a few more levels.
MAX_DEPTH = 128
# What ``loads`` reads (stored rows, connector answers): orjson's own bound, which costs
# nothing; deeper than that the standard library would raise RecursionError.
STORED_DEPTH = 1024


class NestingError(ValueError):
    """The JSON nests deeper than the bound (a ValueError, like any other invalid JSON)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels")


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _stdlib_loads(data, exc, STORED_DEPTH)


def loads_text(data: bytes | str) -> Any:
    """``loads`` for what clients send: nested at most ``MAX_DEPTH`` levels, and lone
    surrogates (JSON can spell them, UTF-8 cannot hold them, so SQLite and Teams would refuse
    them later) become U+FFFD."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _valid_text(_stdlib_loads(data, exc, MAX_DEPTH))
    # Counting brackets (in C) bounds the depth, so only a body with many of them is walked.
    if _brackets_exceed(data, MAX_DEPTH) and _nests_deeper(value, MAX_DEPTH):
        raise NestingError(MAX_DEPTH)
    return value


def _stdlib_loads(data: bytes | str, error: orjson.JSONDecodeError, limit: int) -> Any:
    """What orjson refused, read by the standard library (NaN, lone surrogates), never deeper
    than ``limit``: raises ValueError (or UnicodeDecodeError) if really invalid."""
    if "depth" in str(error):  # orjson's own bound (1024): too deep for the stdlib's stack too
        raise NestingError(min(limit, STORED_DEPTH)) from None
    try:
        value = json.loads(data)
    except RecursionError:
        raise NestingError(limit) from None
    if _brackets_exceed(data, limit) and _nests_deeper(value, limit):
        raise NestingError(limit)
    return value


def _brackets_exceed(data: bytes | str, limit: int) -> bool:
    """Whether the text opens more than ``limit`` arrays and objects (a bound on its depth)."""
    if len(data) <= 2 * limit:  # every level takes two characters
        return False
    if isinstance(data, str):
        return data.count("[") + data.count("{") > limit
    return data.count(b"[") + data.count(b"{") > limit


def _nests_deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` levels (level by level, no recursion)."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
    return False


def _valid_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
        return value
    if isinstance(value, list):
        return [_valid_text(v) for v in value]
    if isinstance(value, dict):
        return {_valid_text(k): _valid_text(v) for k, v in value.items()}
    return value


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def dumpb(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()


def response(
    value: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """``web.json_response``, serialized by orjson."""
    return web.Response(
        body=dumpb(value), status=status, headers=headers, content_type="application/json"
    )
