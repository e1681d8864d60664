"""Loaded by ``python app.py`` only when a test puts this folder on PYTHONPATH: a visitor message
containing POISON takes the whole process down, as a crash inside a C extension would."""

from __future__ import annotations

import os

import bot.usecases.facade

_real = bot.usecases.facade.HandoffService.visitor_message
_real_run = bot.usecases.facade.HandoffService.visitor_messages


async def _visitor_message(self, *, conversation_id, text, now):  # type: ignore[no-untyped-def]
    if "POISON" in text:
        os._exit(139)
    return await _real(self, conversation_id=conversation_id, text=text, now=now)


async def _visitor_messages(self, *, conversation_id, texts, now):  # type: ignore[no-untyped-def]
    if any("POISON" in text for text in texts):
        os._exit(139)  # handled in a run with others: it goes down as well
    return await _real_run(self, conversation_id=conversation_id, texts=texts, now=now)


bot.usecases.facade.HandoffService.visitor_message = _visitor_message  # type: ignore[method-assign]
bot.usecases.facade.HandoffService.visitor_messages = _visitor_messages  # type: ignore[method-assign]
