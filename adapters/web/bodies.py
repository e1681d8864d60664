"""Request bodies, read within bounds: a size (refused by Content-Length before anything is
read, and as soon as a chunked body passes it) and a deadline (a body that trickles in does not
hold a connection and a handler open)."""

from __future__ import annotations

import asyncio

from aiohttp import web, web_protocol


class BodyTooLargeError(Exception):
    """The body is over the limit (the rest of it is not read)."""


class BodyTooSlowError(Exception):
    """The body did not arrive within the deadline."""


class BodyBrokenError(Exception):
    """The body could not be read (a broken chunked encoding, the client went away)."""


async def read_body(request: web.Request, limit: int, deadline: float) -> bytes:
    """The whole body, at most ``limit`` bytes, within ``deadline`` seconds."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLargeError
    content = request.content
    if content.is_eof():  # all of it came with the headers (the usual case): nothing to wait for
        try:
            data = await content.read()
        except web_protocol.RequestPayloadError as exc:
            raise BodyBrokenError from exc
        if len(data) > limit:  # chunked, so no Content-Length said so
            raise BodyTooLargeError
        return data
    body = bytearray()
    try:
        async with asyncio.timeout(deadline):
            async for chunk in request.content.iter_any():
                body += chunk
                if len(body) > limit:
                    raise BodyTooLargeError
    except TimeoutError as exc:
        raise BodyTooSlowError from exc
    except (web_protocol.RequestPayloadError, ConnectionError) as exc:
        raise BodyBrokenError from exc
    return bytes(body)
