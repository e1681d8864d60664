"""Several app processes on one PostgreSQL database behind a round-robin balancer, with visitors
and specialists talking both ways while instances are killed, paused and redeployed; and what
came out, counted by unique id (the multi-instance end-to-end test and ``make bench
SECTION=scale`` both drive it).

Every message carries a unique token (``v<visitor>n<number>`` from a visitor, ``s<visitor>n<number>``
from the specialist). A sender retries the same message (the same client activity id, the same
Teams activity id) until it is acknowledged, as the widget and Teams do, through the balancer,
so a retry usually reaches another instance. What counts is what was acknowledged: each such
token must arrive (visitor's in the Teams thread, specialist's in the visitor's conversation),
once, in the order sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from adapters.teams.pacing import TENANT_WINDOWS, THREAD_WINDOWS
from tests.support.balancer import Balancer, balancing
from tests.support.directline_client import DirectLineClient
from tests.support.processes import BotProcess, free_port
from tests.support.scenarios import Handoff, Teams, joined
from tests.support.standin import Standin
from tests.support.teams import ALEX, thread_message

log = logging.getLogger(__name__)
TOKEN = re.compile(r"\b([vs])(\d+)n(\d+)\b")


@dataclass
class Sent:
    """What one sender had acknowledged, in order, and how its sends went."""

    acked: list[int] = field(default_factory=list)
    attempts: int = 0
    refused: int = 0  # answers that were not an acknowledgement (retried)


@dataclass
class Tally:
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    delivered: int = 0
    windows_over: int = 0  # Teams rate windows over their limit at arrival
    missing: list[str] = field(default_factory=list)  # what was lost: "v0-17" (kind, who, n)

    def __str__(self) -> str:
        return (
            f"{self.delivered} delivered, {self.lost} lost, {self.duplicated} duplicated,"
            f" {self.reordered} reordered, {self.windows_over} windows over a Teams limit"
        )


def tokens(texts: list[str], kind: str, who: int) -> list[int]:
    """The numbers of ``kind``'s tokens of sender ``who`` in ``texts``, in order."""
    return [
        int(n) for text in texts for k, w, n in TOKEN.findall(text) if k == kind and int(w) == who
    ]


def count(acked: list[int], arrived: list[int], label: str = "") -> Tally:
    """Lost: acknowledged, never arrived. Duplicated: arrived more than once. Reordered: arrived
    (first) before one sent earlier."""
    seen: dict[int, int] = {}
    for n in arrived:
        seen[n] = seen.get(n, 0) + 1
    firsts = list(dict.fromkeys(arrived))
    reordered = sum(1 for a, b in zip(firsts, firsts[1:], strict=False) if b < a)
    return Tally(
        lost=sum(1 for n in acked if n not in seen),
        missing=[f"{label}-{n}" for n in acked if n not in seen],
        duplicated=sum(c - 1 for c in seen.values()),
        reordered=reordered,
        delivered=len(seen),
    )


def windows_over(times: list[float], windows: tuple[tuple[int, float], ...]) -> int:
    """Arrivals that made a sliding window (half-open, ending at that arrival) hold more sends
    than its limit, over every window size."""
    times = sorted(times)
    over = 0
    for limit, seconds in windows:
        start = 0
        for end, at in enumerate(times):
            while at - times[start] >= seconds:
                start += 1
            if end - start + 1 > limit:
                over += 1
                log.warning(
                    "%d sends within %.0f s (limit %d) at %.3f", end - start + 1, seconds, limit, at
                )
    return over


class Fleet:
    """The app processes, the balancer in front, and the database they share."""

    def __init__(self, processes: list[BotProcess], balancer: Balancer, database: str) -> None:
        self.processes = processes
        self.balancer = balancer
        self.database = database

    async def leader(self, timeout: float = 30.0) -> BotProcess:
        """The process that leads now (its lease row names its pid, and it is alive)."""
        deadline = time.monotonic() + timeout
        connection: asyncpg.Connection = await asyncpg.connect(self.database)
        try:
            while True:
                holder = await connection.fetchval(
                    "SELECT holder FROM leases l WHERE EXISTS (SELECT 1 FROM pg_locks k"
                    " WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.pid)"
                )
                pid = int(str(holder).rsplit(":", 1)[-1]) if holder else 0
                for process in self.processes:
                    running = process.process
                    if running is not None and running.pid == pid and running.poll() is None:
                        return process
                if time.monotonic() > deadline:
                    raise TimeoutError("no leader")
                await asyncio.sleep(0.05)
        finally:
            await connection.close()

    async def restart(self, process: BotProcess) -> None:
        process.spawn()
        await process.ready()

    async def kill(self, process: BotProcess) -> None:
        """``kill -9``: what it had not committed is gone; its connections die with it."""
        process.kill()

    async def pause(self, process: BotProcess, seconds: float) -> None:
        """``SIGSTOP`` for ``seconds``, then ``SIGCONT``: a hung leader that wakes up."""
        assert process.process is not None
        os.kill(process.process.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            os.kill(process.process.pid, signal.SIGCONT)

    async def redeploy(self, process: BotProcess) -> None:
        """A graceful stop (SIGTERM), and the new version started in its place."""
        await asyncio.to_thread(process.stop)
        await self.restart(process)


class Conversation:
    """One visitor and the specialist who joined their handoff, each sending numbered
    messages through the balancer and retrying each until it is acknowledged."""

    def __init__(
        self, index: int, visitor: DirectLineClient, handoff: Handoff, teams: Teams
    ) -> None:
        self.index = index
        self.visitor = visitor
        self.handoff = handoff
        self.teams = teams
        self.visitor_sent = Sent()
        self.specialist_sent = Sent()

    async def visitor_says(self, n: int, http: aiohttp.ClientSession) -> None:
        client_id = uuid.uuid4().hex
        text = f"v{self.index}n{n}"
        while True:
            self.visitor_sent.attempts += 1
            try:
                async with http.post(
                    f"{self.visitor.base}/conversations/{self.visitor.conversation_id}/activities",
                    json={
                        "type": "message",
                        "text": text,
                        "channelData": {"clientActivityID": client_id},
                    },
                    headers={"Authorization": f"Bearer {self.visitor.token}"},
                    timeout=aiohttp.ClientTimeout(total=20),
                ) as r:
                    await r.read()
                    if r.status == 200:
                        self.visitor_sent.acked.append(n)
                        return
                    wait = float(r.headers.get("Retry-After", "0.2") or 0.2)
            except (aiohttp.ClientError, TimeoutError):
                wait = 0.2
            self.visitor_sent.refused += 1
            await asyncio.sleep(min(wait, 2.0))

    async def specialist_says(self, n: int, http: aiohttp.ClientSession) -> None:
        await self.specialist_says_text(http, f"s{self.index}n{n}")
        self.specialist_sent.acked.append(n)

    async def specialist_says_text(self, http: aiohttp.ClientSession, text: str) -> None:
        """Written in the thread, as Teams delivers it: the same activity (same id) again until
        it is answered 2xx."""
        activity = thread_message(self.teams.standin.url, self.handoff.thread_id, dict(ALEX), text)
        while True:
            self.specialist_sent.attempts += 1
            try:
                async with http.post(
                    f"{self.teams.bot_url}/api/messages",
                    json=activity,
                    timeout=aiohttp.ClientTimeout(total=20),
                ) as r:
                    await r.read()
                    if r.status in (200, 201):
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.specialist_sent.refused += 1
            await asyncio.sleep(0.2)

    async def talk(self, http: aiohttp.ClientSession, every: float, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await asyncio.gather(self.visitor_says(n, http), self.specialist_says(n, http))
            await asyncio.sleep(every)

    async def visitor_received(self, http: aiohttp.ClientSession) -> list[str]:
        """Every message text of the conversation, as the server keeps it (paged by
        watermark, through the balancer)."""
        texts: list[str] = []
        watermark = ""
        while True:
            params = {"watermark": watermark} if watermark else {}
            async with http.get(
                f"{self.visitor.base}/conversations/{self.visitor.conversation_id}/activities",
                params=params,
                headers={"Authorization": f"Bearer {self.visitor.token}"},
            ) as r:
                if r.status != 200:
                    await asyncio.sleep(0.2)
                    continue
                body = await r.json()
            if not body["activities"]:
                return texts
            texts += [a.get("text") or "" for a in body["activities"] if a["type"] == "message"]
            watermark = body["watermark"]

    def tally(self, standin: Standin, received: list[str]) -> Tally:
        thread = self.handoff.thread_id
        to_teams = count(
            self.visitor_sent.acked,
            tokens(standin.texts_in(thread), "v", self.index),
            f"v{self.index}",
        )
        to_visitor = count(
            self.specialist_sent.acked, tokens(received, "s", self.index), f"s{self.index}"
        )
        arrivals = [c.at for c in standin.posts_to(thread)]
        return Tally(
            lost=to_teams.lost + to_visitor.lost,
            missing=to_teams.missing + to_visitor.missing,
            duplicated=to_teams.duplicated + to_visitor.duplicated,
            reordered=to_teams.reordered + to_visitor.reordered,
            delivered=to_teams.delivered + to_visitor.delivered,
            windows_over=windows_over(arrivals, THREAD_WINDOWS),
        )


async def open_conversations(
    count_: int, http: aiohttp.ClientSession, url: str, standin: Standin
) -> list[Conversation]:
    """Visitors on the balancer, each handed off and joined (Teams through the balancer)."""
    teams = Teams(http, url, standin)
    made = []
    for index in range(count_):
        visitor = DirectLineClient(http, f"{url}/v3/directline", origin=url)
        await visitor.start()
        handoff = await joined(visitor, teams)
        await visitor.disconnect()  # the check reads the conversation back; no socket needed
        made.append(Conversation(index, visitor, handoff, teams))
    return made


def tenant_windows_over(standin: Standin) -> int:
    return windows_over([c.at for c in standin.calls], TENANT_WINDOWS)


@contextlib.asynccontextmanager
async def spread_client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that opens a new connection per request, so the balancer spreads them."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        yield http


async def settle(
    conversations: list[Conversation], standin: Standin, http: aiohttp.ClientSession, within: float
) -> tuple[Tally, dict[int, list[str]]]:
    """Wait (up to ``within`` seconds) until everything acknowledged has arrived; the tally."""
    deadline = time.monotonic() + within
    while True:
        received = {c.index: await c.visitor_received(http) for c in conversations}
        tallies = [c.tally(standin, received[c.index]) for c in conversations]
        if all(t.lost == 0 for t in tallies) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    total = Tally()
    for t in tallies:
        total.lost += t.lost
        total.missing += t.missing
        total.duplicated += t.duplicated
        total.reordered += t.reordered
        total.delivered += t.delivered
        total.windows_over += t.windows_over
    total.windows_over += tenant_windows_over(standin)
    return total, received


async def where_lost(fleet: Fleet, conversations: list[Conversation], missing: list[str]) -> str:
    """For each message lost ("v0-17": a visitor's; "s0-17": a specialist's), how far it got, by
    the database and the instances' logs: stored, handled by the inbox, queued for Teams."""
    lines: list[str] = []
    connection: asyncpg.Connection = await asyncpg.connect(fleet.database)
    try:
        for label in missing[:5]:
            who, _, number = label.partition("-")
            conversation = conversations[int(who[1:])]
            cid, text = conversation.visitor.conversation_id, f"{who[0]}{who[1:]}n{number}"
            seqs = await connection.fetch(
                "SELECT seq, key FROM activities WHERE conversation_id = $1 AND body LIKE $2",
                cid,
                f'%{text}"%',
            )
            processed = await connection.fetchval(
                "SELECT processed FROM inbox WHERE conversation_id = $1", cid
            )
            last = await connection.fetchval(
                "SELECT last_seq FROM activity_counters WHERE conversation_id = $1", cid
            )
            queued = await connection.fetchval(
                "SELECT count(*) FROM outbound WHERE item LIKE $1", f'%{text}"%'
            )
            turns = await connection.fetchval(
                "SELECT count(*) FROM turns WHERE conversation_id = $1 AND text = $2", cid, text
            )
            meta = await connection.fetch(
                "SELECT key, value FROM meta WHERE conversation_id = $1 AND key NOT LIKE 'ref:%'",
                cid,
            )
            lines.append(
                f"{label}: stored as {[tuple(r) for r in seqs]}, inbox at {processed} of {last},"
                f" {turns} transcript line(s), {queued} queued for Teams,"
                f" meta {[(r['key'], r['value'][:60]) for r in meta][:6]}"
            )
    finally:
        await connection.close()
    for process in fleet.processes:
        with contextlib.suppress(OSError):
            noted = [
                line[:220]
                for line in process.log.read_text(errors="replace").splitlines()
                if (" ERROR " in line or " WARNING " in line)
                and "aiohttp.access" not in line
                and "LOCAL MODE" not in line
            ]
            lines += [f"{process.log.name}: {line}" for line in noted[-8:]]
    return "\n".join(lines)


MISSED = ("never told", "no worker to send them")  # what a leader's look reports


def missed_wake_ups(fleet: Fleet) -> list[str]:
    """Work a leader found by looking, that no wake-up had announced (the logs' reports)."""
    found: list[str] = []
    for process in fleet.processes:
        with contextlib.suppress(OSError):
            text = process.log.read_text(errors="replace")
            found += [line[:220] for line in text.splitlines() if any(m in line for m in MISSED)]
    return found


# Limits raised so that retries through three instances are not what is measured.
LIMITS_YAML = (
    "limits:\n  messages_per_conversation: {per_minute: 6000, burst: 600}\n  teams_backlog: 10000\n"
)


@contextlib.asynccontextmanager
async def running_fleet(
    folder: Path, standin_url: str, database: str, size: int = 3
) -> AsyncIterator[Fleet]:
    """``size`` app processes on ``database`` (one route to the stand-in at ``standin_url``),
    behind a round-robin balancer; each stopped after (gracefully)."""
    from tests.conftest import one_route_yaml  # (conftest imports support modules)

    config = folder / "handoff.yaml"
    config.write_text(one_route_yaml(standin_url, folder / "unused.db", extra=LIMITS_YAML))
    processes = [
        BotProcess(config, free_port(), folder / f"bot-{n}.log", env={"DATABASE_URL": database})
        for n in range(size)
    ]
    for process in processes:
        process.spawn()
    try:
        for process in processes:
            await process.ready()
        async with balancing([("127.0.0.1", p.port) for p in processes]) as balancer:
            yield Fleet(processes, balancer, database)
    finally:
        for process in processes:
            await asyncio.to_thread(process.stop)
