"""The specialist's side: actions at the thread's root and messages in the handoff's thread."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import assert_never

from bot import logcontext
from bot.model import Handoff, HandoffState, Party, Person, Role, Turn
from bot.ports import Direction, Sender, SenderRole
from bot.transition import End, Event, Join, Transfer
from bot.usecases.effects import Effects
from bot.usecases.results import DeskActionResult, ThreadOutcome, ThreadResult
from bot.usecases.shared import Part, Shared
from bot.views import DeskAction, TranscriptView, transcript_view

log = logging.getLogger(__name__)

END_COMMANDS = frozenset({"/end", "/close"})
RECENT_THREADS = 10_000  # threads whose handoff is remembered


class SpecialistCases(Part):
    """The thread: Join and End at its root, replies relayed, notes kept, hand-overs."""

    def __init__(self, shared: Shared, effects: Effects) -> None:
        super().__init__(shared)
        self._effects = effects
        # thread -> the id of its handoff (a thread belongs to one handoff for good): a
        # specialist's messages read the handoff once, under its conversation's lock.
        self._threads: dict[str, tuple[str, str]] = {}

    async def _thread_handoff(self, thread_id: str) -> tuple[str, str] | None:
        """``(handoff id, conversation id)`` of the thread, or None when it is no handoff's."""
        known = self._threads.get(thread_id)
        if known is None:
            handoff = await self._store.handoff_for_thread(thread_id=thread_id)
            if handoff is None:
                return None
            if len(self._threads) >= RECENT_THREADS:
                self._threads.clear()
            known = self._threads[thread_id] = (handoff.id, handoff.conversation_id)
        return known

    async def _current(self, thread_id: str, handoff_id: str) -> Handoff | None:
        """The thread's handoff as stored now (None: gone, deleted by retention)."""
        handoff = await self._store.get_handoff(handoff_id=handoff_id)
        if handoff is None or handoff.thread_id != thread_id:
            self._threads.pop(thread_id, None)
            return None
        return handoff

    async def transcript(self, *, handoff_id: str, thread_id: str) -> TranscriptView | None:
        """The handoff's whole transcript, internal notes marked, asked for from its own thread
        (None from any other: a card's data can be sent from anywhere)."""
        handoff = await self._current(thread_id, handoff_id)
        if handoff is None:
            return None
        conversation = await self._store.get_conversation(conversation_id=handoff.conversation_id)
        if conversation is None:
            return None
        turns = await self._store.turns(conversation_id=handoff.conversation_id)
        return transcript_view(conversation=conversation, turns=turns)

    async def desk_action(
        self,
        *,
        action: DeskAction,
        handoff_id: str,
        person: Person,
        thread_id: str,
        now: datetime,
    ) -> DeskActionResult:
        """Join or End chosen at a thread's root (in the thread ``thread_id``)."""
        logcontext.mark(handoff=handoff_id, thread=thread_id)
        handoff = await self._store.get_handoff(handoff_id=handoff_id)
        if handoff is not None and handoff.thread_id and thread_id != handoff.thread_id:
            log.warning(
                "handoff %s: desk action %s from another conversation %s",
                handoff_id,
                action,
                thread_id,
            )
            handoff = None
        if handoff is None:
            log.warning(
                "desk action %s for unknown handoff %s by %s", action, handoff_id, person.id
            )
            return DeskActionResult(None, "This handoff is not known to me any more.")
        event: Event
        match action:
            case DeskAction.JOIN:
                event = Join(person)
            case DeskAction.END:
                event = End(Party.SPECIALIST, person.name, person)
            case _:
                assert_never(action)
        async with self._locks.hold(handoff.conversation_id):
            # The state may have moved (a transfer, an end) since it was read above.
            current = await self._shared.reload(handoff)
            handoff, notice = await self._effects.act(current, event, now)
            return DeskActionResult(await self._effects.view(handoff, notice), notice)

    async def thread_message(
        self,
        *,
        thread_id: str,
        person: Person,
        text: str,
        now: datetime,
        message_id: str = "",
        mentions: Sequence[Person] = (),
        note: bool = False,
    ) -> ThreadResult:
        """A message posted in a desk thread (``mentions``: people it @mentions, not the bot;
        ``note``: the desk marks it an internal note, never relayed)."""
        unknown = ThreadResult(ThreadOutcome.UNKNOWN, self._shared.text("unknown_thread", {}))
        known = await self._thread_handoff(thread_id)
        if known is None:
            return unknown
        handoff_id, conversation_id = known
        logcontext.mark(conversation=conversation_id, handoff=handoff_id, thread=thread_id)
        async with self._locks.hold(conversation_id):
            handoff = await self._current(thread_id, handoff_id)
            if handoff is None:
                return unknown
            if text.strip().casefold() in END_COMMANDS:
                after, notice = await self._effects.act(
                    handoff, End(Party.SPECIALIST, person.name, person), now
                )
                ended = after.state is HandoffState.ENDED and handoff.state.is_open
                return ThreadResult(ThreadOutcome.ENDED if ended else ThreadOutcome.REFUSED, notice)
            if text.strip().casefold().startswith("/transfer"):
                return await self._transfer(handoff, person, mentions, now)
            joined = handoff.specialist
            if note:
                return await self._note(handoff, person, text, now)
            if (
                handoff.state is HandoffState.JOINED
                and joined is not None
                and joined.id == person.id
            ):
                turn = Turn(handoff.conversation_id, now, Role.SPECIALIST, person.name, text)
                await self._store.add_turn(turn=turn)
                sender = Sender(person.id, person.name, SenderRole.SPECIALIST)
                await self._visitors.say(
                    conversation_id=handoff.conversation_id,
                    sender=sender,
                    text=text,
                    ref=message_id,
                )
                self._shared.relayed(Direction.TO_VISITOR)
                return ThreadResult(ThreadOutcome.RELAYED)
            if not handoff.state.is_open and joined is not None and joined.id == person.id:
                # The specialist kept typing after the end: say the visitor will not see it.
                return ThreadResult(ThreadOutcome.REFUSED, self._shared.text("closed", {}))
            return await self._note(handoff, person, text, now)

    async def _note(
        self, handoff: Handoff, person: Person, text: str, now: datetime
    ) -> ThreadResult:
        """A message in the thread that is not for the visitor: kept in the transcript (for the
        team, marked as a note), never relayed."""
        log.info("handoff %s: internal note from %s, not relayed", handoff.id, person.id)
        await self._store.add_turn(
            turn=Turn(handoff.conversation_id, now, Role.NOTE, person.name, text)
        )
        return ThreadResult(ThreadOutcome.NOTE)

    async def thread_message_changed(
        self, *, thread_id: str, person: Person, message_id: str, text: str | None
    ) -> bool:
        """A specialist edited (or deleted: ``text=None``) a thread message; relayed ones follow."""
        known = await self._thread_handoff(thread_id)
        if known is None or not message_id:
            return False
        handoff_id, conversation_id = known
        sender = Sender(person.id, person.name, SenderRole.SPECIALIST)
        changed = await self._visitors.amend(
            conversation_id=conversation_id, sender=sender, ref=message_id, text=text
        )
        if changed:
            what = "deleted" if text is None else "edited"
            log.info("handoff %s: %s %s a relayed message", handoff_id, person.id, what)
        return changed

    async def _transfer(
        self, handoff: Handoff, person: Person, mentions: Sequence[Person], now: datetime
    ) -> ThreadResult:
        shared = self._shared
        colleague = next((m for m in mentions if m.id != person.id), None)
        if colleague is None:
            return ThreadResult(ThreadOutcome.REFUSED, shared.text("transfer_usage", {}))
        after, notice = await self._effects.act(handoff, Transfer(person, colleague), now)
        if notice:
            return ThreadResult(ThreadOutcome.REFUSED, notice)
        log.info("handoff %s: %s handed over to %s", handoff.id, person.id, colleague.id)
        done = shared.text("transfer_done", shared.names(after))
        return ThreadResult(ThreadOutcome.TRANSFERRED, done)
