"""What each change of a handoff counts: its start, join, end (by outcome), join timeout."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from adapters.ops.metrics import Metrics
from bot.model import Handoff, HandoffState, Party, Person

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
ALEX = Person("a", "Alex")
QUEUED = Handoff("h1", "c1", "billing", HandoffState.QUEUED, T0, "asked")


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_a_handled_handoff_counts_its_start_wait_and_handling() -> None:
    m = Metrics()
    m.handoff_changed(None, QUEUED)
    joined = replace(
        QUEUED, state=HandoffState.JOINED, specialist=ALEX, joined_at=T0 + timedelta(seconds=90)
    )
    m.handoff_changed(QUEUED, joined)
    m.handoff_changed(joined, replace(joined, reminded_at=T0))  # a change that counts nothing
    ended = replace(
        joined,
        state=HandoffState.ENDED,
        ended_at=T0 + timedelta(seconds=690),
        ended_by=Party.VISITOR,
    )
    m.handoff_changed(joined, ended)
    assert value(m, "handoff_started_total", route="billing") == 1
    assert value(m, "handoff_time_to_join_seconds_count", route="billing") == 1
    assert value(m, "handoff_time_to_join_seconds_sum", route="billing") == 90
    assert value(m, "handoff_time_to_join_seconds_bucket", route="billing", le="60.0") == 0
    assert value(m, "handoff_time_to_join_seconds_bucket", route="billing", le="120.0") == 1
    assert value(m, "handoff_handle_seconds_sum", route="billing") == 600
    assert value(m, "handoff_finished_total", route="billing", outcome="handled") == 1


@pytest.mark.parametrize(
    ("after", "outcome"),
    [
        (replace(QUEUED, state=HandoffState.ENDED, ended_by=Party.VISITOR), "cancelled"),
        (replace(QUEUED, state=HandoffState.ENDED, ended_by=Party.SPECIALIST), "declined"),
        (replace(QUEUED, state=HandoffState.ENDED, ended_by=Party.SYSTEM), "abandoned"),
        (replace(QUEUED, state=HandoffState.EXPIRED, timed_out_at=T0), "expired"),
        (replace(QUEUED, state=HandoffState.FAILED, failure="403"), "failed"),
    ],
)
def test_a_handoff_nobody_handled_counts_how_it_ended(after: Handoff, outcome: str) -> None:
    m = Metrics()
    m.handoff_changed(QUEUED, after)
    assert value(m, "handoff_finished_total", route="billing", outcome=outcome) == 1
    assert value(m, "handoff_handle_seconds_count", route="billing") == 0
    assert value(m, "handoff_join_timeouts_total", route="billing") == (outcome == "expired")
    m.handoff_changed(after, after)  # saved again once ended: not counted twice
    assert value(m, "handoff_finished_total", route="billing", outcome=outcome) == 1


def test_a_join_timeout_is_counted_once_even_if_the_handoff_stays_queued() -> None:
    m = Metrics()
    late = replace(QUEUED, timed_out_at=T0 + timedelta(minutes=5))
    m.handoff_changed(QUEUED, late)
    m.handoff_changed(late, replace(late, reminded_at=T0))
    assert value(m, "handoff_join_timeouts_total", route="billing") == 1
    assert value(m, "handoff_finished_total", route="billing", outcome="expired") == 0
