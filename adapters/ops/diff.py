"""``python app.py diff OLD.yaml NEW.yaml``: what a config change changes, for whom, before
it is merged.

    python app.py diff OLD.yaml NEW.yaml [--visitors SAMPLES.jsonl] [--at TIME] [--days 7]

- routes added, removed, and every setting that changed (triggers, channel, hours, ...);
- work hours: for each route whose hours changed, the next ``--days`` days from ``--at``
  (default now), day by day, open hours before and after, side by side;
- texts that changed (each locale), and escalation settings that changed;
- ``--visitors``: one JSON object a line, as ``explain`` takes (``visitor``, ``context``,
  ``messages``; optionally ``name``, ``at`` and ``category``): each sample visitor that would
  now be escalated, routed or told differently, with what changes.

Exit 0 (a report), 2 when a file cannot be read or is not a valid config.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from adapters.ops.config_file import load_settings
from adapters.ops.explain import Decision, decide
from bot.config import Route, Settings
from bot.errors import ConfigError
from bot.hours import Hours

STEP = timedelta(minutes=5)  # the resolution of the hours shown


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": 1}`` for ``{"a": {"b": 1}}`` (lists stay whole)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _changes(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """``(key.path, before, after)`` for every leaf that differs."""
    before, after = _flat(old), _flat(new)
    return [
        (key, before.get(key), after.get(key))
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]


def _show(value: Any) -> str:
    return "(none)" if value in (None, "", []) else json.dumps(value, ensure_ascii=False)


def _dump(route: Route) -> dict[str, Any]:
    return route.model_dump(mode="json", exclude_defaults=False)


def route_lines(old: Settings, new: Settings) -> list[str]:
    before = {r.id: r for r in old.routes}
    after = {r.id: r for r in new.routes}
    lines = []
    for route_id in after.keys() - before.keys():
        route = after[route_id]
        lines.append(f"+ route {route_id} ({route.name or route_id}) in {route.channel}")
    for route_id in before.keys() - after.keys():
        lines.append(f"- route {route_id}: removed (its open handoffs keep going; no new ones)")
    for route_id in [r.id for r in new.routes if r.id in before]:
        for key, was, now in _changes(_dump(before[route_id]), _dump(after[route_id])):
            lines.append(f"~ route {route_id}: {key}: {_show(was)} -> {_show(now)}")
    order_before = [r.id for r in old.routes if r.id in after]
    order_after = [r.id for r in new.routes if r.id in before]
    if order_before != order_after:
        lines.append(
            f"~ route order (first true trigger wins): {', '.join(order_before)}"
            f" -> {', '.join(order_after)}"
        )
    return lines


def open_spans(hours: Hours | None, day: datetime) -> str:
    """When the route is open on ``day`` (a midnight in the route's zone), e.g. ``09:00-17:00``."""
    if hours is None:
        return "always"
    spans, start, at = [], None, day
    end = day + timedelta(days=1)
    while at < end:
        is_open = hours.is_open(at)
        if is_open and start is None:
            start = at
        elif not is_open and start is not None:
            spans.append(f"{start:%H:%M}-{at:%H:%M}")
            start = None
        at += STEP
    if start is not None:
        spans.append(f"{start:%H:%M}-24:00")
    return ", ".join(spans) or "closed"


def _days(zone: ZoneInfo, at: datetime, count: int) -> Iterator[datetime]:
    first = at.astimezone(zone).date()
    for n in range(count):
        yield datetime.combine(first + timedelta(days=n), time(0), zone)


def hours_lines(old: Settings, new: Settings, at: datetime, days: int) -> list[str]:
    before = {r.id: r for r in old.routes}
    lines = []
    for route in new.routes:
        was = before.get(route.id)
        if was is None or was.hours == route.hours:
            continue
        zone = ZoneInfo((route.hours or was.hours or Hours()).timezone)
        lines.append(f"route {route.id} ({zone.key}):")
        width = max(len("before"), *(len(open_spans(was.hours, d)) for d in _days(zone, at, days)))
        lines.append(f"  {'day':<15} {'before':<{width}}   after")
        for day in _days(zone, at, days):
            old_spans, new_spans = open_spans(was.hours, day), open_spans(route.hours, day)
            mark = "  " if old_spans == new_spans else " *"
            lines.append(f"{mark}{day:%a %Y-%m-%d} {old_spans:<{width}}   {new_spans}")
    return lines


def text_lines(old: Settings, new: Settings) -> list[str]:
    lines = []
    for key, was, now in _changes(
        old.texts.model_dump(mode="json"), new.texts.model_dump(mode="json")
    ):
        lines.append(f"~ texts.{key}:\n    before: {_show(was)}\n    after:  {_show(now)}")
    for key, was, now in _changes(
        old.escalation.model_dump(mode="json"), new.escalation.model_dump(mode="json")
    ):
        lines.append(f"~ escalation.{key}: {_show(was)} -> {_show(now)}")
    return lines


def _outcome(d: Decision, category: str) -> dict[str, str]:
    """What the visitor meets: when nothing hands off (no trigger, no category asked for),
    only that the bot answers."""
    if d.trigger is None and not category:
        return {"escalation": "none (the bot answers)"}
    opens = d.open_now.route if d.open_now else None
    return {
        "escalation": d.trigger.reason if d.trigger else "none (the bot answers)",
        "route": d.choice.route.id if d.choice.route else "none",
        "thread": (opens.id if opens else "no thread now") if d.choice.route else "none",
        "told": "; ".join(f"{k}: {v}" for k, v in d.said.items()),
    }


def sample_lines(
    old: Settings, new: Settings, samples: list[dict[str, Any]], at: datetime
) -> list[str]:
    lines = []
    for n, sample in enumerate(samples, 1):
        when = datetime.fromisoformat(sample["at"]) if sample.get("at") else at
        category = str(sample.get("category", ""))
        before = _outcome(decide(old, sample, when, category), category)
        after = _outcome(decide(new, sample, when, category), category)
        if before == after:
            continue
        name = sample.get("name") or f"visitor {n}"
        lines.append(f"{name} (line {sample['_line']}, {when.isoformat()}):")
        for key in ("escalation", "route", "thread", "told"):
            was, now = before.get(key, "-"), after.get(key, "-")
            if was != now and (key in before or key in after):
                lines.append(f"  {key}: {was} -> {now}")
    return lines


def read_samples(path: Path) -> list[dict[str, Any]]:
    samples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(sample, dict):
            raise ValueError(f"{path}:{number}: a visitor must be a JSON object")  # noqa: TRY004 - bad input, not a bug
        if sample.get("at"):
            at = datetime.fromisoformat(str(sample["at"]))
            if at.tzinfo is None:
                raise ValueError(f"{path}:{number}: at needs its UTC offset")
        samples.append({**sample, "_line": number})
    return samples


def report(
    old: Settings, new: Settings, at: datetime, days: int, samples: list[dict[str, Any]]
) -> str:
    sections: list[tuple[str, Callable[[], list[str]]]] = [
        ("Routes", lambda: route_lines(old, new)),
        (f"Work hours, {days} days from {at:%Y-%m-%d}", lambda: hours_lines(old, new, at, days)),
        ("Texts and escalation", lambda: text_lines(old, new)),
    ]
    if samples:
        sections.append(
            (
                f"Sample visitors ({len(samples)}) treated differently",
                lambda: sample_lines(old, new, samples, at),
            )
        )
    out = []
    for title, lines in sections:
        found = lines()
        out.append(f"## {title}\n")
        out.append("\n".join(found) if found else "no change")
        out.append("")
    return "\n".join(out)


def _moment(text: str | None, days: int) -> datetime:
    """``--at`` (default now), checked with ``--days``."""
    at = datetime.fromisoformat(text) if text else datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("--at needs its UTC offset, e.g. 2026-12-07T09:00:00+01:00")
    if not 1 <= days <= 31:
        raise ValueError("--days must be between 1 and 31")
    return at


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="app.py diff", description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--visitors", type=Path, help="sample visitors, one JSON object a line")
    parser.add_argument("--at", help="when the hours start and the samples are tried (default now)")
    parser.add_argument("--days", type=int, default=7, help="days of work hours to compare")
    args = parser.parse_args(argv)
    try:
        old, new = load_settings(args.old), load_settings(args.new)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    try:
        at = _moment(args.at, args.days)
        samples = read_samples(args.visitors) if args.visitors else []
    except (OSError, ValueError) as exc:
        print(f"diff: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(report(old, new, at, args.days, samples))
    return 0
