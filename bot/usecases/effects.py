"""Applying what the state machine decides: an event goes through ``transition``, the handoff
is saved (compare-and-set), and its effects reach the visitor and the thread on the desk."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from bot import logcontext
from bot.errors import GatewayError, StaleWriteError
from bot.model import Handoff, HandoffState, Party, Visitor
from bot.summary import end_summary
from bot.transition import (
    Effect,
    Event,
    NotifyVisitor,
    PostSummary,
    RefreshRoot,
    Refuse,
    TellVisitor,
    VisitorNotice,
    transition,
)
from bot.usecases.shared import Part
from bot.views import ThreadView, summary_view, thread_view

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]

_CAS_ATTEMPTS = 5


def _ended_key(handoff: Handoff) -> str:
    """Which text tells the visitor the handoff ended: by whom, and whether anyone had joined."""
    if handoff.specialist is None:
        return {Party.VISITOR: "cancelled_by_visitor", Party.SPECIALIST: "declined"}.get(
            handoff.ended_by or Party.SYSTEM, "ended_idle"
        )
    return {Party.VISITOR: "ended_by_visitor", Party.SPECIALIST: "ended_by_specialist"}.get(
        handoff.ended_by or Party.SYSTEM, "ended_idle"
    )


class Effects(Part):
    """Events in, effects out: the one way a handoff's state changes."""

    async def act(self, handoff: Handoff, event: Event, now: datetime) -> tuple[Handoff, str]:
        """Run one event through the state machine, save it (compare-and-set), apply effects;
        returns the handoff after, and any notice for whoever caused the event."""
        with logcontext.about(
            conversation=handoff.conversation_id, handoff=handoff.id, thread=handoff.thread_id
        ):
            return await self._act(handoff, event, now)

    async def _act(self, handoff: Handoff, event: Event, now: datetime) -> tuple[Handoff, str]:
        for _ in range(_CAS_ATTEMPTS):
            after, effects = transition(handoff, event, now)
            if after == handoff:
                break
            try:
                saved = await self._store.save_handoff(handoff=after)
                self._shared.changed(handoff, saved)
                if saved.state is not handoff.state:
                    log.info("handoff %s: %s -> %s", saved.id, handoff.state, saved.state)
                after = saved
                break
            except StaleWriteError:
                handoff = await self._shared.reload(handoff)
        else:
            raise StaleWriteError(f"handoff {handoff.id} kept changing under us")
        notice = await self._apply(after, effects, now)
        return after, notice

    async def _apply(self, handoff: Handoff, effects: Sequence[Effect], now: datetime) -> str:
        shared = self._shared
        notice = ""
        conversation = await shared.conversation(handoff.conversation_id)
        for effect in effects:
            match effect:
                case NotifyVisitor(notice=what):
                    await self.notify(handoff, conversation.visitor, what, now)
                case RefreshRoot():
                    await self._to_thread(handoff, "update the root", self._refresh_job(handoff))
                case PostSummary():
                    await self._to_thread(
                        handoff, "post the summary", self._summary_job(handoff, now)
                    )
                case TellVisitor(text=key):
                    await shared.bot_says(conversation, key, now, shared.names(handoff))
                case Refuse(why=why):
                    notice = shared.text(why.value, shared.names(handoff))
                    log.info("handoff %s: refused (%s)", handoff.id, why.value)
        return notice

    async def notify(
        self, handoff: Handoff, visitor: Visitor, notice: VisitorNotice, now: datetime
    ) -> None:
        """Tell the widget how the handoff stands: a status event and a message."""
        key = {
            VisitorNotice.QUEUED: "queued",
            VisitorNotice.ACCEPTED: "joined",
            VisitorNotice.FAILED: "join_timeout"
            if handoff.state is HandoffState.EXPIRED
            else "failed",
            VisitorNotice.COMPLETED: _ended_key(handoff),
        }[notice]
        shared = self._shared
        values = {"visitor": visitor.name, **shared.names(handoff)}
        text = shared.text(key, values, visitor.locale)
        await self._visitors.status(
            conversation_id=handoff.conversation_id,
            sender=shared.bot,
            state=notice.value,
            text=text,
        )
        await shared.say(handoff.conversation_id, text, now)

    async def view(self, handoff: Handoff, notice: str = "") -> ThreadView:
        """The thread's root as the handoff stands (``notice``: for the one who acted)."""
        conversation = await self._shared.conversation(handoff.conversation_id)
        return thread_view(
            handoff=handoff,
            route=self._shared.route(handoff),
            visitor=conversation.visitor,
            turns=await self._store.turns(conversation_id=conversation.id),
            notice=notice,
        )

    async def _to_thread(self, handoff: Handoff, what: str, job: Job) -> None:
        """Queue desk work for the handoff's thread (a durable, ordered queue: quick)."""
        if not handoff.thread_id:
            return
        try:
            await job()
        except GatewayError as exc:
            log.error("handoff %s: could not %s: %s", handoff.id, what, exc)

    def _refresh_job(self, handoff: Handoff) -> Job:
        async def refresh() -> None:
            # Built when it runs, from the latest state: the last update always shows the truth.
            current = await self._shared.reload(handoff)
            if current.root_activity_id:
                await self._desk.update_thread(
                    thread_id=current.thread_id,
                    root_id=current.root_activity_id,
                    view=await self.view(current),
                )

        return refresh

    def _summary_job(self, handoff: Handoff, now: datetime) -> Job:
        async def post() -> None:
            conversation = await self._shared.conversation(handoff.conversation_id)
            turns = await self._store.turns(conversation_id=conversation.id)
            summary = end_summary(handoff, turns, conversation.visitor.display_name, now)
            await self._desk.post_summary(thread_id=handoff.thread_id, view=summary_view(summary))

        return post
