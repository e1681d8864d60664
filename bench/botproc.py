"""The bot as `python app.py` runs it (create_app, local mode, SQLite), for the benchmarks.

Same event loop as app.py (uvloop unless HANDOFF_EVENT_LOOP=asyncio). Differences from
app.py, both bench-only: the Teams rate limits of the DeliveryQueue are lifted
(unless --real-limits), so the relay's own cost is measured; and the open-files limit is raised
to the hard limit (idle-capacity test). Prints READY when listening; stops on SIGTERM/SIGINT.
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

from aiohttp import web  # noqa: E402

from adapters.auth import BotCredentials  # noqa: E402
from adapters.config_file import load_settings  # noqa: E402
from adapters.eventloop import freeze_startup_heap, new_event_loop  # noqa: E402
from adapters.http import SERVICE, create_app  # noqa: E402
from adapters.pacing import SlidingWindows  # noqa: E402
from adapters.store_memory import MemoryStore  # noqa: E402

UNLIMITED = ((10**9, 1.0),)


async def main(config: str, port: int, real_limits: bool) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    settings = load_settings(config)
    credentials = BotCredentials.from_env({})  # local mode: no MicrosoftAppId
    # BENCH_STORE=memory: the in-memory store instead of SQLite, to see what durability costs.
    store = MemoryStore() if os.environ.get("BENCH_STORE") == "memory" else None
    app = await create_app(settings, credentials, env={}, store=store)
    if not real_limits:
        delivery = app[SERVICE]._teams  # the DeliveryQueue
        delivery._thread_windows = UNLIMITED
        delivery._tenant = SlidingWindows(UNLIMITED)
    app.on_startup.append(freeze_startup_heap)  # as app.py does
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print("READY", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with asyncio.Runner(loop_factory=lambda: new_event_loop(os.environ)) as runner:
        runner.run(main(sys.argv[1], int(sys.argv[2]), "--real-limits" in sys.argv))
