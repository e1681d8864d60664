"""A fast Bot Connector stand-in for the benchmarks (a superset of shared/anchors/sink.py).

Answers the v3 calls a bot makes and records, cheaply, what the benchmarks need:

- ``POST /v3/conversations`` (thread creation) ->
  ``{"id": "<channel>;messageid=<n>", "activityId": n}``,
  the request body kept so the bench can read the card (handoff id);
- ``POST/PUT /v3/conversations/{cid}/activities[/{aid}]`` -> ``{"id": n}``; every arrival's
  monotonic time and conversation id is kept, and every ``vb<microseconds>x`` tag in the body
  (a send time stamped by the bench, CLOCK_MONOTONIC is shared by all processes) becomes a
  latency sample.

Bench-only endpoints: ``GET /_bench/threads?since=K``, ``GET /_bench/stats[?arrivals=1]``,
``POST /_bench/reset``. Run: python bench/sink.py PORT
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import time
from typing import Any

from aiohttp import web

_ids = itertools.count(1000)
TAG = re.compile(rb"vb(\d{6,})x")
threads: list[dict[str, Any]] = []
state: dict[str, Any] = {}


def reset() -> None:
    state.update(latencies=[], arrivals=[], posts=0, first=None, last=None)


reset()


def _arrived(cid: str, raw: bytes) -> None:
    now = time.monotonic()
    state["posts"] += 1
    state["arrivals"].append((now, cid))
    if state["first"] is None:
        state["first"] = now
    state["last"] = now
    if b"vb" in raw:
        lat = state["latencies"]
        for m in TAG.finditer(raw):
            lat.append(now - int(m.group(1)) / 1e6)


async def create_thread(request: web.Request) -> web.Response:
    raw = await request.read()
    body = json.loads(raw)
    n = str(next(_ids))
    channel = body.get("channelData", {}).get("channel", {}).get("id", "19:unknown@thread.tacv2")
    thread_id = f"{channel};messageid={n}"
    threads.append({"thread_id": thread_id, "root": n, "body": body, "at": time.monotonic()})
    return web.json_response({"id": thread_id, "activityId": n})


async def post_activity(request: web.Request) -> web.Response:
    raw = await request.read()
    _arrived(request.match_info["cid"], raw)
    return web.json_response({"id": str(next(_ids))})


async def get_threads(request: web.Request) -> web.Response:
    since = int(request.query.get("since", "0"))
    return web.json_response({"threads": threads[since:], "total": len(threads)})


async def get_stats(request: web.Request) -> web.Response:
    out = {k: state[k] for k in ("latencies", "posts", "first", "last")}
    if request.query.get("arrivals"):
        out["arrivals"] = state["arrivals"]
    return web.json_response(out)


async def post_reset(request: web.Request) -> web.Response:
    reset()
    return web.json_response({"ok": True})


def build() -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/v3/conversations", create_thread)
    app.router.add_post("/v3/conversations/{cid}/activities", post_activity)
    app.router.add_post("/v3/conversations/{cid}/activities/{aid}", post_activity)
    app.router.add_put("/v3/conversations/{cid}/activities/{aid}", post_activity)
    app.router.add_get("/_bench/threads", get_threads)
    app.router.add_get("/_bench/stats", get_stats)
    app.router.add_post("/_bench/reset", post_reset)
    return app


if __name__ == "__main__":
    web.run_app(
        build(), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, backlog=4096
    )
