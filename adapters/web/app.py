"""The aiohttp application: every route, and the long-lived resources behind them."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path

from aiohttp import web

from adapters.directline.channel import DirectLineChannel
from adapters.directline.streams import ConversationStreams
from adapters.directline.tokens import TokenSigner
from adapters.ops.metrics import Metrics
from adapters.ops.reload import ConfigReloader
from adapters.ops.settings import ServiceSettings
from adapters.ops.weekly import weekly_reports
from adapters.runtime import jsonio
from adapters.runtime.clock import utc_now
from adapters.runtime.httpclient import HttpClient
from adapters.runtime.leadership import Leadership, Solo
from adapters.storage.backend import choose, open_store
from adapters.storage.contract import SharedStore, Store
from adapters.teams.auth import BotCredentials, ConnectorTokens
from adapters.teams.cards import Card
from adapters.teams.connector import BotConnector
from adapters.teams.delivery import DeliveryQueue
from adapters.teams.desk import TeamsDesk
from adapters.teams.endpoint import TeamsEndpoint
from adapters.teams.inbound import TeamsHandoffBot
from adapters.web import transcripts
from adapters.web.housekeeping import LeaderDuties, retain, sweep, watch
from adapters.web.lifecycle import closing, on_signal, running
from adapters.web.middleware import guarded, service_error
from adapters.web.readiness import READINESS, Readiness
from bot.rules.routing import prepare
from bot.usecases import HandoffService

log = logging.getLogger(__name__)

WIDGET_DIR = Path(__file__).parent.parent / "directline" / "widget"
LOCAL_BOT_ID = "local-handoff-bot"
TOKEN_KEY_META = "directline.token_key"
# Seconds the start waits for recovery's first attempt (should it fail or take longer, it goes
# on in the background while the service serves).
STARTUP_RECOVERY = 0.5


SERVICE = web.AppKey[HandoffService[ServiceSettings]]("service")
STORE = web.AppKey("store", Store)
DIRECTLINE = web.AppKey("directline", DirectLineChannel)
TEAMS = web.AppKey("teams", TeamsEndpoint)
METRICS = web.AppKey("metrics", Metrics)


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
    settings: ServiceSettings,
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
    # SQLite unless DATABASE_URL (or storage.backend) says PostgreSQL.
    store = store or await open_store(choose(settings.storage, env))
    connector = BotConnector(
        tokens=tokens or ConnectorTokens(credentials),
        service_url=settings.teams.service_url,
        tenant_id=settings.teams.tenant_id,
        bot_id=credentials.app_id or LOCAL_BOT_ID,
        bot_name=settings.bot.name,
    )
    # One process leads (sends into Teams, handles the inbox, runs the timers): on SQLite the
    # only one; on a store several share, the one elected.
    shared = store if isinstance(store, SharedStore) else None
    leadership: Leadership = (
        Solo() if shared is None else shared.leadership(f"{socket.gethostname()}:{os.getpid()}")
    )
    delivery = DeliveryQueue(
        connector=connector,
        store=store,
        fence=lambda: leadership.leading,
        shared=shared is not None,
        active=False,
        history=None
        if shared is None
        else lambda thread, within: shared.recent_sends(thread_id=thread, within=within),
    )

    async def thread_gone(thread_id: str, reason: str) -> None:
        await service.thread_gone(thread_id=thread_id, reason=reason, now=clock())

    delivery.on_thread_gone = thread_gone
    metrics = Metrics()
    delivery.watch = metrics.teams_request
    streams = ConversationStreams(store, clock)
    service = HandoffService(
        settings=settings,
        store=store,
        desk=TeamsDesk(delivery),
        visitors=streams,
        new_id=lambda: secrets.token_hex(5),
        locks=None if shared is None else shared.conversation_locks(),
        observer=metrics,
    )
    directline = DirectLineChannel(
        service=service,
        streams=streams,
        signer=TokenSigner(await _token_key(store, env)),
        widget_secret=env.get("DIRECTLINE_SECRET", ""),
        local_mode=credentials.local_mode,
        clock=clock,
        teams_backlog=delivery.backlog,
        fence=lambda: leadership.leading,
        leads=False,
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

    def apply(new: ServiceSettings) -> None:
        old = service.settings.storage
        if (new.storage.backend, new.storage.sqlite_path) != (old.backend, old.sqlite_path):
            log.warning("storage.backend or .sqlite_path changed: it takes effect at restart")
        service.settings = new
        connector.configure(service_url=new.teams.service_url, tenant_id=new.teams.tenant_id)

    reloader = ConfigReloader(config_path, apply, reload_interval) if config_path else None
    if reloader is not None:
        reloader.on_outcome = metrics.config_reloaded
    metrics.gauges.outbox_depth = delivery.depth
    metrics.gauges.inbox_lag = directline.inbox.waiting
    metrics.gauges.websockets_open = directline.sockets_open
    metrics.gauges.leader = lambda: leadership.leading

    async def http_client(_app: web.Application) -> AsyncIterator[None]:
        # One pooled client for every outbound connector call, for the process lifetime.
        client = HttpClient(timeout=30, connect_timeout=10, limit_per_host=100)
        connector.use_client(client)
        yield
        await client.close()

    async def recover() -> None:
        # What a crash interrupted: activities never handled (first: quick, and before new
        # traffic wakes their conversations), posts never sent, threads never opened.
        await directline.inbox.resume()
        await delivery.resume()
        await service.recover(now=clock())

    async def post_report(channel: str, card: Card, text: str) -> None:
        await delivery.open_thread(channel_id=channel, card=card, text=text)

    duties = LeaderDuties(
        inbox=directline.inbox,
        delivery=delivery,
        recover=recover,
        jobs={
            "sweeper": lambda: sweep(service, clock, sweep_interval),
            "watch": lambda: watch(directline.inbox, delivery),
            "retention": lambda: retain(service, store, directline, clock, retention_interval),
            "weekly-report": lambda: weekly_reports(
                lambda: service.settings, store, post_report, clock
            ),
        },
    )

    def appended_elsewhere(cid: str, seq: int) -> None:
        streams.committed(cid, seq)  # the sockets held here
        directline.inbox.committed_elsewhere(cid, seq)  # handled here if this process leads

    def resync() -> None:
        streams.resync()
        duties.resync()

    async def activity_feed(_app: web.Application) -> AsyncIterator[None]:
        # Several instances on one database (PostgreSQL): what another appends reaches the
        # sockets held here, and the leader's inbox; what another queues for Teams, the
        # leader's delivery. A store of one process (memory, SQLite) has nothing to follow.
        if shared is None:
            yield
            return
        shared.follow(on_append=appended_elsewhere, on_resync=resync, on_queued=delivery.queued)
        yield
        await shared.unfollow()

    async def leading(_app: web.Application) -> AsyncIterator[None]:
        # The start waits a little for a first election and recovery (on its own, at once),
        # then goes on serving while recovery goes on or another process leads.
        campaign = asyncio.create_task(leadership.campaign(duties), name="leadership")
        recovered = asyncio.create_task(duties.recovered.wait())
        await asyncio.wait(
            [campaign, recovered], timeout=STARTUP_RECOVERY, return_when=asyncio.FIRST_COMPLETED
        )
        recovered.cancel()
        if campaign.done():
            campaign.result()  # it could not start the duties: the start fails, loudly
        try:
            yield
        finally:
            campaign.cancel()  # steps down: what is under way finishes, then another leads
            await asyncio.wait([campaign])

    # CORS outermost, so even an error response can be read by the widget's browser.
    app = web.Application(
        middlewares=[directline.cors, guarded(store)], client_max_size=1024 * 1024
    )
    # Shutdown waits for running handlers, and a widget's socket never ends by itself: close
    # them first (1001, "going away"; the widget reconnects to the next process).
    app.on_shutdown.append(lambda _app: directline.close())
    app[SERVICE] = service
    app[STORE] = store
    app[DIRECTLINE] = directline
    app[TEAMS] = teams_endpoint
    app[METRICS] = metrics
    # One cleanup context per resource. aiohttp starts them in this order and, at cleanup,
    # closes the ones that started in reverse: leadership first (the timers stop, what the
    # inbox and delivery have under way finishes, and another process may lead), then the
    # feed of other instances' writes, Direct Line (its sockets, its inbox), the Teams queue,
    # the HTTP client it sends through, and last the store everything writes to.
    app.cleanup_ctx.extend(
        [
            closing(store.close),
            http_client,
            closing(delivery.close),
            closing(directline.inbox.drain),
            closing(directline.close),
            activity_feed,
            leading,
        ]
    )
    if reloader is not None:
        app.cleanup_ctx.append(running("config-watch", reloader.watch))
        app.cleanup_ctx.append(on_signal(signal.SIGHUP, lambda: reloader.reload("on SIGHUP")))
    app.router.add_post("/api/messages", teams_endpoint.handle)
    directline.add_routes(app)
    app.router.add_get("/", _index)
    app.router.add_get("/healthz", _health)
    readiness = Readiness(store.health, lambda: service.settings.server.drain_seconds)
    app[READINESS] = readiness
    app.router.add_get("/readyz", readiness.handle)
    app.router.add_get("/metrics", metrics.handler(env, credentials.local_mode))
    app.router.add_get(
        "/api/transcripts/{id}", transcripts.handler(store, env, credentials.local_mode)
    )
    app.router.add_get("/widget/{name}", _widget_file)
    return app


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WIDGET_DIR / "index.html", headers={"Cache-Control": "no-cache"})


# The widget's files, known by name: a request path never reaches the filesystem.
WIDGET_FILES = {p.name: p for p in WIDGET_DIR.iterdir() if p.is_file()}


async def _widget_file(request: web.Request) -> web.StreamResponse:
    path = WIDGET_FILES.get(request.match_info["name"])
    if path is None:
        return service_error(404, "NotFound", "no such file")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def _health(request: web.Request) -> web.Response:
    """Alive: 200 while the process serves, whatever its store does (a liveness probe must not
    restart every replica while the database is away; ``/readyz`` takes them out of rotation
    instead). The body names a failing store."""
    problem = await request.app[STORE].health()
    if problem is None:
        return jsonio.response({"status": "ok", "store": "ok"})
    return jsonio.response({"status": "degraded", "store": problem})
