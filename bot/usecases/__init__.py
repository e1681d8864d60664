"""The handoff use cases, split by actor behind one facade (``HandoffService``).

* ``facade``: ``HandoffService``, what adapters call (the same methods as ever);
* ``visitor``: the widget conversation; ``specialist``: the Teams thread;
* ``lifecycle``: join timeouts, idle reminders and closes, lost threads, recovery;
* ``opening``: starting a handoff and opening its thread, whoever asks;
* ``effects``: running an event through ``transition`` (compare-and-set) and applying what
  it decides; ``shared``: the ports, settings, locks and texts every part uses;
* ``results``: what the use cases give back (``ThreadResult``...) and take (``UpstreamTurn``).
"""

from bot.transition import Refusal
from bot.usecases.facade import HandoffService
from bot.usecases.results import CardActionResult, ThreadOutcome, ThreadResult, UpstreamTurn

__all__ = [
    "CardActionResult",
    "HandoffService",
    "Refusal",
    "ThreadOutcome",
    "ThreadResult",
    "UpstreamTurn",
]
