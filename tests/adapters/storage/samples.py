"""Records the storage tests share."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType

from bot.model import Page, Visitor

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

VISITOR = Visitor(
    id="v1",
    name="Jane",
    email="j@x.example",
    company="Fabrikam",
    page=Page(url="https://x.example", title="X"),
    locale="en",
    timezone="UTC",
    user_agent="UA",
    extra=MappingProxyType({"plan": "Pro"}),
)
