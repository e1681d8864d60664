"""The service's event loop: uvloop by default, asyncio on request, a clear error otherwise."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from adapters.runtime.eventloop import new_event_loop


@pytest.mark.parametrize(
    ("env", "kind"),
    [({}, uvloop.Loop), ({"HANDOFF_EVENT_LOOP": "asyncio"}, asyncio.BaseEventLoop)],
)
def test_loop_choice(env: dict[str, str], kind: type) -> None:
    loop = new_event_loop(env)
    try:
        assert isinstance(loop, kind)
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        loop.close()


def test_unknown_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="uvloop or asyncio"):
        new_event_loop({"HANDOFF_EVENT_LOOP": "trio"})
