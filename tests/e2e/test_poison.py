"""A poison message: one that takes the whole process down each time it is handled (as a crash
in a C extension does) is quarantined after a few restarts, instead of a crash loop. The
visitor is told; the conversation goes on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ProcessFactory, VisitorFactory, one_route_config
from tests.support.processes import ROOT
from tests.support.standin import Standin

pytestmark = pytest.mark.e2e

POISON_HOOK = ROOT / "tests" / "support" / "poison"


@pytest.mark.parametrize("innocent_first", [False, True], ids=["alone", "after-an-innocent-one"])
async def test_a_message_that_crashes_the_process_is_quarantined_not_a_crash_loop(
    tmp_path: Path,
    standin: Standin,
    innocent_first: bool,
    start_process: ProcessFactory,
    start_visitor: VisitorFactory,
) -> None:
    """With ``innocent_first``, an ordinary message comes just before the poison one (its place
    in the inbox may not be committed when the process goes down, or both are handled as one
    run): only the poison one is set aside."""
    bot = await start_process(
        one_route_config(tmp_path, standin),
        env={"PYTHONPATH": f"{POISON_HOOK}{os.pathsep}{ROOT}"},
    )
    visitor = await start_visitor(bot)
    await visitor.wait_text("virtual assistant")
    if innocent_first:
        # One after the other: each acknowledged before the process can go down.
        innocent = await visitor.say("what are your opening hours?")
        poison = await visitor.say("POISON pill")
    else:
        innocent, poison = "", await visitor.say("POISON pill")
    # Acknowledged (stored), then it takes the process down.
    assert bot.process is not None and bot.process.wait(20) == 139
    await visitor.disconnect()
    # Restarted as a supervisor would: it goes down again, until the message is set aside.
    crashes = 1
    for _ in range(5):
        bot.spawn()
        exit_code = await bot.exited(within=10)
        if exit_code is None:
            break
        assert exit_code == 139
        crashes += 1
    assert bot.process.poll() is None, "it kept crashing"
    assert crashes == 3, crashes
    await bot.ready()
    await visitor.connect(watermark=visitor.watermark)
    await visitor.wait_text("something went wrong with your last message")
    await visitor.say("what does it cost?")
    await visitor.wait_text("29 EUR")
    await visitor.disconnect()
    bot.stop()
    text = bot.log.read_text()
    seq = int(poison.split("|")[1])
    assert f"activity {seq} quarantined (the process went down 3 times while handling it)" in text
    assert text.count(" quarantined ") == 1
    if innocent_first:
        assert any("Monday to Friday" in t for t in visitor.texts())
        assert f"activity {int(innocent.split('|')[1])} quarantined" not in text
