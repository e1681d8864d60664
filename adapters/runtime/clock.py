"""The one place that reads the wall clock; the domain gets ``now`` passed in."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(at: datetime) -> str:
    """Bot Framework timestamp format: UTC, microseconds, trailing Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(stamp: object) -> datetime | None:
    """An ISO time with its zone (as stored, or as a client sent it), else None."""
    if not isinstance(stamp, str):
        return None
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None
