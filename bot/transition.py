"""The handoff state machine: ``transition(handoff, event, now) -> (handoff, effects)``, pure."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from bot.model import Handoff, HandoffState, Party, Person


@dataclass(frozen=True)
class ThreadOpened:
    """The handoff's thread on the desk exists now."""

    thread_id: str
    root_activity_id: str


@dataclass(frozen=True)
class OpenFailed:
    """The handoff's thread could not be opened."""

    reason: str


@dataclass(frozen=True)
class ThreadLost:
    """The desk says the thread or its channel is gone, or the bot was removed."""

    reason: str


@dataclass(frozen=True)
class Join:
    """A specialist chose to join the conversation."""

    specialist: Person


@dataclass(frozen=True)
class End:
    """Someone ended the handoff."""

    by: Party
    name: str = ""
    # Only the joined specialist may end from the desk; visitors and the system always may.
    person: Person | None = None


@dataclass(frozen=True)
class JoinTimedOut:
    """Nobody joined within the route's limit; ``action`` is the route's ``on_join_timeout``."""

    action: str  # keep_bot | leave_message | route


@dataclass(frozen=True)
class Transfer:
    """The joined specialist hands the conversation to a colleague."""

    by: Person
    to: Person


@dataclass(frozen=True)
class IdleReminder:
    """The joined conversation has been quiet for a while."""


Event = ThreadOpened | OpenFailed | ThreadLost | Join | End | JoinTimedOut | IdleReminder | Transfer


class VisitorNotice(StrEnum):
    """What the visitor is told; the value is the Bot Framework handoff status word."""

    QUEUED = "queued"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    FAILED = "failed"


class Refusal(StrEnum):
    """Why an action on a handoff was refused."""

    TAKEN = "taken"
    CLOSED = "closed"
    NOT_JOINED = "not_joined"


@dataclass(frozen=True)
class NotifyVisitor:
    """Tell the visitor about progress (status event plus a readable message)."""

    notice: VisitorNotice


@dataclass(frozen=True)
class RefreshRoot:
    """Show the handoff as it now stands at its thread's root, for everyone."""


@dataclass(frozen=True)
class PostSummary:
    """Post the conversation summary as a reply in the thread."""


@dataclass(frozen=True)
class Refuse:
    """Tell whoever acted why nothing happened."""

    why: Refusal


@dataclass(frozen=True)
class TellVisitor:
    """A plain message to the visitor (text key), no status change."""

    text: str


Effect = NotifyVisitor | RefreshRoot | PostSummary | Refuse | TellVisitor


def transition(handoff: Handoff, event: Event, now: datetime) -> tuple[Handoff, tuple[Effect, ...]]:
    """Apply one event; an event that does not apply leaves the handoff as it is."""
    state = handoff.state
    match event:
        case ThreadOpened(thread_id=thread_id, root_activity_id=root_id):
            if state is HandoffState.QUEUED and not handoff.thread_id:
                return replace(handoff, thread_id=thread_id, root_activity_id=root_id), ()
            return handoff, ()
        case OpenFailed(reason=reason):
            if state is HandoffState.QUEUED:
                failed = replace(handoff, state=HandoffState.FAILED, failure=reason, ended_at=now)
                return failed, (NotifyVisitor(VisitorNotice.FAILED),)
            return handoff, ()
        case ThreadLost(reason=reason):
            if state.is_open:
                lost = replace(handoff, state=HandoffState.FAILED, failure=reason, ended_at=now)
                return lost, (NotifyVisitor(VisitorNotice.FAILED),)
            return handoff, ()
        case JoinTimedOut(action=action):
            if state is not HandoffState.QUEUED or handoff.timed_out_at is not None:
                return handoff, ()
            if action == "leave_message":
                waiting = replace(handoff, timed_out_at=now)
                return waiting, (TellVisitor("leave_message"), RefreshRoot())
            # keep_bot and route alike: the visitor hears it now; a next route says its own piece.
            expired = replace(handoff, state=HandoffState.EXPIRED, timed_out_at=now, ended_at=now)
            return expired, (NotifyVisitor(VisitorNotice.FAILED), RefreshRoot())
        case Transfer(by=by, to=to):
            if state is not HandoffState.JOINED or handoff.specialist is None:
                return handoff, (
                    Refuse(Refusal.CLOSED if not state.is_open else Refusal.NOT_JOINED),
                )
            if handoff.specialist.id != by.id:
                return handoff, (Refuse(Refusal.NOT_JOINED),)
            if to.id == by.id:
                return handoff, ()
            moved = replace(handoff, specialist=to, joined_at=now, reminded_at=None)
            return moved, (TellVisitor("transferred"), RefreshRoot())
        case IdleReminder():
            if state is HandoffState.JOINED:
                return replace(handoff, reminded_at=now), (TellVisitor("idle_reminder"),)
            return handoff, ()
        case Join(specialist=who):
            if state is HandoffState.QUEUED:
                joined = replace(handoff, state=HandoffState.JOINED, specialist=who, joined_at=now)
                return joined, (NotifyVisitor(VisitorNotice.ACCEPTED), RefreshRoot())
            if state is HandoffState.JOINED:
                if handoff.specialist is not None and handoff.specialist.id == who.id:
                    return handoff, ()  # a double click, nothing to do
                return handoff, (Refuse(Refusal.TAKEN),)
            return handoff, (Refuse(Refusal.CLOSED),)
        case End(by=by, name=name, person=person):
            if not state.is_open:
                return handoff, (Refuse(Refusal.CLOSED),)
            if (
                by is Party.SPECIALIST
                and state is HandoffState.JOINED
                and handoff.specialist is not None
                and (person is None or person.id != handoff.specialist.id)
            ):
                return handoff, (Refuse(Refusal.NOT_JOINED),)
            ended = replace(
                handoff, state=HandoffState.ENDED, ended_at=now, ended_by=by, ended_by_name=name
            )
            return ended, (NotifyVisitor(VisitorNotice.COMPLETED), RefreshRoot(), PostSummary())
    return handoff, ()  # pragma: no cover - match is exhaustive over Event
