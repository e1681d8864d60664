"""What time and the outside world do to open handoffs: join timeouts, idle reminders and
closes (the periodic sweep), a thread that is gone, and recovery after a restart."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.config import Route
from bot.errors import StoreError
from bot.model import Handoff, HandoffState, Party
from bot.summary import format_duration
from bot.transition import End, IdleReminder, JoinTimedOut, ThreadLost
from bot.usecases.effects import Effects
from bot.usecases.opening import Opening
from bot.usecases.shared import Part, Shared

log = logging.getLogger(__name__)


class LifecycleCases(Part):
    """Timers and recovery: what happens to a handoff when nobody acts."""

    def __init__(self, shared: Shared, effects: Effects, opening: Opening) -> None:
        super().__init__(shared)
        self._effects = effects
        self._opening = opening

    async def sweep(self, *, now: datetime) -> None:
        """Apply join timeouts and inactivity to open handoffs (called periodically)."""
        for handoff in await self._store.open_handoffs():
            route = self._shared.route(handoff)
            try:
                if handoff.state is HandoffState.QUEUED and handoff.timed_out_at is None:
                    waited = now - handoff.created_at
                    if waited >= timedelta(minutes=route.join_timeout_minutes):
                        await self._join_timed_out(handoff, route, now)
                elif handoff.state is HandoffState.QUEUED:
                    await self._check_idle(handoff, route, now)  # a left message, gone quiet
                elif handoff.state is HandoffState.JOINED:
                    await self._check_idle(handoff, route, now)
            except StoreError as exc:  # the store is failing: one line, it says why
                log.error("handoff %s: sweep failed: %s", handoff.id, exc)
            except Exception:  # one handoff that cannot be swept must not stop the others
                log.exception("handoff %s: sweep failed", handoff.id)

    async def _join_timed_out(self, handoff: Handoff, route: Route, now: datetime) -> None:
        action = route.on_join_timeout.value
        log.warning(
            "handoff %s: nobody joined within %g min (%s)",
            handoff.id,
            route.join_timeout_minutes,
            action,
        )
        shared = self._shared
        async with self._locks.hold(handoff.conversation_id):
            current = await shared.reload(handoff)
            after, _ = await self._effects.act(current, JoinTimedOut(action), now)
            target = self.settings.route(route.join_timeout_route)
            if action == "route" and after.state is HandoffState.EXPIRED and target is not None:
                conversation = await shared.conversation(handoff.conversation_id)
                reason = f"nobody joined on {route.title} within {route.join_timeout_minutes:g} min"
                await self._opening.start(conversation, reason, "", now, route=target)

    async def _check_idle(self, handoff: Handoff, route: Route, now: datetime) -> None:
        last = await self._store.last_human_turn_at(conversation_id=handoff.conversation_id)
        marks = (last, handoff.joined_at, handoff.timed_out_at, handoff.created_at)
        since = max(t for t in marks if t is not None)
        idle = now - since
        if idle >= timedelta(minutes=route.idle_close_minutes):
            log.info("handoff %s: closed after %s without messages", handoff.id, idle)
            async with self._locks.hold(handoff.conversation_id):
                event = End(Party.SYSTEM, f"no messages for {format_duration(idle)}")
                await self._effects.act(await self._shared.reload(handoff), event, now)
        elif (
            handoff.state is HandoffState.JOINED
            and idle >= timedelta(minutes=route.idle_reminder_minutes)
            and (handoff.reminded_at is None or handoff.reminded_at < since)
        ):
            async with self._locks.hold(handoff.conversation_id):
                await self._effects.act(await self._shared.reload(handoff), IdleReminder(), now)

    async def thread_gone(self, *, thread_id: str, reason: str, now: datetime) -> None:
        """The desk says the thread or its channel is gone (or the bot was removed): end it."""
        handoff = await self._store.handoff_for_thread(thread_id=thread_id)
        if handoff is None:
            return
        log.error("handoff %s: its thread is gone (%s); ending it", handoff.id, reason)
        async with self._locks.hold(handoff.conversation_id):
            await self._effects.act(await self._shared.reload(handoff), ThreadLost(reason), now)

    async def recover(self, *, now: datetime) -> None:
        """After a restart: open the threads of handoffs that were queued but never opened."""
        shared = self._shared
        for handoff in await self._store.unopened_handoffs():
            log.warning(
                "handoff %s: queued without a thread after a restart; opening it", handoff.id
            )
            async with self._locks.hold(handoff.conversation_id):
                conversation = await shared.conversation(handoff.conversation_id)
                await self._opening.open_thread(await shared.reload(handoff), conversation, now)
