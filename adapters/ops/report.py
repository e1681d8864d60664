"""``python app.py report``: how the team did, from the store, for the team lead.

    python app.py report [--since 7d] [--until TIME] [--route R ...] [--format md|csv|json]
                         [--timezone ZONE] [--config FILE]

For the handoffs started in the window (``--since``: ``7d``, ``24h``, ``2w``, ``90m`` back from
``--until``, or a date/time; ``--until`` defaults to now), by route and for all of them: how
many, how many a specialist joined (and the share), time to join and handle time (median and
p90), how they came out (``adapters.ops.metrics.outcome``, or ``open`` if under way), and the
busiest hours of the day (in ``--timezone``, default UTC). The store is the service's own
(``DATABASE_URL`` or the config's ``storage``), read only.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.ops.metrics import outcome
from bot.model import Handoff

OUTCOMES = ("handled", "cancelled", "declined", "abandoned", "expired", "failed", "open")
_SPAN = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
BUSIEST = 3  # hours of the day shown


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (the median is ``p=50``); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def duration(seconds: float | None) -> str:
    """``2m 05s``, ``1h 03m``, ``45s``; ``-`` for none."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@dataclass
class Figures:
    """One route's figures (or all routes')."""

    route: str
    handoffs: int = 0
    joined: int = 0
    time_to_join: list[float] = field(default_factory=list)
    handle_time: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    hours: Counter[int] = field(default_factory=Counter)

    def add(self, handoff: Handoff, zone: ZoneInfo) -> None:
        self.handoffs += 1
        self.hours[handoff.created_at.astimezone(zone).hour] += 1
        self.outcomes[outcome(handoff) if not handoff.state.is_open else "open"] += 1
        if handoff.joined_at is not None:
            self.joined += 1
            self.time_to_join.append((handoff.joined_at - handoff.created_at).total_seconds())
            if handoff.ended_at is not None and not handoff.state.is_open:
                self.handle_time.append((handoff.ended_at - handoff.joined_at).total_seconds())

    @property
    def share_joined(self) -> float | None:
        return self.joined / self.handoffs if self.handoffs else None

    def busiest(self) -> list[tuple[int, int]]:
        """The busiest hours of the day, ``(hour, handoffs)``, busiest first (then earliest)."""
        return sorted(self.hours.items(), key=lambda kv: (-kv[1], kv[0]))[:BUSIEST]

    def as_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "handoffs": self.handoffs,
            "joined": self.joined,
            "share_joined": self.share_joined,
            "time_to_join_p50_seconds": percentile(self.time_to_join, 50),
            "time_to_join_p90_seconds": percentile(self.time_to_join, 90),
            "handle_time_p50_seconds": percentile(self.handle_time, 50),
            "handle_time_p90_seconds": percentile(self.handle_time, 90),
            "outcomes": {name: self.outcomes.get(name, 0) for name in OUTCOMES},
            "busiest_hours": [{"hour": h, "handoffs": n} for h, n in self.busiest()],
        }


@dataclass
class Report:
    since: datetime
    until: datetime
    zone: ZoneInfo
    routes: dict[str, Figures]
    total: Figures

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "timezone": self.zone.key,
            "routes": [f.as_dict() for f in self.routes.values()],
            "all": self.total.as_dict(),
        }


def build(
    handoffs: Sequence[Handoff],
    since: datetime,
    until: datetime,
    zone: ZoneInfo,
    routes: Sequence[str] = (),
) -> Report:
    """The figures of ``handoffs`` (of ``routes`` only, if any are named)."""
    by_route: dict[str, Figures] = {name: Figures(name) for name in routes}
    total = Figures("all")
    for handoff in handoffs:
        if routes and handoff.route_id not in routes:
            continue
        figures = by_route.setdefault(handoff.route_id, Figures(handoff.route_id))
        figures.add(handoff, zone)
        total.add(handoff, zone)
    ordered = dict(sorted(by_route.items()))
    return Report(since, until, zone, ordered, total)


def _hours(figures: Figures) -> str:
    return ", ".join(f"{h:02d}:00 ({n})" for h, n in figures.busiest()) or "-"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def markdown(report: Report) -> str:
    rows = [*report.routes.values(), report.total]
    lines = [
        f"# Handoffs {report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC",
        "",
        "| route | handoffs | joined | time to join p50 / p90 | handle time p50 / p90 | "
        + " | ".join(OUTCOMES)
        + f" | busiest hours ({report.zone.key}) |",
        "|---|---|---|---|---|" + "---|" * len(OUTCOMES) + "---|",
    ]
    for f in rows:
        name = "**all**" if f is report.total else f.route
        lines.append(
            f"| {name} | {f.handoffs} | {f.joined} ({_share(f.share_joined)}) | "
            f"{duration(percentile(f.time_to_join, 50))} / "
            f"{duration(percentile(f.time_to_join, 90))} | "
            f"{duration(percentile(f.handle_time, 50))} / "
            f"{duration(percentile(f.handle_time, 90))} | "
            + " | ".join(str(f.outcomes.get(name, 0)) for name in OUTCOMES)
            + f" | {_hours(f)} |"
        )
    return "\n".join(lines) + "\n"


def as_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    first = report.total.as_dict()
    columns = [k for k in first if k not in ("outcomes", "busiest_hours")]
    writer.writerow([*columns, *OUTCOMES, "busiest_hours"])
    for f in [*report.routes.values(), report.total]:
        row = f.as_dict()
        writer.writerow(
            [
                *("" if row[c] is None else row[c] for c in columns),
                *(row["outcomes"][name] for name in OUTCOMES),
                " ".join(f"{h['hour']:02d}:00={h['handoffs']}" for h in row["busiest_hours"]),
            ]
        )
    return out.getvalue()


def as_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2) + "\n"


FORMATS: dict[str, Callable[[Report], str]] = {
    "md": markdown,
    "csv": as_csv,
    "json": as_json,
}


def when(text: str, until: datetime | None = None) -> datetime:
    """``7d``/``24h``/``2w``/``90m`` before ``until``, or an ISO date or time (UTC unless it
    says otherwise)."""
    span = _SPAN.match(text.strip())
    if span and until is not None:
        return until - timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a span (7d, 24h, 2w, 90m) nor a date or time"
            " (2026-11-30, 2026-11-30T09:00+01:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="app.py report", description=__doc__.split("\n")[0])
    parser.add_argument("--since", default="7d", help="7d, 24h, 2w, 90m, or a date/time")
    parser.add_argument("--until", default="", help="a date/time (default: now)")
    parser.add_argument(
        "--route", action="append", default=[], help="only this route (again: more)"
    )
    parser.add_argument("--format", choices=sorted(FORMATS), default="md")
    parser.add_argument("--timezone", default="UTC", help="for the busiest hours (IANA name)")
    parser.add_argument("--config", default=None, help="the service's config (for its store)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    from adapters.ops.commands import from_store

    args = parse(argv)
    try:
        until = when(args.until) if args.until else datetime.now(UTC)
        since = when(args.since, until)
        zone = ZoneInfo(args.timezone)
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    except ZoneInfoNotFoundError:
        print(
            f"report: no time zone {args.timezone!r} (an IANA name: Europe/Berlin)", file=sys.stderr
        )
        return 2
    if since >= until:
        print("report: --since must be before --until", file=sys.stderr)
        return 2
    handoffs = from_store(
        "report", args.config, lambda store: store.handoffs_created(since=since, until=until)
    )
    report = build(handoffs, since, until, zone, args.route)
    sys.stdout.write(FORMATS[args.format](report))
    return 0
