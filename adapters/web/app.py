"""The aiohttp application: every route, and the long-lived resources behind them."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web

from adapters.directline.channel import DirectLineChannel
from adapters.directline.streams import ConversationStreams
from adapters.directline.tokens import TokenSigner
from adapters.ops.reload import ConfigReloader
from adapters.runtime import jsonio
from adapters.runtime.clock import utc_now
from adapters.runtime.failures import FAILURES, REFUSALS, bounded, clip
from adapters.runtime.httpclient import HttpClient
from adapters.runtime.retry import backoff
from adapters.storage.contract import Store
from adapters.storage.sqlite import SqliteStore
from adapters.teams.auth import BotCredentials, ConnectorTokens
from adapters.teams.connector import BotConnector
from adapters.teams.delivery import DeliveryQueue
from adapters.teams.desk import TeamsDesk
from adapters.teams.endpoint import TeamsEndpoint
from adapters.teams.inbound import TeamsHandoffBot
from bot.config import Settings
from bot.errors import StoreError
from bot.rules.routing import prepare
from bot.usecases import HandoffService

log = logging.getLogger(__name__)

WIDGET_DIR = Path(__file__).parent.parent / "directline" / "widget"
LOCAL_BOT_ID = "local-handoff-bot"
TOKEN_KEY_META = "directline.token_key"
PURGE_PAUSE = 0.01  # seconds between retention steps, for live traffic
# Seconds the start waits for recovery's first attempt (should it fail or take longer, it goes
# on in the background while the service serves).
STARTUP_RECOVERY = 0.5
FIRST_RETENTION_PASS = 60.0  # seconds after start
# Teams redelivers an activity within minutes when a turn failed; its key is kept this long.
DELIVERY_KEYS_KEPT = timedelta(days=1)


SERVICE = web.AppKey("service", HandoffService)
STORE = web.AppKey("store", Store)  # type: ignore[type-abstract]
DIRECTLINE = web.AppKey("directline", DirectLineChannel)
TEAMS = web.AppKey("teams", TeamsEndpoint)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


RETRY_AFTER = "2"  # seconds, on a 503 for a storage fault


def _service_error(status: int, code: str, message: str) -> web.Response:
    """The error shape of both channels (Direct Line's; the Bot Framework reads the status)."""
    headers = {"Retry-After": RETRY_AFTER} if status == 503 else None
    return jsonio.response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def _guarded(store: Store) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Answer only once the request's writes are committed. A storage fault answers 503 with
    Retry-After (nothing of the request was kept: retrying is safe); anything else unexpected
    is logged (its traceback once a minute) and answered 500, without internals."""

    @web.middleware
    async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
            # Only this request's own writes: another's failed commit is not its failure.
            await store.flush(reads=False)
            return response
        except web.HTTPException:
            raise
        except ConnectionError as exc:  # the client went away: not our failure, and no one reads
            REFUSALS.log(
                log,
                logging.INFO,
                ("gone", type(exc).__name__),
                "%s %s: the client went away (%s)",
                request.method,
                clip(request.path),
                type(exc).__name__,
            )
            if response is not None and response.prepared:
                return response
            return _service_error(400, "BadRequest", "the connection was lost")
        except StoreError as exc:
            log.warning("%s %s answered 503: %s", request.method, request.path, bounded(exc))
            if response is not None and response.prepared:
                return response  # a stream, already under way: it ends as it can
            return _service_error(
                503, "ServiceUnavailable", "storage is unavailable; nothing was kept, try again"
            )
        except Exception as exc:
            FAILURES.failed(log, exc, "unhandled error on %s %s", request.method, request.path)
            if response is not None and response.prepared:
                return response
            return _service_error(500, "ServiceError", "something went wrong; it has been logged")

    return guarded


async def _token_key(store: Store, env: Mapping[str, str]) -> bytes:
    """Direct Line tokens must outlive a restart: the key comes from env or is kept in the store
    (committed before any token is signed with it)."""
    from_env = env.get("DIRECTLINE_TOKEN_KEY", "")
    if from_env:
        return from_env.encode()
    key = await store.set_meta_once(key=TOKEN_KEY_META, value=secrets.token_urlsafe(32))
    await store.flush()
    return key.encode()


async def create_app(
    settings: Settings,
    credentials: BotCredentials,
    *,
    store: Store | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = utc_now,
    config_path: Path | None = None,
    reload_interval: float = 2.0,
    tokens: ConnectorTokens | None = None,
    sweep_interval: float = 15.0,
    retention_interval: float = 3600.0,
) -> web.Application:
    """Build the whole service; resources are closed by the app's cleanup."""
    env = os.environ if env is None else env
    prepare(settings)  # what the rules need, before the first message rather than during it
    store = store or SqliteStore(settings.storage.sqlite_path)
    connector = BotConnector(
        tokens=tokens or ConnectorTokens(credentials),
        service_url=settings.teams.service_url,
        tenant_id=settings.teams.tenant_id,
        bot_id=credentials.app_id or LOCAL_BOT_ID,
        bot_name=settings.bot.name,
    )
    delivery = DeliveryQueue(connector=connector, store=store)

    async def thread_gone(thread_id: str, reason: str) -> None:
        await service.thread_gone(thread_id=thread_id, reason=reason, now=clock())

    delivery.on_thread_gone = thread_gone
    streams = ConversationStreams(store, clock)
    service = HandoffService(
        settings=settings,
        store=store,
        desk=TeamsDesk(delivery),
        visitors=streams,
        new_id=lambda: secrets.token_hex(5),
    )
    directline = DirectLineChannel(
        service=service,
        streams=streams,
        signer=TokenSigner(await _token_key(store, env)),
        widget_secret=env.get("DIRECTLINE_SECRET", ""),
        local_mode=credentials.local_mode,
        clock=clock,
        teams_backlog=delivery.backlog,
    )
    # Workers waiting out a backoff after a storage fault go again as soon as commits work.
    store.on_recovered.append(directline.inbox.retry_now)
    store.on_recovered.append(delivery.retry_now)
    teams_endpoint = TeamsEndpoint(
        credentials=credentials,
        bot=TeamsHandoffBot(
            service=service,
            connector=delivery,
            store=store,
            clock=clock,
            on_service_url=connector.learn_service_url,
        ),
        tenant_id=lambda: service.settings.teams.tenant_id,
        body_timeout=lambda: service.settings.limits.body_timeout_seconds,
        local_mode=credentials.local_mode,
    )

    def apply(new: Settings) -> None:
        if new.storage.sqlite_path != service.settings.storage.sqlite_path:
            log.warning("storage.sqlite_path changed: it takes effect at the next restart")
        service.settings = new
        connector.configure(service_url=new.teams.service_url, tenant_id=new.teams.tenant_id)

    reloader = ConfigReloader(config_path, apply, reload_interval) if config_path else None

    async def resources(app: web.Application) -> AsyncIterator[None]:
        # One pooled client for every outbound connector call, for the process lifetime.
        client = HttpClient(timeout=30, connect_timeout=10, limit_per_host=100)
        connector.use_client(client)
        try:

            async def recover() -> None:
                # What a crash interrupted: activities never handled (first: quick, and before
                # new traffic wakes their conversations), posts never sent, threads never opened.
                await directline.inbox.resume()
                await delivery.resume()
                await service.recover(now=clock())

            recovering = asyncio.create_task(_until_done(recover), name="recovery")
            await asyncio.wait([recovering], timeout=STARTUP_RECOVERY)  # a first attempt
            sweeper = asyncio.create_task(_sweep(service, clock, sweep_interval), name="sweeper")
            retention = asyncio.create_task(
                _retain(service, store, directline, clock, retention_interval), name="retention"
            )
            watcher = None
            if reloader is not None:
                watcher = asyncio.create_task(reloader.watch(), name="config-watch")
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    asyncio.get_running_loop().add_signal_handler(
                        signal.SIGHUP, reloader.reload, "on SIGHUP"
                    )
            yield
            recovering.cancel()
            sweeper.cancel()
            retention.cancel()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            await directline.close()
            await directline.inbox.drain()
            await delivery.close()
        finally:
            await client.close()
        await store.close()

    # CORS outermost, so even an error response can be read by the widget's browser.
    app = web.Application(
        middlewares=[directline.cors, _guarded(store)], client_max_size=1024 * 1024
    )
    # Shutdown waits for running handlers, and a widget's socket never ends by itself: close
    # them first (1001, "going away"; the widget reconnects to the next process).
    app.on_shutdown.append(lambda _app: directline.close())
    app[SERVICE] = service
    app[STORE] = store
    app[DIRECTLINE] = directline
    app[TEAMS] = teams_endpoint
    app.cleanup_ctx.append(resources)
    app.router.add_post("/api/messages", teams_endpoint.handle)
    directline.add_routes(app)
    app.router.add_get("/", _index)
    app.router.add_get("/healthz", _health)
    app.router.add_get("/widget/{name}", _widget_file)
    return app


async def _until_done(job: Callable[[], Awaitable[None]], first_retry: float = 1.0) -> None:
    """Run ``job`` until it succeeds once: a store fault at start must neither keep the
    service down nor leave what a crash interrupted for the next restart."""
    for attempt in itertools.count(1):
        try:
            await job()
            return
        except Exception as exc:
            delay = backoff(attempt, first_retry)
            FAILURES.failed(log, exc, "recovery after the restart failed; again in %.0f s", delay)
        await asyncio.sleep(delay)


async def _sweep(service: HandoffService, clock: Callable[[], datetime], every: float) -> None:
    """Join timeouts and inactivity: checked every ``every`` seconds."""
    while True:
        await asyncio.sleep(every)
        try:
            await service.sweep(now=clock())
        except Exception as exc:  # the sweeper must outlive any one bad handoff
            FAILURES.failed(log, exc, "sweep failed")


async def _retain(
    service: HandoffService,
    store: Store,
    directline: DirectLineChannel,
    clock: Callable[[], datetime],
    every: float,
) -> None:
    """Retention (``storage.retention_days``, read at each pass so a reload applies): a first
    pass soon after start, then one every ``every`` seconds."""
    told: object = ...
    delay = min(every, FIRST_RETENTION_PASS)
    while True:
        await asyncio.sleep(delay)
        delay = every
        days = service.settings.storage.retention_days
        if days != told:
            told = days
            if days is None:
                log.info("retention off: conversations are kept (storage.retention_days)")
            else:
                log.info(
                    "retention: conversations idle for %d days are deleted"
                    " (storage.retention_days)",
                    days,
                )
        try:
            old_keys = functools.partial(
                store.forget_deliveries, before=clock() - DELIVERY_KEYS_KEPT
            )
            await _in_steps(store, old_keys)
            if days is not None:
                await purge_idle(store, directline, before=clock() - timedelta(days=days))
        except Exception as exc:  # the next pass tries again; nothing is deleted half-way
            FAILURES.failed(log, exc, "retention pass failed")


async def _in_steps(store: Store, step: Callable[[], Awaitable[bool]]) -> None:
    """Run a store's step until it says it is done, committing each, live traffic between."""
    while True:
        done = await step()
        await store.flush()
        if done:
            return
        await asyncio.sleep(PURGE_PAUSE)


async def purge_idle(store: Store, directline: DirectLineChannel, *, before: datetime) -> int:
    """Delete every conversation idle since before ``before`` that no widget has open, in
    small steps with live traffic in between; returns how many."""
    total = 0

    async def step() -> bool:
        nonlocal total
        purged, done = await store.purge(before=before, keep=directline.connected())
        directline.forget(purged)
        total += len(purged)
        return done

    await _in_steps(store, step)
    if total:
        log.info(
            "retention: deleted %d conversation(s) idle since before %s",
            total,
            before.isoformat(timespec="seconds"),
        )
    return total


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WIDGET_DIR / "index.html", headers={"Cache-Control": "no-cache"})


# The widget's files, known by name: a request path never reaches the filesystem.
WIDGET_FILES = {p.name: p for p in WIDGET_DIR.iterdir() if p.is_file()}


async def _widget_file(request: web.Request) -> web.StreamResponse:
    path = WIDGET_FILES.get(request.match_info["name"])
    if path is None:
        return _service_error(404, "NotFound", "no such file")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def _health(request: web.Request) -> web.Response:
    """Alive, and whether the store works (a failing one is named, with a 503)."""
    problem = await request.app[STORE].health()
    if problem is None:
        return jsonio.response({"status": "ok", "store": "ok"})
    return jsonio.response(
        {"status": "failing", "store": problem},
        status=503,
        headers={"Retry-After": RETRY_AFTER},
    )
