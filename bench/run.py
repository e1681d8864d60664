"""Benchmarks (not tests): relay throughput/latency, anchors, idle capacity, rules, Teams pacing.

    .venv/bin/python bench/run.py [relay|anchors|idle|rules|pacing|scale|failover|all] [options]

Prints a Markdown report and writes it to bench/results.md. Everything runs on 127.0.0.1, every
loop is bounded, and every process started here is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from math import inf
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aiohttp

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ANCHORS = Path(os.environ.get("BENCH_ANCHORS", "/work/shared/anchors"))
sys.path.insert(0, str(ROOT))

from tests.support.teams import ALEX, TENANT, card_action, thread_message  # noqa: E402

PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
CHANNEL = "19:bench@thread.tacv2"
T_TAG = re.compile(r"tb(\d{6,})x")


# ---- helpers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def database_cpu_seconds() -> float:
    """CPU seconds of every PostgreSQL process on this machine, with the backends that ended
    (counted in the postmaster's children's times); 0 without PostgreSQL."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name, _, rest = stat.partition(" (")[2].rpartition(")")
        if name != "postgres":
            continue
        fields = rest.split()
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / CLK_TCK


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def ms(v: float) -> str:
    return "n/a" if v != v else f"{v * 1000:.1f} ms"


def stamp() -> str:
    return f"{int(time.monotonic() * 1e6)}"


def raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Proc:
    """A child process we started; stopped (SIGTERM, then SIGKILL) by id only."""

    def __init__(self, args: list[str], cwd: Path, log: Path, ready: str | None, port: int):
        self.log = log
        self.port = port
        self.p = subprocess.Popen(
            args,
            cwd=cwd,
            stdout=subprocess.PIPE if ready else open(log, "wb"),
            stderr=open(log.with_suffix(".err"), "wb"),
            text=bool(ready),
            preexec_fn=raise_nofile,
        )
        deadline = time.monotonic() + 30
        if ready:
            assert self.p.stdout is not None
            line = self.p.stdout.readline()
            if ready not in line:
                self.stop()
                raise RuntimeError(f"{args} did not start: {line!r}; see {log.with_suffix('.err')}")
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return
            if self.p.poll() is not None:
                raise RuntimeError(f"{args} exited; see {log.with_suffix('.err')}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{args} did not listen on {port}")

    @property
    def pid(self) -> int:
        return self.p.pid

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


@contextlib.contextmanager
def processes() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            proc.stop()


def start_sink(started: list[Proc], tmp: Path) -> str:
    port = free_port()
    started.append(
        Proc([PY, str(BENCH / "sink.py"), str(port)], BENCH, tmp / f"sink{port}.log", None, port)
    )
    return f"http://127.0.0.1:{port}"


def write_config(tmp: Path, sink_url: str, routes: int = 1) -> Path:
    import yaml  # the project's own dependency

    config = {
        "teams": {"service_url": sink_url, "tenant_id": TENANT},
        "routes": [{"id": "bench", "name": "Bench", "channel": CHANNEL}],
        "storage": {"sqlite_path": str(tmp / "handoff.db")},
        # One load generator on one address plays thousands of visitors: the limits are
        # checked on every request (their cost is in the figures) but never met.
        "limits": {
            "conversations_per_ip": {"per_minute": 1_000_000, "burst": 1_000_000},
            "conversations_per_origin": {"per_minute": 1_000_000, "burst": 1_000_000},
            "messages_per_conversation": {"per_minute": 1_000_000, "burst": 1_000_000},
            "teams_backlog": 10_000,
            "connections": 1_000_000,
            "connections_per_ip": 1_000_000,
        },
    }
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_bot(started: list[Proc], tmp: Path, sink_url: str, real_limits: bool = False) -> str:
    port = free_port()
    config = write_config(tmp, sink_url)
    # BENCH_BOT_PREFIX: run the bot under a profiler, e.g. "/tmp/cprofile_wrapper.py".
    prefix = os.environ.get("BENCH_BOT_PREFIX", "").split()
    args = [PY, *prefix, str(BENCH / "botproc.py"), str(config), str(port)]
    if real_limits:
        args.append("--real-limits")
    started.append(Proc(args, ROOT, tmp / f"bot-{port}.log", "READY", port))
    return f"http://127.0.0.1:{port}"


# ---- the load generator (the same for the anchors and the relay) --------------------------


async def load(
    url: str | Callable[[int], str],
    body: Callable[[int], bytes],
    *,
    headers: Callable[[int], dict[str, str]] | None = None,
    duration: float = 8.0,
    connections: int = 16,
) -> dict[str, Any]:
    """Closed loop: ``connections`` keep-alive connections, each POSTs once the last answered.

    ``url`` may be a function of the request number (Direct Line posts go to each visitor's
    conversation)."""
    target = url if callable(url) else (lambda _n: url)
    latencies: list[float] = []
    errors = 0
    seq = 0
    conn = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=conn) as session:
        start = time.monotonic()
        stop_at = start + duration

        async def worker() -> None:
            nonlocal seq, errors
            while time.monotonic() < stop_at:
                n = seq
                seq += 1
                h = {"Content-Type": "application/json"}
                if headers:
                    h.update(headers(n))
                data = body(n)
                t0 = time.monotonic()
                try:
                    async with session.post(target(n), data=data, headers=h) as r:
                        await r.read()
                        if r.status >= 300:
                            errors += 1
                            continue
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.monotonic() - t0)

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - start
    return {
        "start": start,
        "elapsed": elapsed,
        "ok": len(latencies),
        "errors": errors,
        "sent": seq,
        "lat": latencies,
        "rps": len(latencies) / elapsed,
    }


# ---- section: anchors -----------------------------------------------------------------------


def anchor_body(sink_url: str) -> bytes:
    act = json.loads((ANCHORS / "act.json").read_text())
    act["serviceUrl"] = sink_url + "/"
    return json.dumps(act).encode()


async def bench_anchors(args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    rows = [
        "| server | requests/s | p50 | p99 | bot CPU ms/req | errors |",
        "|---|---|---|---|---|---|",
    ]
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d, processes() as started:
        tmp = Path(d)
        sink = start_sink(started, tmp)
        body = anchor_body(sink)
        for name, script, key, on_uvloop in (
            ("raw_fwd.py", "raw_fwd.py", "raw_fwd.py", False),
            ("echo_bot.py (SDK as shipped)", "echo_bot.py", "echo_bot.py", False),
            ("raw_fwd.py on uvloop (reference)", "raw_fwd.py", "raw_fwd.py+uvloop", True),
        ):
            port = free_port()
            wrap = [str(BENCH / "with_uvloop.py")] if on_uvloop else []
            proc = Proc(
                [PY, *wrap, str(ANCHORS / script), str(port)],
                ANCHORS,
                tmp / f"{key}.log",
                None,
                port,
            )
            started.append(proc)
            url = f"http://127.0.0.1:{port}/api/messages"
            await load(url, lambda n: body, duration=1.0, connections=args.connections)  # warm-up
            cpu0 = cpu_seconds(proc.pid)
            r = await load(
                url, lambda n: body, duration=args.duration, connections=args.connections
            )
            cpu = (cpu_seconds(proc.pid) - cpu0) * 1000 / max(1, r["ok"])
            found[key] = r | {"cpu": cpu}
            rows.append(
                f"| {name} | {r['rps']:,.0f} | {ms(pct(r['lat'], 50))} | "
                f"{ms(pct(r['lat'], 99))} | {cpu:.2f} | {r['errors']} |"
            )
            proc.stop()
            started.remove(proc)
    return rows, found


# ---- section: relay -------------------------------------------------------------------------


class Visitor:
    def __init__(self, i: int) -> None:
        self.i = i
        self.name = f"Bench Visitor {i:05d}"
        self.token = ""
        self.cid = ""
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.thread_id = ""
        self.handoff_id = ""


class Relay:
    """N joined handoffs against a bot subprocess and a sink subprocess."""

    def __init__(self, bot: str, sink: str, session: aiohttp.ClientSession) -> None:
        self.bot = bot
        self.sink = sink
        self.dl = f"{bot}/v3/directline"
        self.session = session
        self.visitors: list[Visitor] = []
        self.ws_latencies: list[float] = []
        self.ws_last = 0.0
        self.recording = False
        self._threads: dict[str, dict[str, Any]] = {}
        self._since = 0

    async def _read(self, v: Visitor) -> None:
        assert v.ws is not None
        async for msg in v.ws:
            if msg.type != aiohttp.WSMsgType.TEXT or not msg.data:
                continue
            if self.recording and "tb" in msg.data:
                now = time.monotonic()
                # Only the specialist's messages (the visitor's own echoes carry "vb" tags).
                for m in T_TAG.finditer(msg.data):
                    self.ws_latencies.append(now - int(m.group(1)) / 1e6)
                    self.ws_last = now

    async def open_widget(self, v: Visitor) -> None:
        async with self.session.post(
            f"{self.dl}/tokens/generate", headers={"Origin": self.bot}
        ) as r:
            assert r.status == 200, await r.text()
            v.token = (await r.json())["token"]
        async with self.session.post(
            f"{self.dl}/conversations", headers={"Authorization": f"Bearer {v.token}"}
        ) as r:
            assert r.status in (200, 201), await r.text()
            body = await r.json()
        v.cid = body["conversationId"]
        # Pings answered, as a browser does (the bot drops a socket that leaves them unanswered).
        v.ws = await self.session.ws_connect(body["streamUrl"])
        v.reader = asyncio.create_task(self._read(v))

    async def post(self, v: Visitor, activity: dict[str, Any]) -> None:
        activity = {
            "from": {"id": "x"},
            "channelData": {"clientActivityID": uuid.uuid4().hex},
            **activity,
        }
        async with self.session.post(
            f"{self.dl}/conversations/{v.cid}/activities",
            json=activity,
            headers={"Authorization": f"Bearer {v.token}"},
        ) as r:
            assert r.status == 200, await r.text()

    async def _thread_for(self, name: str, wait: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if name in self._threads:
                return self._threads[name]
            async with self.session.get(
                f"{self.sink}/_bench/threads", params={"since": str(self._since)}
            ) as r:
                data = await r.json()
            for t in data["threads"]:
                text = json.dumps(t["body"])
                m = re.search(r"Bench Visitor \d{5}", text)
                if m:
                    self._threads[m.group(0)] = t
            self._since = data["total"]
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no thread for {name}")

    async def handoff(self, i: int) -> Visitor:
        v = Visitor(i)
        await self.open_widget(v)
        await self.post(
            v,
            {
                "type": "event",
                "name": "visitor.context",
                "value": {"name": v.name, "email": f"v{i}@bench.example", "company": "Bench"},
            },
        )
        await self.post(v, {"type": "event", "name": "handoff.request", "value": {}})
        t = await self._thread_for(v.name)
        card = t["body"]["activity"]["attachments"][0]["content"]
        join = next(a for a in card["actions"] if a.get("verb") == "handoff.join")
        v.thread_id, v.handoff_id = t["thread_id"], join["data"]["handoffId"]
        act = card_action(self.sink, v.thread_id, ALEX, "handoff.join", v.handoff_id)
        async with self.session.post(f"{self.bot}/api/messages", json=act) as r:
            body = await r.text()
            assert r.status == 200 and "joined" in body, body[:300]
        return v

    async def setup(self, n: int, parallel: int = 16) -> float:
        t0 = time.monotonic()
        sem = asyncio.Semaphore(parallel)

        async def one(i: int) -> Visitor:
            async with sem:
                return await self.handoff(i)

        self.visitors = list(await asyncio.gather(*(one(i) for i in range(n))))
        return time.monotonic() - t0

    async def close(self) -> None:
        for v in self.visitors:
            if v.ws is not None:
                await v.ws.close()
        await asyncio.gather(*(v.reader for v in self.visitors if v.reader), return_exceptions=True)


async def sink_stats(
    session: aiohttp.ClientSession, sink: str, arrivals: bool = False
) -> dict[str, Any]:
    async with session.get(
        f"{sink}/_bench/stats", params={"arrivals": "1"} if arrivals else {}
    ) as r:
        return await r.json()


async def sink_reset(session: aiohttp.ClientSession, sink: str) -> None:
    async with session.post(f"{sink}/_bench/reset") as r:
        await r.read()


async def relay_once(n: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One relay run; with ``--postgres``, the bot stores in a throwaway PostgreSQL cluster on
    loopback (the database shares the machine's cores with the bot and the load)."""
    if not args.postgres:
        return await _relay_once(n, args)
    from tests.support.postgres import running_cluster

    settings = ("shared_preload_libraries=pg_stat_statements",) if args.statements else ()
    with running_cluster(*settings) as cluster:
        async with cluster.database() as url:
            os.environ["BENCH_DATABASE_URL"] = url
            try:
                results = await _relay_once(n, args)
                if args.statements:
                    results[0]["statements"] = await _statements(url)
                return results
            finally:
                del os.environ["BENCH_DATABASE_URL"]


async def _statements(url: str, top: int = 15) -> list[dict[str, Any]]:
    """The statements the database ran most often (``pg_stat_statements``)."""
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        rows = await connection.fetch(
            "SELECT calls, mean_exec_time, regexp_replace(query, '\\s+', ' ', 'g') AS query"
            " FROM pg_stat_statements ORDER BY calls DESC LIMIT $1",
            top,
        )
    finally:
        await connection.close()
    return [dict(row) for row in rows]


async def _relay_once(n: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory() as d, processes() as started:
        tmp = Path(d)
        sink = start_sink(started, tmp)
        # Several instances (PostgreSQL): the load takes turns among them; the widgets' sockets
        # are all on the first, so what reaches the others is fanned out to it.
        instances = getattr(args, "instances_now", 1)
        bots = [start_bot(started, tmp, sink) for _ in range(instances)]
        bot = bots[0]
        botprocs = started[-instances:]
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as session:
            relay = Relay(bot, sink, session)
            try:
                setup_s = await relay.setup(n)
                await asyncio.sleep(1.0)  # let card updates / notes settle
                vs = relay.visitors

                # visitor -> Teams
                await sink_reset(session, sink)
                cpu0 = sum(cpu_seconds(b.pid) for b in botprocs)
                db0 = database_cpu_seconds()

                def v2t_body(k: int) -> bytes:
                    return json.dumps(
                        {
                            "type": "message",
                            "from": {"id": "x"},
                            "text": f"vb{stamp()}x hello from the widget",
                            "channelData": {"clientActivityID": uuid.uuid4().hex},
                        }
                    ).encode()

                # One URL per request: the generator's url is fixed, so route through a closure.
                r = await load(
                    lambda k: (
                        f"{bots[k % instances]}/v3/directline/conversations/{vs[k % n].cid}"
                        "/activities"
                    ),
                    v2t_body,
                    headers=lambda k: {"Authorization": f"Bearer {vs[k % n].token}"},
                    duration=args.duration,
                    connections=args.connections,
                )
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    st = await sink_stats(session, sink)
                    if len(st["latencies"]) >= r["ok"]:
                        break
                    await asyncio.sleep(0.2)
                cpu = sum(cpu_seconds(b.pid) for b in botprocs) - cpu0
                db = database_cpu_seconds() - db0
                lat = st["latencies"]
                span = (st["last"] or r["start"]) - r["start"]
                results.append(
                    {
                        "dir": "visitor -> Teams" + _on(instances),
                        "n": n,
                        "sent": r["ok"],
                        "delivered": len(lat),
                        "posts": st["posts"],
                        "rate": len(lat) / span if span > 0 else 0.0,
                        "p50": pct(lat, 50),
                        "p99": pct(lat, 99),
                        "http_p50": pct(r["lat"], 50),
                        "http_p99": pct(r["lat"], 99),
                        "http_rps": r["rps"],
                        "cpu": cpu * 1000 / max(1, len(lat)),
                        "db_cpu": db * 1000 / max(1, len(lat)),
                        "errors": r["errors"],
                        "setup": setup_s,
                    }
                )

                # Teams -> visitor
                templates = []
                for v in vs:
                    a = thread_message(
                        sink, v.thread_id, ALEX, "tb__TS__x reply from the thread", mention=False
                    )
                    a["id"] = "__ID__"
                    templates.append(json.dumps(a))
                relay.ws_latencies.clear()
                relay.recording = True
                cpu0 = sum(cpu_seconds(b.pid) for b in botprocs)
                db0 = database_cpu_seconds()

                def t2v_body(k: int) -> bytes:
                    return (
                        templates[k % n]
                        .replace("__TS__", stamp())
                        .replace("__ID__", uuid.uuid4().hex)
                        .encode()
                    )

                r = await load(
                    lambda k: f"{bots[k % instances]}/api/messages",
                    t2v_body,
                    duration=args.duration,
                    connections=args.connections,
                )
                deadline = time.monotonic() + 60
                while len(relay.ws_latencies) < r["ok"] and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                cpu = sum(cpu_seconds(b.pid) for b in botprocs) - cpu0
                db = database_cpu_seconds() - db0
                lat = relay.ws_latencies
                span = relay.ws_last - r["start"]
                results.append(
                    {
                        "dir": "Teams -> visitor" + _on(instances),
                        "n": n,
                        "sent": r["ok"],
                        "delivered": len(lat),
                        "posts": r["ok"],
                        "rate": len(lat) / span if span > 0 else 0.0,
                        "p50": pct(lat, 50),
                        "p99": pct(lat, 99),
                        "http_p50": pct(r["lat"], 50),
                        "http_p99": pct(r["lat"], 99),
                        "http_rps": r["rps"],
                        "cpu": cpu * 1000 / max(1, len(lat)),
                        "db_cpu": db * 1000 / max(1, len(lat)),
                        "errors": r["errors"],
                        "setup": setup_s,
                    }
                )
            finally:
                relay.recording = False
                await relay.close()
                # BENCH_LOGS=DIR: keep the processes' logs of each run (they go with the run).
                if os.environ.get("BENCH_LOGS"):
                    keep = Path(os.environ["BENCH_LOGS"]) / f"relay-{instances}x{n}"
                    await asyncio.to_thread(shutil.copytree, tmp, keep, dirs_exist_ok=True)
    return results


def _on(instances: int) -> str:
    return f" ({instances} instances)" if instances > 1 else ""


async def bench_relay(args: argparse.Namespace) -> tuple[list[str], list[dict[str, Any]]]:
    store = "PostgreSQL (a throwaway cluster on loopback)" if args.postgres else "SQLite"
    rows = [
        f"Store: {store}.",
        "",
        "| direction | handoffs | delivered/sent | thread posts | messages/s | p50 | p99 | "
        "HTTP p50 / p99 | bot CPU ms/msg | database CPU ms/msg | setup s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    found: list[dict[str, Any]] = []
    runs = [(i, n) for i in args.instances for n in args.handoffs]
    for instances, n in runs:
        args.instances_now = instances
        statements: list[str] = []
        for r in await relay_once(n, args):
            found.append(r)
            if "statements" in r:
                statements = _statement_rows(r, instances)
            rows.append(
                f"| {r['dir']} | {n} | {r['delivered']}/{r['sent']} | {r['posts']} | "
                f"{r['rate']:,.0f} | {ms(r['p50'])} | {ms(r['p99'])} | "
                f"{ms(r['http_p50'])} / {ms(r['http_p99'])} | {r['cpu']:.2f} | "
                f"{r['db_cpu']:.2f} | {r['setup']:.1f} |"
            )
        rows += statements
    return rows, found


def _statement_rows(r: dict[str, Any], instances: int) -> list[str]:
    """The run's most frequent statements (both directions), under its rows."""
    rows = [
        "",
        f"Statements run most often, {r['n']} handoffs{_on(instances)}, both directions:",
        "",
        "| calls | mean µs | statement |",
        "|---|---|---|",
    ]
    for st in r["statements"]:
        query = st["query"].replace("|", "\\|")
        query = query if len(query) <= 110 else query[:107] + "..."
        rows.append(f"| {st['calls']:,} | {st['mean_exec_time'] * 1000:.0f} | `{query}` |")
    return [*rows, ""]


# ---- section: idle capacity -----------------------------------------------------------------


async def bench_idle(args: argparse.Namespace) -> list[str]:
    raise_nofile()
    n = args.idle
    with tempfile.TemporaryDirectory() as d, processes() as started:
        tmp = Path(d)
        sink = start_sink(started, tmp)
        bot = start_bot(started, tmp, sink)
        pid = started[-1].pid
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as session:
            relay = Relay(bot, sink, session)
            # warm up (imports, first conversation) before the baseline
            warm = Visitor(-1)
            await relay.open_widget(warm)
            await asyncio.sleep(1.0)
            rss0 = rss_kb(pid)
            t0 = time.monotonic()
            sem = asyncio.Semaphore(64)
            opened: list[Visitor] = []
            budget = t0 + args.idle_budget

            async def one(i: int) -> None:
                async with sem:
                    if time.monotonic() > budget:
                        return
                    v = Visitor(i)
                    await relay.open_widget(v)
                    opened.append(v)

            results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            setup = time.monotonic() - t0
            await asyncio.sleep(3.0)
            alive = sum(1 for v in opened if v.ws is not None and not v.ws.closed)
            rss1 = rss_kb(pid)
            relay.visitors = opened + [warm]
            await relay.close()
    per = (rss1 - rss0) / max(1, alive)
    rows = [
        "| open widget WebSockets | setup s | bot RSS before | after | KB per connection | "
        "failures | extrapolated RSS at 10,000 |",
        "|---|---|---|---|---|---|---|",
        f"| {alive:,} of {n:,} asked | {setup:.1f} | {rss0 / 1024:.0f} MB | {rss1 / 1024:.0f} MB | "
        f"{per:.1f} | {len(failures)} | {(rss0 + per * 10_000) / 1024:.0f} MB |",
    ]
    if failures:
        rows.append(f"\nfirst failure: `{failures[0]!r}`")
    return rows


# ---- section: rules -------------------------------------------------------------------------


def bench_rules(args: argparse.Namespace) -> list[str]:
    """The rule work of one visitor message: facts, escalation triggers, route choice.

    Every timed call builds the facts afresh (what a message does), so nothing a message
    caches carries over to the next. Two configurations of 100 routes + 10 escalation rules:
    rules of the common shapes (field equality, ``!=``, ``in``, comparisons), and rules that
    only CEL can evaluate (``size()``, string ``+``), each distinct.
    """
    import itertools
    import timeit
    from dataclasses import replace

    from bot.config import Settings
    from bot.model import Conversation, Page, Role, Turn
    from bot.model import Visitor as DVisitor
    from bot.rules.escalation import detect
    from bot.rules.routing import choose_route, facts_for

    now = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
    conversation = Conversation(
        "c1",
        DVisitor(
            id="v", company="Fabrikam", locale="en-GB", page=Page(url="https://x.example/pricing")
        ),
        now,
        context=MappingProxyType({"domain": "D99", "plan": "basic", "seats": 40, "tags": ["beta"]}),
    )
    lines = [
        (Role.VISITOR, "Hi"),
        (Role.BOT, "Hello! How can I help you today?"),
        (Role.VISITOR, "I cannot find my invoices"),
        (Role.BOT, "Invoices are under Billing."),
        (Role.VISITOR, "How do I export my invoices?"),
    ]
    turns = [
        Turn("c1", now - dt.timedelta(seconds=10 * (len(lines) - n)), role, role.value, text)
        for n, (role, text) in enumerate(lines)
    ]
    text = lines[-1][1]
    # Every timed call is a new message (a text not seen before: the text checks remember
    # recent answers), the earlier lines of the conversation the same.
    messages = itertools.cycle(
        [
            ([*turns[:-1], replace(turns[-1], text=f"{text} (order {k})")], f"{text} (order {k})")
            for k in range(4000)
        ]
    )

    def settings(pretrigger: str, trigger: str, rule: str) -> Settings:
        routes: list[dict[str, Any]] = [
            {
                "id": f"r{i}",
                "name": f"Route {i}",
                "channel": f"19:r{i}@thread.tacv2",
                "pretrigger": pretrigger.format(i=i),
                "trigger": trigger.format(i=i),
            }
            for i in range(100)
        ]
        routes.append({"id": "default", "channel": "19:default@thread.tacv2"})  # required
        rules = [{"name": f"rule {i}", "when": rule.format(i=i)} for i in range(10)]
        return Settings.model_validate({"routes": routes, "escalation": {"rules": rules}})

    configs = [
        (
            "common shapes",
            settings(
                'visitor.company != ""',
                'context.domain == "D{i}"',
                'context.plan == "P{i}" && context.seats > 100 || "vip{i}" in visitor.tags',
            ),
        ),
        (
            "CEL-only, all distinct",
            settings(
                "size(visitor.company) > -{i}",
                'context.domain + "." == "D{i}."',
                "size(context.plan) > 100 + {i}",
            ),
        ),
    ]

    def med_us(fn: Callable[[], object], number: int = 200) -> float:
        runs = timeit.repeat(fn, number=number, repeat=7)
        return statistics.median(runs) / number * 1e6

    rows = [
        "Per visitor message: 100 routes, each with a CEL pretrigger and trigger (+ the required "
        "default route), and 10 escalation context rules; the message matches the 100th route "
        "and no escalation rule. Each timed call is a new message (new text, facts built "
        "afresh); detect and choose_route are the added cost of those steps (medians of 7 runs "
        "of 200 calls).",
        "",
        "| rules | facts_for | detect (phrases, rules, frustration) | choose_route | total "
        "us/message |",
        "|---|---|---|---|---|",
    ]
    for name, s in configs:
        esc = s.escalation
        facts = facts_for(s, conversation, turns, now)
        assert detect(esc, text, turns, facts) is None
        choice = choose_route(s.routes, facts)
        assert choice.route is not None and choice.route.id == "r99", choice

        def facts_only(s: Settings = s) -> object:
            turns, _ = next(messages)
            return facts_for(s, conversation, turns, now)

        def with_detect(s: Settings = s) -> object:
            turns, text = next(messages)
            return detect(s.escalation, text, turns, facts_for(s, conversation, turns, now))

        def whole(s: Settings = s) -> object:
            turns, text = next(messages)
            f = facts_for(s, conversation, turns, now)
            detect(s.escalation, text, turns, f)
            return choose_route(s.routes, f)

        t_facts, t_detect, t_all = med_us(facts_only), med_us(with_detect), med_us(whole)
        rows.append(
            f"| {name} | {t_facts:,.1f} | {t_detect - t_facts:,.1f} | "
            f"{t_all - t_detect:,.1f} | **{t_all:,.1f}** |"
        )
    return rows


# ---- section: pacing ------------------------------------------------------------------------


def simulate(messages_per_thread: dict[str, int]) -> float:
    """Fastest schedule the limits allow (greedy earliest-send), on a virtual clock."""
    from adapters.teams.pacing import TENANT_WINDOWS, THREAD_WINDOWS, SlidingWindows

    tenant = SlidingWindows(TENANT_WINDOWS)
    windows = {t: SlidingWindows(THREAD_WINDOWS) for t in messages_per_thread}
    left = dict(messages_per_thread)
    now = 0.0
    last = 0.0
    while any(left.values()):
        best_t, best = None, None
        for t, k in left.items():
            if k:
                at = max(now, windows[t].earliest(now), tenant.earliest(now))
                # Ties go to the thread with most left (plain dict order strands a tail of
                # messages in a few threads, where the per-thread windows bind).
                if best_t is None or at < best_t or (at == best_t and k > left[best]):
                    best_t, best = at, t
        assert best is not None and best_t is not None
        now = best_t
        windows[best].record(now)
        tenant.record(now)
        left[best] -= 1
        last = now
    return last


def violations(times: list[float], windows: tuple[tuple[int, float], ...]) -> int:
    """Strict half-open windows [t, t + seconds) holding more than the limit."""
    times = sorted(times)
    bad = 0
    for limit, seconds in windows:
        j = 0
        for i in range(len(times)):
            while times[i] - times[j] >= seconds:
                j += 1
            if i - j + 1 > limit:
                bad += 1
    return bad


def closest(times: list[float], windows: tuple[tuple[int, float], ...]) -> float:
    """How near a limit the times came: min over windows of t[i + limit] - t[i] - seconds
    (>= 0: legal, the margin left; < 0: over a limit)."""
    times = sorted(times)
    return min(
        (
            times[i + limit] - times[i] - seconds
            for limit, seconds in windows
            for i in range(len(times) - limit)
        ),
        default=inf,
    )


async def bench_pacing(args: argparse.Namespace) -> list[str]:
    from adapters.runtime.httpclient import HttpClient
    from adapters.storage.sqlite import SqliteStore
    from adapters.teams.auth import BotCredentials, ConnectorTokens
    from adapters.teams.connector import BotConnector
    from adapters.teams.delivery import DeliveryQueue
    from adapters.teams.pacing import TENANT_WINDOWS, THREAD_WINDOWS, SlidingWindows

    taken = [0]  # slots the queue's pacing took (its tenant windows' take())

    class CountedWindows(SlidingWindows):
        def take(self) -> None:
            super().take()
            taken[0] += 1

    rows = [
        "| case | sends | delivered in | theoretical minimum | over it "
        "| windows over a limit at arrival (strict) | closest to a limit at arrival "
        "| round trip p50 / max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as d, processes() as started:
        tmp = Path(d)
        sink = start_sink(started, tmp)
        async with aiohttp.ClientSession() as session:
            client = HttpClient()
            connector = BotConnector(
                tokens=ConnectorTokens(BotCredentials()),
                service_url=sink,
                tenant_id=TENANT,
                bot_id="bench",
                bot_name="Bench",
            )
            connector.use_client(client)
            # Per request: slots taken by its start (checked: one per request, just before it),
            # its start and its answer (monotonic, as the sink's arrival times).
            sent: list[tuple[int, float, float]] = []
            send_once = connector.send_once

            async def timed_send(method: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
                start = time.monotonic()
                try:
                    return await send_once(method, url, body)
                finally:
                    sent.append((taken[0], start, time.monotonic()))

            connector.send_once = timed_send  # type: ignore[method-assign]
            store = SqliteStore(tmp / "pacing.db")
            queue = DeliveryQueue(connector=connector, store=store)
            cases = [("1 thread, 100-message burst", 1, args.burst)]
            if not args.quick_pacing:
                cases.append(("50 threads, 1,000 messages", 50, 1000 // 50))
            for label, threads, per in cases:
                await sink_reset(session, sink)
                sent.clear()
                taken[0] = 0
                # Fresh windows per case, as separate bursts would see after a quiet hour.
                queue._windows.clear()
                queue._tenant = CountedWindows(TENANT_WINDOWS)
                ids = [
                    f"19:pace{label[:2]}{t}@thread.tacv2;messageid={t + 1}" for t in range(threads)
                ]
                t0 = time.monotonic()
                for k in range(per):
                    for tid in ids:
                        await queue.post_text(thread_id=tid, text=f"message {k}")
                await asyncio.wait_for(queue.drain(), timeout=300)
                took = time.monotonic() - t0
                st = await sink_stats(session, sink, arrivals=True)
                arrivals = st["arrivals"]
                by_thread: dict[str, list[float]] = {}
                for at, cid in arrivals:
                    by_thread.setdefault(cid, []).append(at)
                all_times = [at for at, _ in arrivals]
                strict = sum(violations(ts, THREAD_WINDOWS) for ts in by_thread.values())
                strict += violations(all_times, TENANT_WINDOWS)
                margin = min(
                    [closest(ts, THREAD_WINDOWS) for ts in by_thread.values()]
                    + [closest(all_times, TENANT_WINDOWS)]
                )
                # Every request must have taken its slot just before it, once (taken counts up
                # by one per request; a request's own start comes after its take).
                unpaced = len(sent) != taken[0]
                trips = sorted(answer - start for _, start, answer in sent)
                theory = simulate({tid: per for tid in ids})
                span = max(all_times) - min(all_times) if all_times else 0.0
                rows.append(
                    f"| {label} (text posts, not folded) | {len(arrivals)}"
                    f"{f' ({taken[0]} slots for {len(sent)} requests)' if unpaced else ''} | "
                    f"{took:.2f} s (first->last arrival {span:.2f} s) | {theory:.2f} s | "
                    f"+{took - theory:.2f} s ({(took - theory) / theory:+.1%}) | "
                    f"**{strict}** | {'none' if margin == inf else f'{margin * 1e3:+.1f} ms'} | "
                    f"{ms(pct(trips, 50))} / {ms(max(trips, default=0.0))} |"
                )
            await store.close()
            await client.close()
    rows.append(
        "\nLimits: per thread 7/1 s, 8/2 s, 60/30 s "
        "(1800/3600 s cannot be reached here); per tenant 50/1 s. Teams counts requests by "
        "arrival, so windows are checked at the stand-in's arrival times, strictly: half-open "
        "windows [t, t+W) holding more than the limit, no slack (a send exactly W after another "
        "is in a new window). The closest column is the smallest t[i+limit] - t[i] - W over all "
        "windows: the margin left (negative: over a limit). A request arrives somewhere between "
        "its start and its answer, so the queue counts a send in every window from its start "
        "and, once answered, at its answer time: the (limit+1)-th send starts a window after "
        "the answer to the limit-th before it, hence after its arrival, however the network "
        "spreads a burst (counted at start times instead, 50 sends started in one instant reach "
        "the sink over tens of ms, and the next second's burst overlaps them). It costs about "
        "one round trip per window waited for; threads take the tenant's slots in the order "
        "they became ready, so none is left with a tail to send alone. The theoretical "
        "minimum is the greedy earliest-send schedule on a virtual clock with instant "
        "requests; delivered in runs from the first enqueue to the last answer."
    )
    return rows


# ---- main -----------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}; "
        f"Python {platform.python_version()}; aiohttp {aiohttp.__version__}; "
        f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}"
    )


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "section",
        nargs="?",
        default="all",
        choices=["relay", "anchors", "idle", "rules", "pacing", "scale", "failover", "all"],
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--handoffs", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--idle", type=int, default=10_000, help="widget WebSockets to open")
    parser.add_argument("--idle-budget", type=float, default=180.0, help="max seconds to open them")
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--quick-pacing", action="store_true", help="only the one-thread burst")
    parser.add_argument("--out", type=Path, default=BENCH / "results.md")
    parser.add_argument(
        "--postgres", action="store_true", help="relay: the bot on PostgreSQL instead of SQLite"
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="relay on PostgreSQL: list the statements the database ran most (pg_stat_statements)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        nargs="+",
        default=[1],
        help="relay: app instances on one PostgreSQL database (more than 1 needs --postgres)",
    )
    parser.add_argument("--kills", type=int, default=20, help="failover: leader kill -9 trials")
    parser.add_argument("--replays", type=int, default=10, help="failover: socket-kill trials")
    args = parser.parse_args(argv)
    raise_nofile()
    if args.section == "scale":  # one instance on PostgreSQL beside the anchors, then three
        args.postgres = True
        args.instances = sorted({*args.instances, 1, 3})
    if max(args.instances) > 1 and not args.postgres:
        parser.error("several --instances share a PostgreSQL database: add --postgres")
    sections = {
        "all": ["rules", "pacing", "anchors", "relay", "idle"],
        "scale": ["anchors", "relay", "failover"],
    }.get(args.section, [args.section])

    out = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}",
        "",
        f"Load generator: bench/run.py (aiohttp, closed loop, {args.connections} keep-alive "
        f"connections, {args.duration:g} s per run), in its own process; bot, sink and "
        "anchors each in their own process, all on this machine.",
        "",
    ]
    anchors: dict[str, Any] = {}
    relay: list[dict[str, Any]] = []
    for section in sections:
        t0 = time.monotonic()
        print(f"... {section}", file=sys.stderr, flush=True)
        if section == "rules":
            rows = bench_rules(args)
        elif section == "pacing":
            rows = await bench_pacing(args)
        elif section == "anchors":
            rows, anchors = await bench_anchors(args)
        elif section == "relay":
            rows, relay = await bench_relay(args)
        elif section == "failover":
            from bench.failover import bench_failover

            rows = await bench_failover(args)
        else:
            rows = await bench_idle(args)
        out += [f"## {section} ({time.monotonic() - t0:.0f} s)", "", *rows, ""]
    if anchors and relay:
        raw = anchors["raw_fwd.py"]
        uv = anchors.get("raw_fwd.py+uvloop")
        out += [
            "## relay vs raw_fwd.py (same generator, same run)",
            "",
            "| relay direction | handoffs | messages/s | p50 | p99 | CPU/msg "
            "| messages/s vs raw_fwd on uvloop | CPU/msg vs raw_fwd on uvloop |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in relay:
            uv_cols = (
                f"{r['rate'] / uv['rps']:.2f} | {r['cpu'] / uv['cpu']:.1f}x" if uv else "n/a | n/a"
            )
            out.append(
                f"| {r['dir']} | {r['n']} | {r['rate'] / raw['rps']:.2f} | "
                f"{r['p50'] / pct(raw['lat'], 50):.1f}x | "
                f"{r['p99'] / pct(raw['lat'], 99):.1f}x | "
                f"{r['cpu'] / raw['cpu']:.1f}x | {uv_cols} |"
            )
        out += [
            "",
            "The relay's messages/s and latencies are end to end (sent -> arrived at the "
            "connector stand-in, or -> the visitor's WebSocket frame); raw_fwd.py's are its "
            "HTTP requests, each of which waits for its own forward. CPU is the bot process's "
            "(all threads) per message. The targets are the first four columns; the last two "
            "compare with the floor on the same event loop as the bot.",
            "",
        ]
    text = "\n".join(out)
    print(text)
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
