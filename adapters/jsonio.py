"""JSON on the hot paths (activities in and out, stored bodies, socket frames): orjson.

Every relayed message is parsed and serialized several times; orjson does it in C several
times faster than the standard library. Where orjson is stricter than the standard library
(NaN, lone UTF-16 surrogates such as half an emoji from a truncating client, both of which
earlier versions accepted and stored), the standard library takes over, so nothing that was
accepted before is refused now and every stored row stays readable.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # raises ValueError (or UnicodeDecodeError) if really invalid


def loads_text(data: bytes | str) -> Any:
    """``loads`` for what clients send: lone surrogates (JSON can spell them, UTF-8 cannot hold
    them, so SQLite and Teams would refuse them later) become U+FFFD."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _valid_text(json.loads(data))


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
