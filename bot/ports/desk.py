"""The specialist side, a desk: one thread per handoff in a channel, its root showing the
handoff as it stands. The domain hands over views (``bot.views``); each desk renders them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.views import SummaryView, ThreadView


@dataclass(frozen=True)
class ThreadRef:
    """A desk thread: its id, and the id of its root message."""

    thread_id: str
    root_activity_id: str


class DeskGateway(Protocol):
    """Posting into a desk's threads.

    Sends are queued durably and delivered in order; a thread that turns out to be gone is
    reported back through ``HandoffService.thread_gone``.
    """

    async def open_thread(self, *, channel_id: str, view: ThreadView) -> ThreadRef:
        """Start a new thread in the channel whose root message shows ``view``."""
        ...

    async def post_message(self, *, thread_id: str, author: str, text: str) -> None:
        """Reply in the thread on someone's behalf."""
        ...

    async def post_summary(self, *, thread_id: str, view: SummaryView) -> None:
        """Reply in the thread with the end-of-handoff summary."""
        ...

    async def update_thread(self, *, thread_id: str, root_id: str, view: ThreadView) -> None:
        """Show ``view`` at the thread's root (the message ``root_id``), for everyone."""
        ...
