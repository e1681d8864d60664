"""The specialist desk in Teams (``bot.ports.DeskGateway``): views rendered as Adaptive Cards,
sent through the paced delivery queue, which stores what it sends as card JSON."""

from __future__ import annotations

from adapters.teams.cards import summary_card, thread_card
from adapters.teams.delivery import DeliveryQueue
from bot.ports import ThreadRef
from bot.views import SummaryView, ThreadView


class TeamsDesk:
    """Renders views to cards; everything else is the delivery queue's."""

    def __init__(self, delivery: DeliveryQueue) -> None:
        self._delivery = delivery

    async def open_thread(self, *, channel_id: str, view: ThreadView) -> ThreadRef:
        return await self._delivery.open_thread(
            channel_id=channel_id, card=thread_card(view), text=view.headline
        )

    async def post_message(self, *, thread_id: str, author: str, text: str) -> None:
        await self._delivery.post_message(thread_id=thread_id, author=author, text=text)

    async def post_summary(self, *, thread_id: str, view: SummaryView) -> None:
        await self._delivery.post_card(
            thread_id=thread_id, card=summary_card(view), text=view.headline
        )

    async def update_thread(self, *, thread_id: str, root_id: str, view: ThreadView) -> None:
        await self._delivery.update_card(
            thread_id=thread_id, activity_id=root_id, card=thread_card(view)
        )
