"""What the domain needs from the edges, as Protocols the adapters implement.

* ``store``: where records are kept (``HandoffStore``);
* ``desk``: the specialist side, threads showing views (``DeskGateway``, ``ThreadRef``);
* ``visitor``: the widget (``VisitorGateway``, ``Sender``, ``SenderRole``, ``Choice``);
* ``observer``: whoever watches the service, the metrics (``Observer``, ``Direction``).
"""

from bot.ports.desk import DeskGateway, ThreadRef
from bot.ports.observer import Direction, Observer, Unobserved
from bot.ports.store import HandoffStore
from bot.ports.visitor import Choice, Sender, SenderRole, VisitorGateway

__all__ = [
    "Choice",
    "DeskGateway",
    "Direction",
    "HandoffStore",
    "Observer",
    "Sender",
    "SenderRole",
    "ThreadRef",
    "Unobserved",
    "VisitorGateway",
]
