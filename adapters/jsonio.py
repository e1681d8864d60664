"""JSON on the hot paths (activities in and out, stored bodies, socket frames): orjson.

Every relayed message is parsed and serialized several times; orjson does it in C several
times faster than the standard library. It is also stricter: NaN and Infinity are refused as
invalid JSON, which the endpoints answer with a 400. (Integers beyond 64 bits are read as
floats, as JavaScript clients read them anyway.)
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

JSONDecodeError = orjson.JSONDecodeError  # a ValueError


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def dumpb(value: Any) -> bytes:
    return orjson.dumps(value)


def response(
    value: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """``web.json_response``, serialized by orjson."""
    return web.Response(
        body=orjson.dumps(value), status=status, headers=headers, content_type="application/json"
    )
