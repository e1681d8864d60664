"""Composition root: load settings, build the service, run it.

python app.py [--config PATH] [--host H] [--port P] [--insecure-local-mode]
python app.py check|schema|explain ...   (adapters/ops/commands.py)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from aiohttp import web

from adapters.ops.commands import COMMANDS, DEFAULT_CONFIG
from adapters.ops.config_file import load_settings
from adapters.ops.settings import ServiceSettings
from adapters.runtime import logs
from adapters.runtime.eventloop import freeze_startup_heap, new_event_loop
from adapters.storage.backend import choose, open_store
from adapters.teams.auth import BotCredentials
from adapters.web.app import SERVICE, create_app
from adapters.web.proxies import Proxies, is_loopback
from adapters.web.server import FILES_KEPT, raise_open_files_limit
from adapters.web.server import run as serve
from bot.errors import ConfigError, StoreError

log = logging.getLogger("handoff")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Teams human-handoff bot")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML config (default {DEFAULT_CONFIG}, else embedded defaults)",
    )
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3978")))
    parser.add_argument(
        "--insecure-local-mode",
        action="store_true",
        default=os.environ.get("HANDOFF_INSECURE_LOCAL_MODE", "") == "1",
        help="without MicrosoftAppId, listen on --host even if it is not loopback (unsafe)",
    )
    return parser.parse_args(argv)


def settings_from(path: Path | None) -> tuple[ServiceSettings, Path | None]:
    if path is not None:
        return load_settings(path), path
    if DEFAULT_CONFIG.exists():
        return load_settings(DEFAULT_CONFIG), DEFAULT_CONFIG
    return ServiceSettings(), None


def main(argv: list[str]) -> int:
    command = COMMANDS.get(argv[0]) if argv else None
    if command is not None:
        return command(argv[1:])
    try:
        logs.configure(os.environ)
    except ValueError as exc:
        print(f"environment: {exc}", file=sys.stderr)
        return 2
    args = parse_args(argv)
    try:
        settings, source = settings_from(args.config)
        credentials = BotCredentials.from_env(os.environ)
        loop = new_event_loop(os.environ)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print("the configuration is invalid; nothing was started", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"environment: {exc}", file=sys.stderr)
        return 2
    try:
        backend = choose(settings.storage, os.environ)
    except StoreError as exc:
        print(f"storage: {exc}", file=sys.stderr)
        return 2
    log.info(
        "config: %s; %d route(s); store %s; event loop %s",
        source or "embedded defaults",
        len(settings.routes),
        backend,
        type(loop).__module__.split(".")[0],
    )
    host = args.host
    if credentials.local_mode:
        log.warning(
            "LOCAL MODE: MicrosoftAppId is not set, so inbound requests are NOT authenticated and "
            "outbound calls carry no token. Use this only with the Agents Playground and tests."
        )
        if not is_loopback(host) and not args.insecure_local_mode:
            log.warning(
                "LOCAL MODE listens on loopback only: %s would let anyone on the network reach "
                "an unauthenticated bot. Listening on 127.0.0.1 instead (set MicrosoftAppId, or "
                "pass --insecure-local-mode to listen on %s anyway).",
                host,
                host,
            )
            host = "127.0.0.1"
        elif not is_loopback(host):
            log.warning(
                "INSECURE: LOCAL MODE on %s: anyone who reaches this address can act as Teams "
                "and as any visitor. Never do this on a network you do not control.",
                host,
            )
    else:
        log.info(
            "bot %s (%s), tenant %s",
            credentials.app_id,
            credentials.app_type,
            credentials.tenant_id or settings.teams.tenant_id,
        )
    try:
        # On the loop that serves: a PostgreSQL store's connections belong to it.
        store = loop.run_until_complete(open_store(backend))
    except StoreError as exc:
        print(f"storage: {exc}", file=sys.stderr)
        return 2
    limits = settings.limits
    open_files = raise_open_files_limit()
    log.info("open files: up to %d (the connection cap is %d)", open_files, limits.connections)
    if open_files < limits.connections + FILES_KEPT:
        log.warning(
            "limits.connections (%d) is above what the open-files limit (%d) allows: at most "
            "%d connections are taken (raise the hard limit, ulimit -Hn, for more)",
            limits.connections,
            open_files,
            max(1, open_files - FILES_KEPT),
        )
    log.info(
        "Handoff bot listening on http://%s:%d (widget demo at /, Bot Framework endpoint at"
        " /api/messages)",
        host,
        args.port,
    )
    app: web.Application | None = None

    async def build() -> web.Application:
        nonlocal app
        app = await create_app(settings, credentials, store=store, config_path=source)
        app.on_startup.append(freeze_startup_heap)
        return app

    def live() -> ServiceSettings:
        """The settings in force (a reload replaces them)."""
        return app[SERVICE].settings if app is not None else settings

    try:
        serve(
            build,
            host,
            args.port,
            loop=loop,
            limits=lambda: live().limits,
            proxies=Proxies(lambda: live().server.trusted_proxies),
            header_timeout=limits.header_timeout_seconds,
        )
    except StoreError as exc:  # at start: the store opened, but would not keep what it must
        print(f"storage: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken, or not ours to listen on
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
