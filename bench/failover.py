"""``make bench SECTION=scale``, the failover part: three app processes on one throwaway
PostgreSQL cluster behind a round-robin balancer, the connector stand-in, visitors and
specialists talking both ways through the balancer (``tests.support.failover``), and:

- ``kill -9`` of the leader, ``--kills`` times; ``SIGSTOP`` of the leader (cut off by a
  standby, then woken); a graceful stop (``SIGTERM``) of the leader: how long Teams delivery
  stops each time (the longest silence at the stand-in around the event, while visitors keep
  sending), and what came out, counted by unique id;
- a widget socket whose instance is killed: reconnect (through the balancer, to another
  instance) and replay of what it missed, until the last message sent meanwhile is shown;
- fan-out: a specialist's message posted to one instance, until it is on the visitor's socket
  held by another.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.directline_client import DirectLineClient
from tests.support.failover import (
    Fleet,
    open_conversations,
    running_fleet,
    settle,
    spread_client,
)
from tests.support.postgres import running_cluster
from tests.support.processes import BotProcess
from tests.support.standin import Standin, running_standin
from tests.support.teams import ALEX, thread_message

# Seconds between a visitor's messages (and its specialist's): under what Teams takes into a
# thread for good (60 posts in 30 s), so that what is measured is the failover, not a thread
# waiting for its rate window.
EVERY = 0.6


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else float("nan")


def _silence(standin: Standin, since: float, until: float) -> float:
    """The longest stretch without a post arriving at the stand-in, within [since, until]."""
    times = [since, *sorted(c.at for c in standin.calls if since < c.at < until), until]
    return max(b - a for a, b in zip(times, times[1:], strict=False))


class Shown(dict[str, float]):
    """Message texts a socket showed, and when (first); ``until`` waits for one."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def show(self, text: str) -> None:
        self.setdefault(text, time.monotonic())
        self.changed.set()

    async def until(self, text: str, reader: asyncio.Task[None]) -> bool:
        """Wait until ``text`` was shown (True) or the socket's reader ended (False)."""
        while text not in self and not reader.done():
            self.changed.clear()
            waiter = asyncio.create_task(self.changed.wait())
            try:
                await asyncio.wait([waiter, reader], timeout=1, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        return text in self


async def _socket_times(
    client: DirectLineClient, url: str, seen: Shown, stop: asyncio.Event
) -> None:
    """Read a widget socket, noting when each message text first showed."""
    async with client.session.ws_connect(url) as ws:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT or not message.data:
                continue
            frame = json.loads(message.data)
            for activity in frame["activities"]:
                seen.show(activity.get("text") or "")
            client.watermark = frame.get("watermark", client.watermark)
            if stop.is_set():
                return


async def _stream_url(client: DirectLineClient, base: str) -> str:
    async with client.session.get(
        f"{base}/conversations/{client.conversation_id}",
        params={"watermark": client.watermark} if client.watermark else {},
        headers={"Authorization": f"Bearer {client.token}"},
    ) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["streamUrl"])


async def _fanout(fleet: Fleet, standin: Standin, samples: int) -> list[float]:
    """A specialist's message posted straight to instance B, until shown on the visitor's
    socket held by instance A (seconds, each)."""
    a, b = fleet.processes[0], fleet.processes[1]
    async with aiohttp.ClientSession() as http:
        (conversation,) = await open_conversations(1, http, a.url, standin)
        client = conversation.visitor
        client.base = f"{a.url}/v3/directline"
        seen = Shown()
        stop = asyncio.Event()
        reader = asyncio.create_task(
            _socket_times(client, await _stream_url(client, client.base), seen, stop)
        )
        await asyncio.sleep(0.5)
        took = []
        for n in range(samples):
            text = f"fanout {n} {uuid.uuid4().hex[:6]}"
            activity = thread_message(standin.url, conversation.handoff.thread_id, ALEX, text)
            began = time.monotonic()
            async with http.post(f"{b.url}/api/messages", json=activity) as r:
                assert r.status in (200, 201), await r.text()
            assert await seen.until(text, reader)
            took.append(seen[text] - began)
        stop.set()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        return took


async def _replay(fleet: Fleet, standin: Standin, trials: int) -> list[float]:
    """Kill the instance that holds a widget's socket while the specialist keeps writing; the
    widget reconnects through the balancer with its watermark: seconds from the socket's end
    until the last message written meanwhile is shown."""
    took = []
    async with spread_client() as http:
        (conversation,) = await open_conversations(1, http, fleet.balancer.url, standin)
        client = conversation.visitor
        for trial in range(trials):
            seen = Shown()
            stop = asyncio.Event()
            url = await _stream_url(client, client.base)
            reader = asyncio.create_task(_socket_times(client, url, seen, stop))
            await asyncio.sleep(0.3)
            held = _holder(fleet)
            if held is None:
                reader.cancel()
                continue
            await fleet.kill(held)
            ended = time.monotonic()
            await asyncio.gather(reader, return_exceptions=True)
            last = ""
            for n in range(5):  # written while the widget is away (to whichever instance)
                last = f"replay {trial}.{n} {uuid.uuid4().hex[:6]}"
                await conversation.specialist_says_text(http, last)
            url = await _stream_url(client, client.base)
            stop = asyncio.Event()
            reader = asyncio.create_task(_socket_times(client, url, seen, stop))
            if await seen.until(last, reader):
                took.append(seen[last] - ended)
            stop.set()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await fleet.restart(held)
    return took


def _holder(fleet: Fleet) -> BotProcess | None:
    """The instance the balancer gave the socket to (the one with connections open now)."""
    open_now = [i for i, writers in fleet.balancer._open.items() if writers]
    return fleet.processes[open_now[0]] if len(open_now) == 1 else None


async def bench_failover(args: Any) -> list[str]:
    with running_cluster() as cluster, tempfile.TemporaryDirectory() as d:
        async with (
            cluster.database() as url,
            running_standin() as standin,
            running_fleet(Path(d), standin.url, url) as fleet,
        ):
            return await _measure(fleet, standin, args)


async def _measure(fleet: Fleet, standin: Standin, args: Any) -> list[str]:
    kills, pauses, graceful = [], [], []
    async with spread_client() as http:
        conversations = await open_conversations(4, http, fleet.balancer.url, standin)
        stop = asyncio.Event()
        talking = [asyncio.create_task(c.talk(http, EVERY, stop)) for c in conversations]
        try:
            await asyncio.sleep(2.0)
            for _ in range(args.kills):
                leader = await fleet.leader()
                at = time.monotonic()
                await fleet.kill(leader)
                await asyncio.sleep(2.5)
                kills.append(_silence(standin, at - 0.5, time.monotonic()))
                await fleet.restart(leader)
                await asyncio.sleep(0.5)
            for _ in range(2):
                leader = await fleet.leader()
                at = time.monotonic()
                await fleet.pause(leader, 12.0)
                await asyncio.sleep(1.0)
                pauses.append(_silence(standin, at - 0.5, time.monotonic()))
            for _ in range(3):
                leader = await fleet.leader()
                at = time.monotonic()
                await fleet.redeploy(leader)
                await asyncio.sleep(1.0)
                graceful.append(_silence(standin, at - 0.5, time.monotonic()))
        finally:
            stop.set()
            await asyncio.gather(*talking)
        tally, _ = await settle(conversations, standin, http, within=60)
        sent = sum(len(c.visitor_sent.acked) + len(c.specialist_sent.acked) for c in conversations)
    fanout = await _fanout(fleet, standin, 200)
    replay = await _replay(fleet, standin, args.replays)

    def row(name: str, values: list[float], target: str) -> str:
        return (
            f"| {name} | {len(values)} | {_pct(values, 50) * 1000:.1f} ms "
            f"| {_pct(values, 99) * 1000:.1f} ms | {max(values) * 1000:.1f} ms | {target} |"
        )

    return [
        "Three instances on one PostgreSQL cluster (loopback, the same 2 cores), a round-robin "
        "balancer in front (tests/support/balancer.py), 4 conversations: each visitor and its "
        f"specialist send a numbered message every {EVERY:g} s through the balancer (under "
        "the 60 posts in 30 s a Teams thread takes), each retried (same id) until "
        "acknowledged. Delivery stop: the longest silence at the connector stand-in around "
        "the event (normal gaps between posts are ~0.15 s).",
        "",
        "| event | trials | p50 | p99 | max | target |",
        "|---|---|---|---|---|---|",
        row("leader `kill -9`: delivery stops for", kills, "≤ 2 s"),
        row("leader `SIGSTOP` (cut off, then woken): delivery stops for", pauses, "≤ 15 s"),
        row("leader graceful stop (SIGTERM) and restart: delivery stops for", graceful, "≤ 1.5 s"),
        row("widget socket's instance killed: reconnect and replay", replay, "p99 ≤ 3 s"),
        row("fan-out: Teams reply on B to the visitor's socket on A", fanout, "p99 ≤ 25 ms"),
        "",
        f"Over all of it: {sent} messages acknowledged; {tally}.",
    ]
