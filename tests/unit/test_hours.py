"""Work hours around DST changes and midnight, as tables."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot.hours import Hours

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = Hours(
    timezone="Europe/Berlin",
    weekly={"mon": ["09:00-12:30", "13:30-17:00"], "sun": ["09:00-17:00"], "fri": ["22:00-02:00"]},
)
ALL_DAY = Hours(timezone="America/New_York", weekly={"sat": ["00:00-24:00"]})


def at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)  # type: ignore[misc]


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
