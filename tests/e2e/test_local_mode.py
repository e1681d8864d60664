"""Local mode (no MicrosoftAppId: nothing inbound is authenticated) stays on loopback unless the
operator insists, loudly; the process raises its open-files limit and says so."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import ProcessFactory

pytestmark = pytest.mark.e2e


def _own_address() -> str | None:
    """An address of this machine that is not loopback (None if it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def _reachable(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("insist", [False, True], ids=["default", "insecure-local-mode"])
async def test_local_mode_listens_on_loopback_unless_told_otherwise(
    tmp_path: Path, insist: bool, start_process: ProcessFactory
) -> None:
    config = tmp_path / "handoff.yaml"
    config.write_text(f"storage:\n  sqlite_path: {tmp_path / 'handoff.db'}\n")
    args = ["--host", "0.0.0.0", *(["--insecure-local-mode"] if insist else [])]
    bot = await start_process(config, args=args)
    text = bot.log.read_text()
    assert "open files: up to" in text
    address = _own_address()
    if insist:
        assert "INSECURE: LOCAL MODE on 0.0.0.0" in text
        assert address is None or _reachable(address, bot.port)
    else:
        assert "Listening on 127.0.0.1 instead" in text
        assert f"listening on http://127.0.0.1:{bot.port}" in text
        assert address is None or not _reachable(address, bot.port)
