"""A poison message: one that takes the whole process down each time it is handled (as a crash
in a C extension does) is quarantined after a few restarts, instead of a crash loop. The
visitor is told; the conversation goes on."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import one_route_config
from tests.support.directline_client import DirectLineClient
from tests.support.processes import ROOT, free_port, wait_http
from tests.support.standin import Standin

pytestmark = pytest.mark.e2e

POISON_HOOK = ROOT / "tests" / "support" / "poison"


def _start(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("Microsoft")}
    env["PYTHONPATH"] = f"{POISON_HOOK}{os.pathsep}{ROOT}"
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "app.py", "--config", str(config), "--port", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


@pytest.mark.parametrize("innocent_first", [False, True], ids=["alone", "after-an-innocent-one"])
async def test_a_message_that_crashes_the_process_is_quarantined_not_a_crash_loop(
    tmp_path: Path, standin: Standin, innocent_first: bool
) -> None:
    """With ``innocent_first``, an ordinary message is handled just before the poison one (its
    place in the inbox may not be committed when the process goes down): only the poison one
    is set aside."""
    config = one_route_config(tmp_path, standin)
    port, log = free_port(), tmp_path / "bot.log"
    url = f"http://127.0.0.1:{port}"
    process = _start(config, port, log)
    await wait_http(f"{url}/healthz", process, log)
    async with aiohttp.ClientSession() as http:
        visitor = DirectLineClient(http, f"{url}/v3/directline", origin=url)
        await visitor.start()
        await visitor.wait_text("virtual assistant")
        if innocent_first:
            innocent, poison = await asyncio.gather(
                visitor.say("what are your opening hours?"), visitor.say("POISON pill")
            )
        else:
            innocent, poison = "", await visitor.say("POISON pill")
        # Acknowledged (stored), then it takes the process down.
        assert process.wait(20) == 139
        await visitor.disconnect()
        # Restarted as a supervisor would: it goes down again, until the message is set aside.
        crashes = 1
        for _ in range(5):
            process = _start(config, port, log)
            for _ in range(200):
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            if process.poll() is None:
                break
            assert process.returncode == 139
            crashes += 1
        try:
            assert process.poll() is None, "it kept crashing"
            assert crashes == 3, crashes
            await wait_http(f"{url}/healthz", process, log)
            await visitor.connect(watermark=visitor.watermark)
            await visitor.wait_text("something went wrong with your last message")
            await visitor.say("what does it cost?")
            await visitor.wait_text("29 EUR")
            await visitor.disconnect()
        finally:
            process.terminate()
            process.wait(10)
    text = log.read_text()
    seq = int(poison.split("|")[1])
    assert f"activity {seq} quarantined (the process went down 3 times while handling it)" in text
    assert text.count(" quarantined ") == 1
    if innocent_first:
        assert any("Monday to Friday" in t for t in visitor.texts())
        assert f"activity {int(innocent.split('|')[1])} quarantined" not in text
