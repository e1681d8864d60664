"""The HTTP server's settings: the ``server`` section, its part of ``limits``, and ``Rate``
(what a token bucket allows, for every rate limit in the file)."""

from __future__ import annotations

from pydantic import Field, IPvAnyNetwork

from bot.config import ConfigModel


class Rate(ConfigModel):
    """A token bucket: at most ``burst`` at once, refilled at ``per_minute``."""

    # At least one every 100 minutes (a smaller rate is a typo, and its waits overflow).
    per_minute: float = Field(ge=0.01, le=1_000_000)
    burst: int = Field(ge=1, le=1_000_000)


class ServerSettings(ConfigModel):
    """The HTTP server."""

    # Reverse proxies (addresses or networks) whose X-Forwarded-For, -Proto and -Host are
    # believed; from anyone else those headers are ignored.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    # On SIGTERM: seconds the instance stays up but unready (``/readyz`` 503), so that a load
    # balancer stops sending it traffic before its widget sockets close. 0: stop at once.
    drain_seconds: float = Field(default=0, ge=0, le=300)


class ServerLimits(ConfigModel):
    """The server's part of the ``limits`` section: connections and read deadlines."""

    # Open connections (HTTP and WebSocket), in all and from one client address.
    connections: int = Field(default=10_000, ge=1, le=1_000_000)
    connections_per_ip: int = Field(default=256, ge=1, le=1_000_000)
    # A request's headers must arrive within this many seconds of the connection (or of the
    # previous answer on it), its body within ``body_timeout_seconds``.
    header_timeout_seconds: float = Field(default=15, gt=0, le=600)
    body_timeout_seconds: float = Field(default=30, gt=0, le=600)
