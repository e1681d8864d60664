"""The ``widget`` section."""

from __future__ import annotations

import pytest

from adapters.ops.config_file import parse_settings
from bot.errors import ConfigError


def test_a_widget_token_too_short_for_web_chat_is_refused() -> None:
    """botframework-directlinejs refreshes every 15 minutes, whatever expires_in says."""
    with pytest.raises(ConfigError) as caught:
        parse_settings("widget:\n  token_ttl_seconds: 600\n", "handoff.yaml")
    assert "handoff.yaml:2" in str(caught.value) and "token_ttl_seconds" in str(caught.value)
