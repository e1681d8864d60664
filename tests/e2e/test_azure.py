"""``infra/azure/main.bicep``: the Bicep compiler cannot run here, so the template is parsed
(``pycep-parser``, as ``checkov`` carries it) and checked for what the deployment must have,
and ``checkov`` scans it with its Azure policies; nothing is deployed. Both tools live in their
own virtualenv (``make iac-tools``: ``.venv-iac``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need

ROOT = Path(__file__).parents[2]
AZURE = ROOT / "infra" / "azure"
IAC = ROOT / ".venv-iac" / "bin"
# The checks skipped in the template, each with its reason there.
SKIPPED = {"CKV_AZURE_189", "CKV_AZURE_109"}

PARSE = """
import json, sys
from pathlib import Path
from pycep import BicepParser
print(json.dumps(BicepParser().parse(text=Path(sys.argv[1]).read_text()), default=str))
"""


def _tool(name: str) -> str:
    path = IAC / name
    need(path.exists(), f"{path} is missing (make iac-tools)")
    return str(path)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    done = subprocess.run(
        [_tool("python"), "-c", PARSE, str(AZURE / "main.bicep")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def _of(template: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [r for r in template["resources"].values() if r["type"] == kind]
    assert len(found) == 1, kind
    config: dict[str, Any] = found[0]["config"]
    return config


def test_the_template_has_what_microsofts_samples_deploy(template: dict[str, Any]) -> None:
    bot = _of(template, "Microsoft.BotService/botServices")
    assert bot["kind"] == "azurebot" and bot["location"] == "global"
    assert bot["properties"]["endpoint"] == "https://${botHost}/api/messages"
    assert bot["properties"]["msaAppType"] == "appType"
    app_types = next(
        d["argument"] for d in template["parameters"]["appType"]["decorators"]
        if d["type"] == "allowed"
    )  # fmt: skip
    assert sorted(app_types) == ["SingleTenant", "UserAssignedMSI"]  # no new multi-tenant bots
    channel = _of(template, "Microsoft.BotService/botServices/channels")
    assert channel["name"] == "MsTeamsChannel"
    app = _of(template, "Microsoft.App/containerApps")["properties"]
    assert app["configuration"]["ingress"]["targetPort"] == 3978
    assert app["configuration"]["ingress"]["allowInsecure"] is False
    replicas = template["parameters"]["minReplicas"]
    assert replicas["default"] >= 2
    assert {"type": "min_value", "argument": 2} in replicas["decorators"]
    probes = {p["type"]: p["httpGet"]["path"] for p in app["template"]["containers"][0]["probes"]}
    assert probes == {"Startup": "/healthz", "Liveness": "/healthz", "Readiness": "/readyz"}
    postgres = _of(template, "Microsoft.DBforPostgreSQL/flexibleServers")
    assert postgres["properties"]["version"] == "16"
    assert _of(template, "Microsoft.KeyVault/vaults")["properties"]["enableRbacAuthorization"]
    assert _of(template, "Microsoft.OperationalInsights/workspaces")
    assert _of(template, "Microsoft.App/managedEnvironments")["properties"]["appLogsConfiguration"]
    # Every secret is a secure parameter, kept in Key Vault, and reaches the app by reference.
    for name in ("postgresPassword", "directlineTokenKey", "botAppPassword", "metricsToken"):
        decorators = template["parameters"][name]["decorators"]
        assert any(d["type"] == "secure" for d in decorators), name
    secrets = template["variables"]["appSecrets"]["value"]["config"]
    assert secrets["keyVaultUrl"] == "${vaultSecret}${entry.key}"


def test_the_parameters_file_sets_only_parameters_the_template_has(
    template: dict[str, Any],
) -> None:
    given = json.loads((AZURE / "main.parameters.json").read_text())["parameters"]
    assert set(given) <= set(template["parameters"])


def test_checkov_finds_nothing_but_the_checks_skipped_with_a_reason() -> None:
    done = subprocess.run(
        [_tool("checkov"), "-d", str(AZURE), "--framework", "bicep", "--skip-download",
         "--output", "json"],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    report = json.loads(done.stdout)
    results = report["results"]
    assert [c["check_id"] for c in results["failed_checks"]] == [], done.stdout[-3000:]
    assert {c["check_id"] for c in results["skipped_checks"]} == SKIPPED
    assert report["summary"]["passed"] >= 9
    assert done.returncode == 0
