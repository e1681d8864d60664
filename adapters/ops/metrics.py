"""Prometheus metrics, served at ``GET /metrics`` (text exposition format).

Each instance counts what it did itself: a handoff's start, join or end is counted by the
instance that handled that event, a relayed message by the one that relayed it, and the Teams
requests, outbox and inbox by the leader, which sends and handles them. Prometheus scrapes every
instance and sums (``sum by (route) (rate(handoff_started_total[5m]))``); the gauges of an
instance that does not lead are 0.

What is counted, by name (counters end in ``_total`` when scraped):

- ``handoff_started{route}``, ``handoff_finished{route,outcome}`` (outcome: ``handled`` by a
  specialist, ``cancelled`` by the visitor before anyone joined, ``declined`` by a specialist,
  ``abandoned`` idle before anyone joined, ``expired`` nobody joined in time, ``failed``: the
  thread could not be opened), ``handoff_join_timeouts{route}``;
- ``handoff_time_to_join_seconds{route}`` and ``handoff_handle_seconds{route}`` (histograms);
- ``handoff_messages_relayed{direction}`` (``visitor_to_teams``, ``teams_to_visitor``);
- ``handoff_teams_requests{outcome}`` (``sent``, ``throttled``: a 429, ``failed``: retried
  later, ``refused``: dropped), ``handoff_teams_retries``, ``handoff_teams_request_seconds``;
- ``handoff_config_reloads{result}`` (``applied``, ``rejected``);
- gauges: ``handoff_outbox_depth`` (posts waiting for Teams), ``handoff_inbox_lag`` (visitor
  activities stored and not yet handled), ``handoff_websockets_open``, ``handoff_leader``.

No label carries a visitor's or a specialist's identity or text: routes and outcomes only.

Access: with ``METRICS_TOKEN`` in the environment, a scrape must send it as a bearer token
(``Authorization: Bearer ...``); without one, ``/metrics`` answers only in local mode (the
bot with no Microsoft credentials, on a developer's machine), else 404 with what to set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from adapters.web.middleware import bearer_only
from bot.model import Handoff, HandoffState, Party
from bot.ports import Direction

# Seconds: a specialist joins in seconds to an hour; a conversation lasts minutes to hours.
JOIN_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
HANDLE_BUCKETS = (30.0, 60.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)
REQUEST_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def outcome(handoff: Handoff) -> str:
    """How a handoff that is no longer open came out (``handoff_finished``'s label)."""
    if handoff.state is HandoffState.EXPIRED:
        return "expired"
    if handoff.state is HandoffState.FAILED:
        return "failed"
    if handoff.specialist is not None:
        return "handled"
    return {Party.VISITOR: "cancelled", Party.SPECIALIST: "declined"}.get(
        handoff.ended_by or Party.SYSTEM, "abandoned"
    )


@dataclass
class Gauges:
    """Where the gauges read their figures, when scraped (each a quick look at memory)."""

    outbox_depth: Callable[[], int] = lambda: 0
    inbox_lag: Callable[[], int] = lambda: 0
    websockets_open: Callable[[], int] = lambda: 0
    leader: Callable[[], bool] = lambda: False


class _GaugeCollector:
    """The gauges, read from ``Gauges`` at each scrape."""

    def __init__(self, gauges: Gauges) -> None:
        self._gauges = gauges

    def describe(self) -> list[Metric]:
        return []  # not known before a scrape (so registering reads nothing)

    def collect(self) -> Iterator[Metric]:
        g = self._gauges
        yield GaugeMetricFamily(
            "handoff_outbox_depth", "Posts and card updates waiting for Teams.", g.outbox_depth()
        )
        yield GaugeMetricFamily(
            "handoff_inbox_lag", "Visitor activities stored and not yet handled.", g.inbox_lag()
        )
        yield GaugeMetricFamily(
            "handoff_websockets_open",
            "Widget WebSockets open on this instance.",
            g.websockets_open(),
        )
        yield GaugeMetricFamily(
            "handoff_leader", "1 while this instance leads (sends into Teams).", int(g.leader())
        )


class Metrics:
    """The service's metrics, in a registry of its own (several apps in one process, as in the
    tests, do not mix); an ``Observer`` of the domain, and what the edges report to."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._started = Counter(
            "handoff_started", "Handoffs queued for a specialist.", ["route"], registry=r
        )
        self._finished = Counter(
            "handoff_finished", "Handoffs that ended, by outcome.", ["route", "outcome"], registry=r
        )
        self._join_timeouts = Counter(
            "handoff_join_timeouts",
            "Handoffs nobody joined within the route's join timeout.",
            ["route"],
            registry=r,
        )
        self._time_to_join = Histogram(
            "handoff_time_to_join_seconds",
            "From a handoff's start until a specialist joined.",
            ["route"],
            buckets=JOIN_BUCKETS,
            registry=r,
        )
        self._handle_time = Histogram(
            "handoff_handle_seconds",
            "From a specialist's join until the handoff ended.",
            ["route"],
            buckets=HANDLE_BUCKETS,
            registry=r,
        )
        self._relayed = Counter(
            "handoff_messages_relayed", "Messages relayed, by direction.", ["direction"], registry=r
        )
        self._requests = Counter(
            "handoff_teams_requests",
            "Requests to the Bot Connector, by outcome.",
            ["outcome"],
            registry=r,
        )
        self._retries = Counter(
            "handoff_teams_retries", "Requests to the Bot Connector sent again.", registry=r
        )
        self._request_seconds = Histogram(
            "handoff_teams_request_seconds",
            "How long the Bot Connector took to answer a post or an update.",
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self._reloads = Counter(
            "handoff_config_reloads", "Config reloads, by result.", ["result"], registry=r
        )
        for direction in Direction:  # shown at 0 from the start, so rates work at once
            self._relayed.labels(direction.value)
        for result in ("sent", "throttled", "failed", "refused"):
            self._requests.labels(result)
        for result in ("applied", "rejected"):
            self._reloads.labels(result)
        self.gauges = Gauges()
        r.register(_GaugeCollector(self.gauges))

    # ---- the domain (``bot.ports.Observer``) ------------------------------------------------

    def handoff_changed(self, before: Handoff | None, after: Handoff) -> None:
        route = after.route_id
        if before is None:
            self._started.labels(route).inc()
            if not after.state.is_open:  # born finished (it never is today)
                self._finished.labels(route, outcome(after)).inc()
            return
        if before.joined_at is None and after.joined_at is not None:
            waited = (after.joined_at - after.created_at).total_seconds()
            self._time_to_join.labels(route).observe(max(0.0, waited))
        if before.timed_out_at is None and after.timed_out_at is not None:
            self._join_timeouts.labels(route).inc()
        if before.state.is_open and not after.state.is_open:
            self._finished.labels(route, outcome(after)).inc()
            if after.joined_at is not None and after.ended_at is not None:
                handled = (after.ended_at - after.joined_at).total_seconds()
                self._handle_time.labels(route).observe(max(0.0, handled))

    def relayed(self, direction: Direction) -> None:
        self._relayed.labels(direction.value).inc()

    # ---- the edges --------------------------------------------------------------------------

    def teams_request(self, result: str, seconds: float | None = None) -> None:
        """A request to the Bot Connector came back (``result``: see the module's list)."""
        self._requests.labels(result).inc()
        if result == "failed" or result == "throttled":
            self._retries.inc()
        if seconds is not None:
            self._request_seconds.observe(seconds)

    def config_reloaded(self, applied: bool) -> None:
        self._reloads.labels("applied" if applied else "rejected").inc()

    # ---- the endpoint ------------------------------------------------------------------------

    def handler(
        self, env: Mapping[str, str], local_mode: bool
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """``GET /metrics``, guarded as the module says."""
        refused = bearer_only(env.get("METRICS_TOKEN", ""), local_mode, "metrics", "METRICS_TOKEN")

        async def serve(request: web.Request) -> web.Response:
            denied = refused(request)
            if denied is not None:
                return denied
            body = generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        return serve
