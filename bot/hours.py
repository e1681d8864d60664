"""Work hours: a weekly schedule in an IANA time zone, including ranges past midnight."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class Weekday(StrEnum):
    """Schedule keys, Monday first as in ``datetime.weekday()``."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_DAYS = list(Weekday)


def _parse_range(text: str) -> tuple[time, time | None]:
    match = _RANGE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a time range like '09:00-17:30'")
    start = time(int(match[1]), int(match[2]))
    end_h, end_m = int(match[3]), int(match[4])
    if end_h == 24 and end_m:
        raise ValueError(f"{text!r}: the latest end is 24:00")
    end = None if end_h == 24 else time(end_h, end_m)  # None: until midnight
    if end is not None and end == start:
        raise ValueError(f"{text!r} is empty")
    return start, end


def _check_range(text: str) -> str:
    _parse_range(text)
    return text


# Validated per item, so an error names the exact entry (weekly.mon[1]).
TimeRange = Annotated[str, AfterValidator(_check_range)]


class Hours(BaseModel):
    """When a route's team is at work; a range ending before it starts runs past midnight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    weekly: dict[Weekday, list[TimeRange]] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    def _intervals(self, day: datetime) -> list[tuple[datetime, datetime]]:
        """Open intervals that start on ``day``'s local date (aware datetimes)."""
        zone = ZoneInfo(self.timezone)
        out = []
        for text in self.weekly.get(_DAYS[day.weekday()], []):
            start, end = _parse_range(text)
            begin = datetime.combine(day.date(), start, zone)
            if end is None or end < start:
                # Until midnight, or past it: the range closes on the next local date.
                finish_date = day.date() + timedelta(days=1)
                finish = datetime.combine(finish_date, end or time(0), zone)
            else:
                finish = datetime.combine(day.date(), end, zone)
            out.append((begin, finish))
        return out

    def is_open(self, now: datetime) -> bool:
        """True when ``now`` (timezone-aware) falls in a range; ranges may cross midnight."""
        local = now.astimezone(ZoneInfo(self.timezone))
        # A range started yesterday may still be running.
        for day in (local - timedelta(days=1), local):
            for begin, finish in self._intervals(day):
                if begin <= local < finish:
                    return True
        return False

    def next_open(self, now: datetime) -> datetime | None:
        """The next moment the team is at work, or None when the schedule is empty."""
        local = now.astimezone(ZoneInfo(self.timezone))
        if self.is_open(now):
            return now
        for offset in range(8):
            day = local + timedelta(days=offset)
            starts = [begin for begin, _ in self._intervals(day) if begin > local]
            if starts:
                return min(starts)
        return None
