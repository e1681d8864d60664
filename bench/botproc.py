"""The bot as `python app.py` runs it (create_app, local mode, SQLite or PostgreSQL), for the
benchmarks.

Same event loop and server as app.py (uvloop unless HANDOFF_EVENT_LOOP=asyncio; connections
counted and capped). Differences from app.py, both bench-only: the Teams rate limits of the
DeliveryQueue are lifted (unless --real-limits), so the relay's own cost is measured; and the
bench's config sets its abuse limits far above the load it makes (they are still checked on
every request, so their cost is measured, but one load generator on one address never meets
them). Prints READY when listening; stops on SIGTERM/SIGINT.
Run: python bench/botproc.py CONFIG PORT [--real-limits]
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.ops.config_file import load_settings  # noqa: E402
from adapters.runtime.eventloop import freeze_startup_heap, new_event_loop  # noqa: E402
from adapters.storage.memory import MemoryStore  # noqa: E402
from adapters.teams.auth import BotCredentials  # noqa: E402
from adapters.teams.pacing import SlidingWindows  # noqa: E402
from adapters.web.app import SERVICE, create_app  # noqa: E402
from adapters.web.proxies import Proxies  # noqa: E402
from adapters.web.server import start, stop  # noqa: E402

UNLIMITED = ((10**9, 1.0),)


async def main(config: str, port: int, real_limits: bool) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    settings = load_settings(config)
    credentials = BotCredentials.from_env({})  # local mode: no MicrosoftAppId
    # BENCH_STORE=memory: the in-memory store instead of SQLite, to see what durability costs.
    store = MemoryStore() if os.environ.get("BENCH_STORE") == "memory" else None
    # BENCH_DATABASE_URL: PostgreSQL (the bench's throwaway cluster) instead of SQLite.
    url = os.environ.get("BENCH_DATABASE_URL", "")
    env = {"DATABASE_URL": url} if url else {}
    app = await create_app(settings, credentials, env=env, store=store)
    if not real_limits:
        delivery = app[SERVICE]._shared.desk._delivery  # the TeamsDesk's DeliveryQueue
        delivery._thread_windows = UNLIMITED
        delivery._tenant = SlidingWindows(UNLIMITED)
    app.on_startup.append(freeze_startup_heap)  # as app.py does
    # The server as app.py runs it: connections counted and capped, header deadlines.
    runner, server, _caps = await start(
        app,
        "127.0.0.1",
        port,
        limits=lambda: app[SERVICE].settings.limits,
        proxies=Proxies(lambda: app[SERVICE].settings.server.trusted_proxies),
        header_timeout=settings.limits.header_timeout_seconds,
    )
    print("READY", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await stop(runner, server)


if __name__ == "__main__":
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with asyncio.Runner(loop_factory=lambda: new_event_loop(os.environ)) as runner:
        runner.run(main(sys.argv[1], int(sys.argv[2]), "--real-limits" in sys.argv))
