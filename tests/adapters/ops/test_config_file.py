"""Config problems name the file, the line and the key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapters.ops.config_file import load_settings, parse_settings
from adapters.ops.settings import ServiceSettings
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]

GOOD = """\
teams:
  service_url: https://smba.trafficmanager.net/teams/
  tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47
routes:
  - id: support
    channel: "19:abc@thread.tacv2"
    hours:
      timezone: Europe/Berlin
      weekly:
        mon: ["09:00-17:00"]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, "handoff.yaml")
    return caught.value.problems


def test_good_file_loads() -> None:
    settings = parse_settings(GOOD, "handoff.yaml")
    assert settings.teams.service_url == "https://smba.trafficmanager.net/teams"
    assert settings.routes[0].hours is not None


def test_shipped_example_is_valid() -> None:
    settings = load_settings(ROOT / "config" / "handoff.yaml")
    assert settings.routes[0].id == "support"


def test_empty_file_is_the_embedded_defaults() -> None:
    assert parse_settings("", "handoff.yaml") == ServiceSettings()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("    channel:", "    chanel:"),
            [
                "handoff.yaml:5: routes[0].channel: required key is missing",
                "handoff.yaml:6: routes[0].chanel: unknown key",
            ],
        ),
        (
            GOOD.replace("19:abc@thread.tacv2", "general"),
            [
                "handoff.yaml:6: routes[0].channel: give a channel id (19:...@thread.tacv2) or the link from the channel's 'Copy link to channel' (https://teams.microsoft.com/l/channel/...)"
            ],
        ),
        (
            GOOD.replace("Europe/Berlin", "Europe/Atlantis"),
            ["handoff.yaml:8: routes[0].hours.timezone: unknown IANA time zone 'Europe/Atlantis'"],
        ),
        (
            GOOD.replace('["09:00-17:00"]', '["9 to 5"]'),
            [
                "handoff.yaml:10: routes[0].hours.weekly.mon[0]: '9 to 5' is not a time range like '09:00-17:30'"
            ],
        ),
        (GOOD + "colour: blue\n", ["handoff.yaml:11: colour: unknown key"]),
        (
            GOOD.replace("  tenant_id", "  tenant_id: x\n  tenant_id"),
            ["handoff.yaml:4: teams.tenant_id: key given twice"],
        ),
        ("teams: [1, 2\n", ["handoff.yaml:2: (yaml): expected ',' or ']', but got '<stream end>'"]),
        ("- just\n- a list\n", ["handoff.yaml:1: (top level): must be a mapping of sections"]),
        (
            GOOD + "widget:\n  max_message_chars: lots\n",
            [
                "handoff.yaml:12: widget.max_message_chars: Input should be a valid integer, unable to parse string as an integer"
            ],
        ),
        (
            GOOD + "texts:\n  joined: '{specialist} and {nobody}'\n",
            [
                "handoff.yaml:12: texts.joined: unknown placeholder {nobody} (allowed: back, bot, duration, reason, route, specialist, visitor, visitor_comma)"
            ],
        ),
        (
            GOOD + "  - id: support\n    channel: '19:x@thread.tacv2'\n",
            ["handoff.yaml:4: routes: route id 'support' is used twice"],
        ),
    ],
    ids=[
        "unknown-key",
        "bad-channel",
        "bad-zone",
        "bad-range",
        "unknown-section",
        "duplicate-key",
        "yaml-syntax",
        "not-a-mapping",
        "wrong-type",
        "bad-placeholder",
        "duplicate-route",
    ],
)
def test_problems_name_line_and_key(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "missing.yaml")
    assert caught.value.problems[0].startswith(
        f"{tmp_path / 'missing.yaml'}:0: (file): cannot read"
    )


def test_app_refuses_to_start_on_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("    channel:", "    chanel:"))
    run = subprocess.run(
        [sys.executable, "app.py", "--config", str(bad), "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert f"{bad}:6: routes[0].chanel: unknown key" in run.stderr
    assert "Traceback" not in run.stderr


def test_committed_schema_is_generated_from_the_models() -> None:
    run = subprocess.run(
        [sys.executable, "app.py", "schema"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert run.stdout == (ROOT / "config" / "handoff.schema.json").read_text(), (
        "config/handoff.schema.json is stale: run `python app.py schema --write`"
    )


def test_check_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("Europe/Berlin", "Europe/Atlantis"))
    run = subprocess.run(
        [sys.executable, "app.py", "check", str(ROOT / "config" / "handoff.yaml"), str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert run.stdout.splitlines() == [
        f"{ROOT / 'config' / 'handoff.yaml'}: ok (1 route(s))",
        f"{ROOT / 'config' / 'handoff.tests.yaml'}: 4 test(s) passed",  # its tests beside it
        f"{bad}:8: routes[0].hours.timezone: unknown IANA time zone 'Europe/Atlantis'",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("teams:\n  tenant_id: a\x01b\n", "handoff.yaml:2: (yaml): unacceptable character #x0001"),
        ("a: &a [*a]\nroutes: *a\n", "handoff.yaml:1: a[0]: an alias refers to itself"),
    ],
)
def test_unreadable_yaml_is_a_config_error(text: str, expected: str) -> None:
    assert problems(text)[0].startswith(expected)


def test_latin1_file_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"bot:\n  name: Andr\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(bad)
    assert caught.value.problems == [f"{bad}:2: (file): not UTF-8 (invalid continuation byte)"]


def test_join_timeout_routes_cannot_go_in_circles() -> None:
    routes = (
        "routes:\n"
        + "".join(
            f"  - {{id: {a}, channel: '19:{a}@thread.tacv2', on_join_timeout: route, join_timeout_route: {b}}}\n"
            for a, b in (("a", "b"), ("b", "a"))
        )
        + "  - {id: c, channel: '19:c@thread.tacv2'}\n"
    )
    assert problems(routes) == [
        "handoff.yaml:1: routes: join_timeout_route goes round in a circle: a -> b -> a"
    ]


def test_yaml_merge_keys_may_override_what_they_bring() -> None:
    """``<<: *anchor`` then a key of the anchor's: an override, not a key given twice."""
    settings = parse_settings(
        "routes:\n"
        "  - &support\n"
        "    id: support\n"
        "    name: Support\n"
        '    channel: "19:abc@thread.tacv2"\n'
        "  - <<: *support\n"
        "    id: sales\n"
        "    name: Sales\n"
        "    trigger: 'context.domain == \"sales\"'\n",
        "handoff.yaml",
    )
    assert [(r.id, r.name, r.channel) for r in settings.routes] == [
        ("support", "Support", "19:abc@thread.tacv2"),
        ("sales", "Sales", "19:abc@thread.tacv2"),
    ]


ONE_ROUTE = "routes:\n  - id: support\n    channel: '19:abc@thread.tacv2'\n"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        # A format spec would write megabytes per message, or fail on every one.
        (
            "texts:\n  hello: 'Hello {bot:>100000000}'\n",
            "texts.hello: write the placeholder as {bot}, without a format or a !",
        ),
        ("texts:\n  greeting: 'Hi{visitor:%}'\n", "texts.greeting: write the placeholder"),
        ("texts:\n  joined: '{specialist!r}'\n", "texts.joined: write the placeholder"),
        # Infinite or absurd waits would overflow the sweeper's clock arithmetic.
        ("    join_timeout_minutes: 1e300\n", "routes[0].join_timeout_minutes: Input should"),
        ("    idle_close_minutes: .inf\n", "routes[0].idle_close_minutes: Input should"),
        # Hours lists that every handoff request would walk.
        (
            "    hours:\n      holidays:\n        dates: ["
            + ", ".join("2026-01-01" for _ in range(1001))
            + "]\n",
            "routes[0].hours.holidays.dates: List should have at most 1000 items",
        ),
        (
            "    hours:\n      weekly:\n        mon: [" + ", ".join(['"09:00-10:00"'] * 49) + "]\n",
            "routes[0].hours.weekly.mon: List should have at most 48 items",
        ),
    ],
    ids=["format-spec", "format-code", "conversion", "huge-timeout", "infinite", "dates", "ranges"],
)
def test_values_that_would_misbehave_at_run_time_are_refused(extra: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_settings(ONE_ROUTE + extra, "handoff.yaml")
    assert any(problem in line for line in refused.value.problems), refused.value.problems
