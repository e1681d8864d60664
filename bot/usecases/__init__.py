"""The handoff use cases, split by actor behind one facade (``HandoffService``).

* ``facade``: ``HandoffService``, what adapters call;
* ``visitor``: the widget conversation; ``specialist``: the handoff's thread on the desk;
* ``lifecycle``: join timeouts, idle reminders and closes, lost threads, recovery;
* ``opening``: starting a handoff and opening its thread, whoever asks;
* ``effects``: running an event through ``transition`` (compare-and-set) and applying what
  it decides; ``shared``: the ports, settings, locks and texts every part uses;
* ``results``: what the use cases give back (``ThreadResult``...) and take (``UpstreamTurn``).
"""

from bot.transition import Refusal
from bot.usecases.facade import HandoffService
from bot.usecases.results import DeskActionResult, ThreadOutcome, ThreadResult, UpstreamTurn

__all__ = [
    "DeskActionResult",
    "HandoffService",
    "Refusal",
    "ThreadOutcome",
    "ThreadResult",
    "UpstreamTurn",
]
