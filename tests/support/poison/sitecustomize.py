"""Loaded by ``python app.py`` only when a test puts this folder on PYTHONPATH: a visitor message
containing POISON takes the whole process down, as a crash inside a C extension would."""

from __future__ import annotations

import os

import bot.usecases.facade

_real = bot.usecases.facade.HandoffService.visitor_message


async def _visitor_message(self, *, conversation_id, text, now):  # type: ignore[no-untyped-def]
    if "POISON" in text:
        os._exit(139)
    return await _real(self, conversation_id=conversation_id, text=text, now=now)


bot.usecases.facade.HandoffService.visitor_message = _visitor_message  # type: ignore[method-assign]
