"""The handoff state machine, as a table."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.model import Handoff, HandoffState, Party, Person
from bot.transition import (
    End,
    Join,
    NotifyVisitor,
    OpenFailed,
    PostSummary,
    RefreshRoot,
    Refusal,
    Refuse,
    ThreadOpened,
    VisitorNotice,
    transition,
)

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 9, 5, tzinfo=UTC)
ALEX = Person("a", "Alex")
ISAIAH = Person("i", "Isaiah")

QUEUED = Handoff(
    "h1", "c1", "support", HandoffState.QUEUED, T0, "asked", thread_id="t", root_activity_id="r"
)
JOINED = replace(QUEUED, state=HandoffState.JOINED, specialist=ALEX, joined_at=T0)
ENDED = replace(JOINED, state=HandoffState.ENDED, ended_at=T0, ended_by=Party.VISITOR)
FAILED = replace(QUEUED, state=HandoffState.FAILED, failure="boom")

END_EFFECTS = (NotifyVisitor(VisitorNotice.COMPLETED), RefreshRoot(), PostSummary())

TABLE = [
    # (name, before, event, state after, effects)
    (
        "join queued",
        QUEUED,
        Join(ALEX),
        HandoffState.JOINED,
        (NotifyVisitor(VisitorNotice.ACCEPTED), RefreshRoot()),
    ),
    ("second joiner refused", JOINED, Join(ISAIAH), HandoffState.JOINED, (Refuse(Refusal.TAKEN),)),
    ("double click is a no-op", JOINED, Join(ALEX), HandoffState.JOINED, ()),
    ("join ended", ENDED, Join(ISAIAH), HandoffState.ENDED, (Refuse(Refusal.CLOSED),)),
    ("join failed", FAILED, Join(ISAIAH), HandoffState.FAILED, (Refuse(Refusal.CLOSED),)),
    ("visitor ends queued", QUEUED, End(Party.VISITOR, "Jane"), HandoffState.ENDED, END_EFFECTS),
    ("visitor ends joined", JOINED, End(Party.VISITOR, "Jane"), HandoffState.ENDED, END_EFFECTS),
    (
        "specialist ends own",
        JOINED,
        End(Party.SPECIALIST, "Alex", ALEX),
        HandoffState.ENDED,
        END_EFFECTS,
    ),
    (
        "other specialist cannot end",
        JOINED,
        End(Party.SPECIALIST, "Isaiah", ISAIAH),
        HandoffState.JOINED,
        (Refuse(Refusal.NOT_JOINED),),
    ),
    (
        "any teammate can decline a queued one",
        QUEUED,
        End(Party.SPECIALIST, "Isaiah", ISAIAH),
        HandoffState.ENDED,
        END_EFFECTS,
    ),
    ("end twice", ENDED, End(Party.VISITOR, "Jane"), HandoffState.ENDED, (Refuse(Refusal.CLOSED),)),
    ("system ends joined", JOINED, End(Party.SYSTEM), HandoffState.ENDED, END_EFFECTS),
    (
        "open fails",
        replace(QUEUED, thread_id=""),
        OpenFailed("403"),
        HandoffState.FAILED,
        (NotifyVisitor(VisitorNotice.FAILED),),
    ),
    ("open fails after join is ignored", JOINED, OpenFailed("late"), HandoffState.JOINED, ()),
    (
        "thread opened",
        replace(QUEUED, thread_id="", root_activity_id=""),
        ThreadOpened("t2", "r2"),
        HandoffState.QUEUED,
        (),
    ),
    (
        "thread opened twice keeps the first",
        QUEUED,
        ThreadOpened("t9", "r9"),
        HandoffState.QUEUED,
        (),
    ),
]


@pytest.mark.parametrize(
    ("name", "before", "event", "state", "effects"), TABLE, ids=[row[0] for row in TABLE]
)
def test_transition(
    name: str, before: Handoff, event: object, state: HandoffState, effects: tuple[object, ...]
) -> None:
    after, got = transition(before, event, NOW)  # type: ignore[arg-type]
    assert after.state is state
    assert got == effects
    if not effects or isinstance(effects[0], Refuse):
        assert after == before or after.thread_id != before.thread_id


def test_join_records_who_and_when() -> None:
    after, _ = transition(QUEUED, Join(ALEX), NOW)
    assert after.specialist == ALEX and after.joined_at == NOW


def test_end_records_who_and_when() -> None:
    after, _ = transition(JOINED, End(Party.VISITOR, "Jane"), NOW)
    assert (after.ended_at, after.ended_by, after.ended_by_name) == (NOW, Party.VISITOR, "Jane")


def test_thread_opened_sets_ids() -> None:
    after, _ = transition(
        replace(QUEUED, thread_id="", root_activity_id=""), ThreadOpened("t2", "r2"), NOW
    )
    assert (after.thread_id, after.root_activity_id) == ("t2", "r2")
