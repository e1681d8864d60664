"""The weekly report, posted into a Teams channel as a card (``reports.weekly`` in the config):
the figures of ``app.py report`` for the week before, each week at the same hour, by the
instance that leads (once per week across instances; a service that was down at the hour
posts when it is back, within a day).

    reports:
      weekly:
        channel: "19:...@thread.tacv2"   # or the link from "Copy link to channel"
        day: mon
        time: "09:00"
        timezone: Europe/Berlin
        routes: []                        # only these routes (none named: all)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from adapters.ops.report import OUTCOMES, Figures, Report, build, duration, percentile
from adapters.runtime.clock import iso
from adapters.runtime.failures import FAILURES
from adapters.storage.contract import Store
from adapters.teams.cards import Card, envelope
from adapters.teams.links import parse_channel
from bot.config import ConfigModel

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CATCH_UP = timedelta(days=1)  # a report missed (the service was down) is posted this late
POLL = 60.0  # seconds between looks at the clock
META = "report.weekly"  # + the scheduled time: posted (once across instances)


class WeeklyReport(ConfigModel):
    """Where and when the weekly report is posted."""

    channel: str
    day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    time: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "UTC"
    routes: list[str] = Field(default_factory=list)

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        return parse_channel(value).channel_id

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


class ReportSettings(ConfigModel):
    """Reports for the team lead (``app.py report`` needs none of this)."""

    weekly: WeeklyReport | None = None


def last_due(weekly: WeeklyReport, now: datetime) -> datetime:
    """The latest scheduled time at or before ``now`` (in the report's zone)."""
    zone = ZoneInfo(weekly.timezone)
    local = now.astimezone(zone)
    hour, minute = (int(part) for part in weekly.time.split(":"))
    back = (local.weekday() - DAYS.index(weekly.day)) % 7
    due = datetime.combine(local.date() - timedelta(days=back), time(hour, minute), zone)
    return due if due <= local else due - timedelta(days=7)


def _facts(figures: Figures) -> list[Card]:
    outcomes = ", ".join(
        f"{name} {figures.outcomes[name]}" for name in OUTCOMES if figures.outcomes.get(name)
    )
    share = f" ({figures.share_joined:.0%})" if figures.share_joined is not None else ""
    hours = ", ".join(f"{h:02d}:00 ({n})" for h, n in figures.busiest())
    facts = [
        ("Handoffs", str(figures.handoffs)),
        ("Joined", f"{figures.joined}{share}"),
        (
            "Time to join",
            f"{duration(percentile(figures.time_to_join, 50))} median, "
            f"{duration(percentile(figures.time_to_join, 90))} p90",
        ),
        (
            "Handle time",
            f"{duration(percentile(figures.handle_time, 50))} median, "
            f"{duration(percentile(figures.handle_time, 90))} p90",
        ),
        ("Outcomes", outcomes or "-"),
        ("Busiest hours", hours or "-"),
    ]
    return [{"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in facts]}]


def report_card(report: Report, titles: dict[str, str] | None = None) -> Card:
    """The week's figures: all routes first, then each route."""
    titles = titles or {}
    zone = report.zone
    body: list[Card] = [
        {
            "type": "TextBlock",
            "text": "Handoffs last week",
            "size": "Large",
            "weight": "Bolder",
            "wrap": True,
        },
        {
            "type": "TextBlock",
            "text": f"{report.since.astimezone(zone):%a %d %b %H:%M} to "
            f"{report.until.astimezone(zone):%a %d %b %H:%M} ({zone.key})",
            "isSubtle": True,
            "wrap": True,
            "spacing": "None",
        },
    ]
    for figures in [report.total, *report.routes.values()]:
        name = "All routes" if figures is report.total else titles.get(figures.route, figures.route)
        body.append(
            {
                "type": "TextBlock",
                "text": name,
                "weight": "Bolder",
                "wrap": True,
                "spacing": "Medium",
            }
        )
        body += _facts(figures)
    return envelope(body)


Post = Callable[[str, Card, str], Awaitable[Any]]


async def post_if_due(
    weekly: WeeklyReport,
    store: Store,
    post: Post,
    now: datetime,
    titles: dict[str, str] | None = None,
) -> bool:
    """Post the report last due, unless it was posted or is more than a day late; True when
    posted. The mark is kept after the post: a crash in between posts it twice, never zero."""
    due = last_due(weekly, now)
    key = f"{META}:{weekly.channel}:{due.isoformat()}"
    if now - due > CATCH_UP or await store.get_meta(key=key) is not None:
        return False
    since = due - timedelta(days=7)
    handoffs = await store.handoffs_created(since=since, until=due)
    report = build(handoffs, since, due, ZoneInfo(weekly.timezone), weekly.routes)
    summary = f"Handoffs last week: {report.total.handoffs}"
    await post(weekly.channel, report_card(report, titles), summary)
    await store.set_meta(key=key, value=iso(now))
    await store.flush()
    log.info("weekly report for %s posted (%d handoffs)", due.date(), report.total.handoffs)
    return True


async def weekly_reports(
    settings: Callable[[], Any],
    store: Store,
    post: Post,
    clock: Callable[[], datetime],
    poll: float = POLL,
) -> None:
    """The leader's job: look every ``poll`` seconds (a reload applies at the next look)."""
    while True:
        current = settings()
        weekly: WeeklyReport | None = current.reports.weekly
        if weekly is not None:
            titles = {route.id: route.title for route in current.routes}
            try:
                await post_if_due(weekly, store, post, clock(), titles)
            except Exception as exc:  # the next look tries again
                FAILURES.failed(log, exc, "the weekly report could not be posted")
        await asyncio.sleep(poll)
