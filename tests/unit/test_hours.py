"""Work hours around DST changes and midnight, as tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from bot.hours import Hours, back_at

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = Hours(
    timezone="Europe/Berlin",
    weekly={"mon": ["09:00-12:30", "13:30-17:00"], "sun": ["09:00-17:00"], "fri": ["22:00-02:00"]},
)
ALL_DAY = Hours(timezone="America/New_York", weekly={"sat": ["00:00-24:00"]})


def at(zone: tzinfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


@pytest.mark.parametrize(
    ("hours", "when", "open_"),
    [
        (OFFICE, at(BERLIN, 2026, 11, 23, 8, 59), False),  # Monday before opening
        (OFFICE, at(BERLIN, 2026, 11, 23, 9, 0), True),
        (OFFICE, at(BERLIN, 2026, 11, 23, 12, 45), False),  # lunch gap
        (OFFICE, at(BERLIN, 2026, 11, 23, 16, 59), True),
        (OFFICE, at(BERLIN, 2026, 11, 23, 17, 0), False),  # end is exclusive
        (OFFICE, at(BERLIN, 2026, 11, 27, 23, 30), True),  # Friday night range...
        (OFFICE, at(BERLIN, 2026, 11, 28, 1, 59), True),  # ...runs past midnight into Saturday
        (OFFICE, at(BERLIN, 2026, 11, 28, 2, 0), False),
        (OFFICE, datetime(2026, 11, 23, 8, 30, tzinfo=UTC), True),  # 09:30 in Berlin (UTC+1)
        # DST starts 2026-03-29 in Berlin (02:00 -> 03:00): Sunday 09:00 local is 07:00 UTC.
        (OFFICE, datetime(2026, 3, 29, 6, 59, tzinfo=UTC), False),
        (OFFICE, datetime(2026, 3, 29, 7, 0, tzinfo=UTC), True),
        # DST ends 2026-10-25 (03:00 -> 02:00): Sunday 09:00 local is 08:00 UTC.
        (OFFICE, datetime(2026, 10, 25, 7, 59, tzinfo=UTC), False),
        (OFFICE, datetime(2026, 10, 25, 8, 0, tzinfo=UTC), True),
        (ALL_DAY, datetime(2026, 11, 28, 5, 0, tzinfo=UTC), True),  # Sat 00:00 in New York
        (ALL_DAY, datetime(2026, 11, 29, 4, 59, tzinfo=UTC), True),  # Sat 23:59
        (ALL_DAY, datetime(2026, 11, 29, 5, 0, tzinfo=UTC), False),  # Sunday
    ],
)
def test_is_open(hours: Hours, when: datetime, open_: bool) -> None:
    assert hours.is_open(when) is open_


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at(BERLIN, 2026, 11, 23, 12, 45), at(BERLIN, 2026, 11, 23, 13, 30)),
        (at(BERLIN, 2026, 11, 24, 10, 0), at(BERLIN, 2026, 11, 27, 22, 0)),  # Tue -> Fri night
        (at(BERLIN, 2026, 11, 23, 10, 0), at(BERLIN, 2026, 11, 23, 10, 0)),  # open now
    ],
)
def test_next_open(when: datetime, expected: datetime) -> None:
    assert OFFICE.next_open(when) == expected


def test_empty_schedule_never_opens() -> None:
    assert Hours().next_open(datetime(2026, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"timezone": "Mars/Olympus"},
        {"weekly": {"mon": ["9-17"]}},
        {"weekly": {"mon": ["09:00-09:00"]}},
        {"weekly": {"mon": ["25:00-26:00"]}},
        {"weekly": {"funday": ["09:00-10:00"]}},
    ],
)
def test_bad_hours_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Hours.model_validate(bad)


# --- Holidays, one-off days, DST edges and phrasing -------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS_9_TO_5 = {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
EVERY_DAY_10_TO_18 = {
    day: ["10:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return at(UTC, year, month, day, hour, minute)


def hours(**fields: object) -> Hours:
    return Hours.model_validate({"timezone": "Europe/Berlin", **fields})


DE_OFFICE = hours(weekly=WEEKDAYS_9_TO_5, holidays={"country": "DE"})
DE_SHOP = hours(weekly=EVERY_DAY_10_TO_18, holidays={"country": "DE"})
BY_OFFICE = hours(weekly=WEEKDAYS_9_TO_5, holidays={"country": "DE", "subdivision": "BY"})
US_OFFICE = Hours.model_validate(
    {"timezone": "America/New_York", "weekly": WEEKDAYS_9_TO_5, "holidays": {"country": "US"}}
)
US_SHOP = Hours.model_validate(
    {"timezone": "America/New_York", "weekly": EVERY_DAY_10_TO_18, "holidays": {"country": "US"}}
)
SHUTDOWN = hours(
    weekly=WEEKDAYS_9_TO_5,
    holidays={
        "country": "DE",
        "dates": ["2026-12-24", "2026-12-28", "2026-12-29", "2026-12-30", "2026-12-31"],
    },
)
SPECIAL = hours(
    weekly=WEEKDAYS_9_TO_5,
    holidays={"country": "DE"},
    exceptions=[
        {"date": "2026-12-24", "hours": ["09:00-12:00"]},  # shorter day
        {"date": "2026-12-25", "hours": ["10:00-12:00"]},  # open on a holiday
        {"date": "2026-11-25", "hours": []},  # a Wednesday closed all day
        {"date": "2026-11-28", "hours": ["10:00-14:00"]},  # a Saturday opening
    ],
)
# Friday-night ranges and their neighbours: Thu 2026-12-24 -> Fri 25 (holiday),
# Fri 25 -> Sat 26 (both holidays), Fri 2026-10-02 -> Sat 3 (German Unity Day).
NIGHTS = hours(
    weekly={"thu": ["22:00-02:00"], "fri": ["22:00-02:00"]},
    holidays={"country": "DE"},
    exceptions=[{"date": "2026-11-27", "hours": []}],
)


@pytest.mark.parametrize(
    ("schedule", "when", "open_"),
    [
        # Germany: Christmas (Fri) and German Unity Day (Sat); Christmas Eve is a working day.
        (DE_OFFICE, at(BERLIN, 2026, 12, 24, 10, 0), True),
        (DE_OFFICE, at(BERLIN, 2026, 12, 25, 10, 0), False),
        (DE_OFFICE, at(BERLIN, 2026, 12, 28, 10, 0), True),
        (DE_SHOP, at(BERLIN, 2026, 10, 3, 12, 0), False),
        (DE_SHOP, at(BERLIN, 2026, 10, 4, 12, 0), True),
        # Epiphany is a holiday in Bavaria only.
        (BY_OFFICE, at(BERLIN, 2026, 1, 6, 10, 0), False),
        (DE_OFFICE, at(BERLIN, 2026, 1, 6, 10, 0), True),
        (BY_OFFICE, at(BERLIN, 2026, 1, 7, 10, 0), True),
        # US: 4 July 2026 is a Saturday, observed on Friday 3 July; the day itself stays closed.
        (US_OFFICE, at(NEW_YORK, 2026, 7, 2, 10, 0), True),
        (US_OFFICE, at(NEW_YORK, 2026, 7, 3, 10, 0), False),
        (US_SHOP, at(NEW_YORK, 2026, 7, 4, 12, 0), False),
        (US_SHOP, at(NEW_YORK, 2026, 7, 5, 12, 0), True),
        # Explicit closed dates.
        (SHUTDOWN, at(BERLIN, 2026, 12, 23, 10, 0), True),
        (SHUTDOWN, at(BERLIN, 2026, 12, 24, 10, 0), False),
        (SHUTDOWN, at(BERLIN, 2026, 12, 30, 16, 59), False),
        # Exceptions replace the weekly ranges and the holiday closure.
        (SPECIAL, at(BERLIN, 2026, 12, 24, 11, 59), True),
        (SPECIAL, at(BERLIN, 2026, 12, 24, 12, 0), False),
        (SPECIAL, at(BERLIN, 2026, 12, 25, 11, 0), True),
        (SPECIAL, at(BERLIN, 2026, 12, 25, 13, 0), False),
        (SPECIAL, at(BERLIN, 2026, 11, 25, 10, 0), False),
        (SPECIAL, at(BERLIN, 2026, 11, 28, 13, 59), True),
        (SPECIAL, at(BERLIN, 2026, 11, 28, 14, 0), False),
        (SPECIAL, at(BERLIN, 2026, 11, 29, 12, 0), False),  # the Sunday after is untouched
        # A range belongs to the date it starts on.
        (NIGHTS, at(BERLIN, 2026, 12, 25, 1, 0), True),  # Thu night runs into Christmas
        (NIGHTS, at(BERLIN, 2026, 12, 25, 23, 0), False),  # Christmas night is off...
        (NIGHTS, at(BERLIN, 2026, 12, 26, 1, 0), False),  # ...all of it
        (NIGHTS, at(BERLIN, 2026, 10, 3, 1, 30), True),  # Fri night runs into Unity Day
        (NIGHTS, at(BERLIN, 2026, 10, 3, 2, 0), False),
        (NIGHTS, at(BERLIN, 2026, 11, 28, 1, 0), False),  # Friday closed by an exception
        (NIGHTS, at(BERLIN, 2026, 11, 27, 1, 0), True),  # but Thursday's night still ends
    ],
)
def test_holidays_and_exceptions(schedule: Hours, when: datetime, open_: bool) -> None:
    assert schedule.is_open(when) is open_


# Berlin 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00 UTC.
# Berlin 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00 UTC; 02:00-03:00 happens twice.
# New York 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00 UTC.
# New York 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00 UTC; 01:00-02:00 happens twice.
INTO_BERLIN_GAP = hours(weekly={"sat": ["23:00-02:30"]})
FROM_BERLIN_GAP = hours(weekly={"sun": ["02:30-05:00"]})
OVER_BERLIN_GAP = hours(weekly={"sun": ["01:00-04:00"]})
INTO_BERLIN_REPEAT = hours(weekly={"sat": ["22:00-02:30"]})
FROM_BERLIN_REPEAT = hours(weekly={"sun": ["02:30-06:00"]})
NY = "America/New_York"
FROM_NY_GAP = Hours(timezone=NY, weekly={"sun": ["02:30-05:00", "09:00-17:00"]})
INTO_NY_REPEAT = Hours(timezone=NY, weekly={"sat": ["22:00-01:30"]})
FROM_NY_REPEAT = Hours(timezone=NY, weekly={"sun": ["01:30-03:00", "09:00-17:00"]})


@pytest.mark.parametrize(
    ("schedule", "when", "open_"),
    [
        # Spring: a wall time in the skipped hour is read with the pre-gap offset (RFC 5545),
        # so 02:30 means 03:30 summer time.
        (INTO_BERLIN_GAP, utc(2026, 3, 29, 1, 29), True),  # 03:29 CEST
        (INTO_BERLIN_GAP, utc(2026, 3, 29, 1, 30), False),  # 03:30 CEST
        (FROM_BERLIN_GAP, utc(2026, 3, 29, 1, 0), False),  # 03:00 CEST
        (FROM_BERLIN_GAP, utc(2026, 3, 29, 1, 30), True),
        (OVER_BERLIN_GAP, utc(2026, 3, 28, 23, 59), False),  # 00:59 CET
        (OVER_BERLIN_GAP, utc(2026, 3, 29, 0, 59), True),  # 01:59 CET
        (OVER_BERLIN_GAP, utc(2026, 3, 29, 1, 0), True),  # 03:00 CEST: two real hours
        (OVER_BERLIN_GAP, utc(2026, 3, 29, 2, 0), False),  # 04:00 CEST
        # Autumn: a repeated wall time is its first occurrence; nothing reopens on the repeat.
        (INTO_BERLIN_REPEAT, utc(2026, 10, 25, 0, 29), True),  # 02:29 CEST
        (INTO_BERLIN_REPEAT, utc(2026, 10, 25, 0, 30), False),  # 02:30 CEST
        (INTO_BERLIN_REPEAT, utc(2026, 10, 25, 1, 15), False),  # 02:15 CET, the repeat
        (FROM_BERLIN_REPEAT, utc(2026, 10, 25, 0, 29), False),
        (FROM_BERLIN_REPEAT, utc(2026, 10, 25, 0, 30), True),  # first 02:30
        (FROM_BERLIN_REPEAT, utc(2026, 10, 25, 1, 15), True),  # 02:15 CET, still open
        (FROM_BERLIN_REPEAT, utc(2026, 10, 25, 5, 0), False),  # 06:00 CET
        (FROM_NY_GAP, utc(2026, 3, 8, 7, 15), False),  # 03:15 EDT
        (FROM_NY_GAP, utc(2026, 3, 8, 7, 30), True),  # 03:30 EDT
        (FROM_NY_GAP, utc(2026, 3, 8, 12, 59), False),  # 08:59 EDT
        (FROM_NY_GAP, utc(2026, 3, 8, 13, 0), True),  # 09:00 EDT
        (INTO_NY_REPEAT, utc(2026, 11, 1, 5, 29), True),  # 01:29 EDT
        (INTO_NY_REPEAT, utc(2026, 11, 1, 5, 30), False),  # 01:30 EDT
        (INTO_NY_REPEAT, utc(2026, 11, 1, 6, 15), False),  # 01:15 EST, the repeat
        (FROM_NY_REPEAT, utc(2026, 11, 1, 6, 45), True),  # 01:45 EST
        (FROM_NY_REPEAT, utc(2026, 11, 1, 8, 0), False),  # 03:00 EST
        (FROM_NY_REPEAT, utc(2026, 11, 1, 13, 59), False),  # 08:59 EST
        (FROM_NY_REPEAT, utc(2026, 11, 1, 14, 0), True),  # 09:00 EST
    ],
)
def test_is_open_across_dst(schedule: Hours, when: datetime, open_: bool) -> None:
    assert schedule.is_open(when) is open_


FAR_ONE_OFF = Hours.model_validate(
    {"exceptions": [{"date": "2028-01-03", "hours": ["09:00-10:00"]}]}
)


@pytest.mark.parametrize(
    ("schedule", "when", "expected"),
    [
        # Christmas run: Fri 25 and Sat 26 are holidays, then the weekend.
        (DE_OFFICE, at(BERLIN, 2026, 12, 24, 18, 0), utc(2026, 12, 28, 8, 0)),
        # Shutdown dates plus New Year (Fri 2027-01-01) and a weekend.
        (SHUTDOWN, at(BERLIN, 2026, 12, 23, 18, 0), utc(2027, 1, 4, 8, 0)),
        (US_OFFICE, at(NEW_YORK, 2026, 7, 2, 18, 0), utc(2026, 7, 6, 13, 0)),
        (BY_OFFICE, at(BERLIN, 2026, 1, 5, 18, 0), utc(2026, 1, 7, 8, 0)),  # skips Epiphany
        (SPECIAL, at(BERLIN, 2026, 11, 27, 18, 0), utc(2026, 11, 28, 9, 0)),  # Saturday opening
        (SPECIAL, at(BERLIN, 2026, 11, 24, 18, 0), utc(2026, 11, 26, 8, 0)),  # closed Wednesday
        (SPECIAL, at(BERLIN, 2026, 12, 24, 13, 0), utc(2026, 12, 25, 9, 0)),  # holiday opening
        (NIGHTS, at(BERLIN, 2026, 12, 25, 12, 0), utc(2026, 12, 31, 21, 0)),  # Thu 31st night
        (FROM_BERLIN_GAP, at(BERLIN, 2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 30)),  # 03:30 CEST
        (OVER_BERLIN_GAP, at(BERLIN, 2026, 3, 28, 12, 0), utc(2026, 3, 29, 0, 0)),
        (FROM_BERLIN_REPEAT, at(BERLIN, 2026, 10, 24, 23, 0), utc(2026, 10, 25, 0, 30)),
        (INTO_BERLIN_REPEAT, utc(2026, 10, 25, 1, 15), utc(2026, 10, 31, 21, 0)),  # next Sat, CET
        (OFFICE, at(BERLIN, 2026, 3, 28, 12, 0), utc(2026, 3, 29, 7, 0)),  # Sun 09:00 CEST
        (FROM_NY_GAP, at(NEW_YORK, 2026, 3, 7, 23, 0), utc(2026, 3, 8, 7, 30)),  # 03:30 EDT
        (FROM_NY_GAP, utc(2026, 3, 8, 10, 0), utc(2026, 3, 8, 13, 0)),  # 09:00 EDT
        (FROM_NY_REPEAT, at(NEW_YORK, 2026, 10, 31, 23, 0), utc(2026, 11, 1, 5, 30)),
        (FROM_NY_REPEAT, utc(2026, 11, 1, 8, 0), utc(2026, 11, 1, 14, 0)),  # 09:00 EST
        (FAR_ONE_OFF, utc(2027, 6, 1), utc(2028, 1, 3, 9, 0)),
    ],
)
def test_next_open_with_holidays_and_dst(
    schedule: Hours, when: datetime, expected: datetime
) -> None:
    found = schedule.next_open(when)
    assert found is not None and found.tzinfo == ZoneInfo(schedule.timezone)
    # Compared in UTC: Python never finds a repeated wall time equal across zones (PEP 495).
    assert found.astimezone(UTC) == expected


@pytest.mark.parametrize(
    ("schedule", "when"),
    [
        (FAR_ONE_OFF, utc(2026, 1, 1)),  # beyond the 400-day look-ahead
        (hours(holidays={"country": "DE"}), utc(2026, 1, 1)),
        (hours(exceptions=[{"date": "2026-05-01", "hours": []}]), utc(2026, 1, 1)),
    ],
)
def test_next_open_gives_up(schedule: Hours, when: datetime) -> None:
    assert schedule.next_open(when) is None


MON_1245, MON_1330 = at(BERLIN, 2026, 11, 23, 12, 45), at(BERLIN, 2026, 11, 23, 13, 30)
MON_18, TUE_9 = at(BERLIN, 2026, 11, 23, 18, 0), at(BERLIN, 2026, 11, 24, 9, 0)
XMAS_EVE_18, MON_28_9 = at(BERLIN, 2026, 12, 24, 18, 0), at(BERLIN, 2026, 12, 28, 9, 0)


@pytest.mark.parametrize(
    ("when", "now", "visitor", "expected"),
    [
        (MON_1330, MON_1245, "Europe/Berlin", "later today at 13:30"),
        (MON_1330, MON_1245, "", "later today at 13:30 (Europe/Berlin time)"),
        (MON_1330, MON_1245, "America/New_York", "later today at 07:30"),
        (TUE_9, MON_18, "Europe/Berlin", "tomorrow at 09:00"),
        (TUE_9, MON_18, "", "tomorrow at 09:00 (Europe/Berlin time)"),
        (TUE_9, MON_18, "Mars/Olympus", "tomorrow at 09:00 (Europe/Berlin time)"),
        (TUE_9, MON_18, "../etc/passwd", "tomorrow at 09:00 (Europe/Berlin time)"),
        # Tokyo is already on Tuesday; Los Angeles is still on Monday morning.
        (TUE_9, MON_18, "Asia/Tokyo", "later today at 17:00"),
        (TUE_9, MON_18, "America/Los_Angeles", "tomorrow at 00:00"),
        (MON_28_9, XMAS_EVE_18, "Europe/Berlin", "on Monday at 09:00"),
        (MON_28_9, XMAS_EVE_18, "Asia/Kolkata", "on Monday at 13:30"),
        (at(BERLIN, 2027, 1, 4, 9, 0), XMAS_EVE_18, "Europe/Berlin", "on 4 January at 09:00"),
        (
            at(BERLIN, 2027, 1, 2, 9, 0),
            XMAS_EVE_18,
            "",
            "on 2 January at 09:00 (Europe/Berlin time)",
        ),
        (at(BERLIN, 2028, 1, 3, 9, 0), XMAS_EVE_18, "Europe/Berlin", "on 3 January 2028 at 09:00"),
        # London and Berlin both spring forward that night: 09:00 CEST is 08:00 BST.
        (
            at(BERLIN, 2026, 3, 29, 9, 0),
            at(BERLIN, 2026, 3, 28, 20, 0),
            "Europe/London",
            "tomorrow at 08:00",
        ),
        (utc(2026, 11, 24, 9, 0), utc(2026, 11, 23, 18, 0), "", "tomorrow at 09:00 (UTC time)"),
        (TUE_9, TUE_9, "Europe/Berlin", "now"),
    ],
)
def test_back_at(when: datetime, now: datetime, visitor: str, expected: str) -> None:
    assert back_at(when, now, visitor) == expected


def test_back_at_the_route_zone_by_default() -> None:
    assert back_at(TUE_9, MON_18) == "tomorrow at 09:00 (Europe/Berlin time)"


@pytest.mark.parametrize(
    ("bad", "where", "message"),
    [
        ({"holidays": {"country": "XX"}}, ("holidays", "country"), "unknown holiday country 'XX'"),
        (
            {"holidays": {"country": "DE", "subdivision": "ZZ"}},
            ("holidays", "subdivision"),
            "unknown subdivision 'ZZ' for DE; known: BB, BE,",
        ),
        ({"holidays": {"subdivision": "BY"}}, ("holidays", "subdivision"), "needs a `country`"),
        ({"holidays": {"country": "DE", "region": "BY"}}, ("holidays", "region"), "Extra inputs"),
        ({"holidays": {"dates": ["2026-13-01"]}}, ("holidays", "dates", 0), "valid date"),
        (
            {
                "exceptions": [
                    {"date": "2026-12-24", "hours": []},
                    {"date": "2026-12-24", "hours": ["09:00-12:00"]},
                ]
            },
            ("exceptions",),
            "2026-12-24 is listed twice (entries 0 and 1)",
        ),
        (
            {"exceptions": [{"date": "2026-12-24", "hours": ["9-12"]}]},
            ("exceptions", 0, "hours", 0),
            "'9-12' is not a time range like '09:00-17:30'",
        ),
        ({"exceptions": [{"date": "2026-12-24"}]}, ("exceptions", 0, "hours"), "Field required"),
        ({"timezone": ""}, ("timezone",), "unknown IANA time zone ''"),
    ],
)
def test_bad_calendars_are_rejected(
    bad: dict[str, object], where: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Hours.model_validate(bad)
    (error,) = caught.value.errors()
    assert error["loc"] == where
    assert message in error["msg"]


def test_empty_keys_are_allowed() -> None:
    calendar = hours(holidays={"country": None, "subdivision": None}).holidays
    assert calendar is not None and not calendar.closes(date(2026, 12, 25))


def test_codes_are_normalised() -> None:
    calendar = hours(holidays={"country": "de", "subdivision": "bayern"}).holidays
    assert calendar is not None
    assert (calendar.country, calendar.subdivision) == ("DE", "BY")


def test_yaml_shape() -> None:
    document = yaml.safe_load(
        """
        timezone: Europe/Berlin
        weekly:
          mon: ["09:00-17:00"]
          fri: ["09:00-15:00", "22:00-02:00"]
        holidays:
          country: DE
          subdivision: BY
          dates: [2026-12-24, 2026-12-31]
        exceptions:
          - date: 2026-12-19
            hours: ["10:00-14:00"]
          - date: 2026-11-30
            hours: []
        """
    )
    loaded = Hours.model_validate(document)
    assert loaded.is_open(at(BERLIN, 2026, 12, 19, 11, 0))  # a Saturday opening
    assert not loaded.is_open(at(BERLIN, 2026, 11, 30, 11, 0))
    assert not loaded.is_open(at(BERLIN, 2026, 12, 31, 11, 0))


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.is_open(datetime(2026, 11, 23, 9, 0))
