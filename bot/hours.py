"""Work hours: a weekly schedule in an IANA time zone, with public holidays and one-off days.

A range is local wall-clock time and belongs to the date it starts on: Friday "22:00-02:00"
runs into Saturday even when Saturday is a holiday, and a holiday on Friday removes it whole.

Wall times are turned into instants the way RFC 5545 (iCalendar) does, which is zoneinfo's
``fold=0``: a time skipped when clocks go forward is read with the offset from before the gap
(02:30 on Berlin's spring-forward night is 03:30 summer time, 02:00 is 03:00), and a time that
happens twice when clocks go back means its first occurrence. ``now`` is then compared as an
instant, so a range that ends inside the repeated hour does not reopen when that hour repeats.
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from holidays import country_holidays, list_supported_countries
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
)

_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")

# How far next_open looks for an opening before it gives up and returns None.
LOOKAHEAD_DAYS = 400
# Listed holiday dates and exceptions per route: years of them, at a few dozen a year.
MAX_DATES = 1000
MAX_RANGES = 48  # time ranges in one day (every half hour)


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
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@lru_cache(maxsize=512)
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


def _zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


@lru_cache(maxsize=256)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[dt.date]:
    """One year of public holidays, cached here because the frozen model cannot hold it."""
    return frozenset(country_holidays(country, subdiv=subdivision, years=year))


class HolidayCalendar(BaseModel):
    """Days off: a country's (and subdivision's) public holidays, plus explicit dates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str | None = None
    subdivision: str | None = None
    # Bounded: every handoff request looks days up in it (a set, built once).
    dates: list[dt.date] = Field(default_factory=list, max_length=MAX_DATES)
    _date_set: frozenset[dt.date] = PrivateAttr(default=frozenset())

    def model_post_init(self, context: object, /) -> None:
        """Index the dates once: lookups are per day, per handoff request."""
        self._date_set = frozenset(self.dates)

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if code not in list_supported_countries():
            raise ValueError(
                f"unknown holiday country {value!r}; use an ISO 3166 code like 'DE', 'US' or 'GB'"
            )
        return code

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or "country" not in info.data:
            return value  # the country itself was rejected; that error is enough
        country = info.data["country"]
        if country is None:
            raise ValueError(f"subdivision {value!r} needs a `country`")
        entity = country_holidays(country)
        # Accept any case and the package's spelled-out aliases ("Bayern"), keep the code.
        known = {code.casefold(): code for code in entity.subdivisions}
        known |= {alias.casefold(): code for alias, code in entity.subdivisions_aliases.items()}
        code = known.get(value.strip().casefold())
        if code is None:
            if not entity.subdivisions:
                raise ValueError(f"unknown subdivision {value!r}: {country} has none")
            listed = ", ".join(entity.subdivisions)
            raise ValueError(f"unknown subdivision {value!r} for {country}; known: {listed}")
        return code

    def closes(self, day: dt.date) -> bool:
        """True when ``day`` is a listed date or a public holiday."""
        if day in self._date_set:
            return True
        if self.country is None:
            return False
        return day in _public_holidays(self.country, self.subdivision, day.year)


class SpecialDay(BaseModel):
    """Ranges for one date that replace its weekly ranges and any holiday; [] closes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: dt.date
    hours: list[TimeRange] = Field(max_length=MAX_RANGES)


def _instant(day: dt.date, clock: time, zone: ZoneInfo) -> datetime:
    # fold=0 gives the RFC 5545 reading of skipped and repeated wall times (module docstring).
    return datetime.combine(day, clock, zone).astimezone(UTC)


def _require_aware(value: datetime, name: str) -> None:
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


class Hours(BaseModel):
    """When a route's team is at work; a range ending before it starts runs past midnight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    weekly: dict[Weekday, Annotated[list[TimeRange], Field(max_length=MAX_RANGES)]] = Field(
        default_factory=dict
    )
    holidays: HolidayCalendar | None = None
    exceptions: list[SpecialDay] = Field(default_factory=list, max_length=MAX_DATES)
    _by_date: dict[dt.date, list[str]] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: object, /) -> None:
        """Index the exceptions by date once: lookups are per day, per handoff request."""
        self._by_date = {special.date: special.hours for special in self.exceptions}

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if _zone_or_none(value) is None:
            raise ValueError(f"unknown IANA time zone {value!r}")
        return value

    @field_validator("exceptions")
    @classmethod
    def _one_entry_per_date(cls, value: list[SpecialDay]) -> list[SpecialDay]:
        first: dict[dt.date, int] = {}
        for index, special in enumerate(value):
            if special.date in first:
                raise ValueError(
                    f"{special.date.isoformat()} is listed twice (entries {first[special.date]}"
                    f" and {index}); give each date one entry"
                )
            first[special.date] = index
        return value

    def _ranges_on(self, day: dt.date) -> list[str]:
        """The ranges that start on local date ``day``: its exception, else none on a holiday."""
        special = self._by_date.get(day)
        if special is not None:
            return special
        if self.holidays is not None and self.holidays.closes(day):
            return []
        return self.weekly.get(_DAYS[day.weekday()], [])

    def _intervals(self, day: dt.date) -> list[tuple[datetime, datetime]]:
        """UTC [begin, finish) of the ranges starting on ``day``, earliest first."""
        zone = ZoneInfo(self.timezone)
        out = []
        for text in self._ranges_on(day):
            start, end = _parse_range(text)
            # Until midnight, or past it: the range closes on the next local date.
            finish_day = day if end is not None and end > start else day + timedelta(days=1)
            begin = _instant(day, start, zone)
            finish = _instant(finish_day, end or time(0), zone)
            if begin < finish:  # a range wholly inside a spring-forward gap never opens
                out.append((begin, finish))
        return sorted(out)

    def _can_ever_open(self) -> bool:
        return any(self.weekly.values()) or any(special.hours for special in self.exceptions)

    def is_open(self, now: datetime) -> bool:
        """True when ``now`` (timezone-aware) falls in a range; ranges may cross midnight."""
        _require_aware(now, "now")
        instant = now.astimezone(UTC)
        today = now.astimezone(ZoneInfo(self.timezone)).date()
        # A range started yesterday may still be running.
        for day in (today - timedelta(days=1), today):
            for begin, finish in self._intervals(day):
                if begin <= instant < finish:
                    return True
        return False

    def next_open(self, now: datetime) -> datetime | None:
        """``now`` when open, else the next opening in the route's zone; None if none is near."""
        if self.is_open(now):
            return now
        if not self._can_ever_open():
            return None
        zone = ZoneInfo(self.timezone)
        instant = now.astimezone(UTC)
        today = now.astimezone(zone).date()
        for offset in range(LOOKAHEAD_DAYS + 1):
            day = today + timedelta(days=offset)
            starts = [begin for begin, _ in self._intervals(day) if begin > instant]
            if starts:
                return starts[0].astimezone(zone)
        return None


def _zone_name(value: datetime) -> str:
    zone = value.tzinfo
    if isinstance(zone, ZoneInfo):
        return zone.key
    return value.tzname() or "UTC"


def back_at(when: datetime, now: datetime, visitor_timezone: str = "") -> str:
    """Say when the team is back, e.g. "tomorrow at 09:00 (Europe/Berlin time)".

    Uses the visitor's zone when it is valid; otherwise ``when``'s own zone (the route's),
    named in brackets because it may not be where the visitor is.
    """
    _require_aware(when, "when")
    _require_aware(now, "now")
    if when <= now:
        return "now"
    visitor = _zone_or_none(visitor_timezone) if visitor_timezone else None
    zone = visitor or when.tzinfo
    local = when.astimezone(zone)
    days = (local.date() - now.astimezone(zone).date()).days
    clock = f"{local.hour:02d}:{local.minute:02d}"
    if days == 0:
        phrase = f"later today at {clock}"
    elif days == 1:
        phrase = f"tomorrow at {clock}"
    elif days < 7:
        phrase = f"on {_DAY_NAMES[local.weekday()]} at {clock}"
    else:
        # A year only when the day and month alone could mean an earlier date.
        year = f" {local.year}" if days >= 365 else ""
        phrase = f"on {local.day} {_MONTH_NAMES[local.month - 1]}{year} at {clock}"
    if visitor is None:
        phrase += f" ({_zone_name(when)} time)"
    return phrase
