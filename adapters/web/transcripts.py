"""``GET /api/transcripts/{id}?format=html|text|json``: a conversation's transcript for the team
(``adapters.ops.transcript``), by conversation or handoff id, behind ``OPS_TOKEN`` (a bearer
token; without one, only in local mode). Never cached; the HTML page runs no script and loads
nothing from elsewhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from adapters.ops.transcript import CONTENT_TYPES, FORMATS, find, render
from adapters.web.middleware import bearer_only, service_error
from bot.ports import HandoffStore

HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Referrer-Policy": "no-referrer",
}


def handler(
    store: HandoffStore, env: Mapping[str, str], local_mode: bool
) -> Callable[[web.Request], Awaitable[web.Response]]:
    refused = bearer_only(env.get("OPS_TOKEN", ""), local_mode, "transcripts", "OPS_TOKEN")

    async def serve(request: web.Request) -> web.Response:
        denied = refused(request)
        if denied is not None:
            return denied
        form = request.query.get("format", "html")
        if form not in FORMATS:
            return service_error(400, "BadArgument", f"format must be one of {', '.join(FORMATS)}")
        some_id = request.match_info["id"]
        if len(some_id) > 200:
            return service_error(400, "BadArgument", "no such id is that long")
        found = await find(store, some_id)
        if found is None:
            return service_error(404, "NotFound", "no conversation or handoff with that id")
        return web.Response(
            body=render(found, form).encode(),
            headers={**HEADERS, "Content-Type": CONTENT_TYPES[form]},
        )

    return serve
