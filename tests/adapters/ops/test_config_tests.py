"""Config tests beside the config: ``python app.py check`` runs them as ops' CI would, and each
failure names the test's ``file:line`` and what differs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.processes import run_app

CONFIG = """\
routes:
  - id: billing
    name: Billing
    channel: "19:billing@thread.tacv2"
    trigger: 'context.domain == "FINANCE_DOMAIN"'
    hours:
      timezone: Europe/Berlin
      weekly:
        mon: ["09:00-17:00"]
        tue: ["09:00-17:00"]
        wed: ["09:00-17:00"]
        thu: ["09:00-17:00"]
        fri: ["09:00-17:00"]
    out_of_hours: message
  - id: support
    name: Customer support
    channel: "19:support@thread.tacv2"
"""

TESTS = """\
tests:
  - name: finance in hours reaches billing
    at: 2026-12-07T10:00:00+01:00
    context: {domain: FINANCE_DOMAIN}
    messages: ["can I talk to a person?"]
    expect: {escalation: true, route: billing, in_hours: true, texts: {queued: Billing}}

  - name: finance goes to support (a wrong expectation)
    at: 2026-12-07T10:00:00+01:00
    context: {domain: FINANCE_DOMAIN}
    messages: ["can I talk to a person?"]
    expect: {route: support}

  - name: saturday is in hours (it is not)
    at: 2026-12-05T10:00:00+01:00
    context: {domain: FINANCE_DOMAIN}
    visitor: {timezone: Europe/Berlin}
    expect:
      in_hours: true
      texts: {out_of_hours_back: "back on Friday", queued: Billing, nonsense: x}

  - name: a greeting does not hand off
    at: 2026-12-07T10:00:00+01:00
    messages: ["hello there"]
    expect: {escalation: true}
"""


def check(folder: Path, config: str, tests: str) -> subprocess.CompletedProcess[str]:
    (folder / "handoff.yaml").write_text(config)
    (folder / "handoff.tests.yaml").write_text(tests)
    return run_app("check", str(folder / "handoff.yaml"))


def test_each_failing_test_names_its_line_and_what_differs(tmp_path: Path) -> None:
    done = check(tmp_path, CONFIG, TESTS)
    assert done.returncode == 1
    tests = tmp_path / "handoff.tests.yaml"
    lines = done.stdout.splitlines()
    assert lines[0] == f"{tmp_path / 'handoff.yaml'}: ok (2 route(s))"
    assert lines[1:] == [
        f"{tests}:8: test \u201cfinance goes to support (a wrong expectation)\u201d: expected route"
        ' support; got billing (trigger of route billing: context.domain == "FINANCE_DOMAIN")',
        f"{tests}:14: test \u201csaturday is in hours (it is not)\u201d: expected in hours;"
        " billing is closed",
        f"{tests}:14: test \u201csaturday is in hours (it is not)\u201d: expected"
        " out_of_hours_back to say \u201cback on Friday\u201d; it says \u201cOur specialists"
        " from Billing are back on Monday at 09:00. I'll keep helping as best I can until"
        " then.\u201d",
        f"{tests}:14: test \u201csaturday is in hours (it is not)\u201d: expected the visitor to"
        " be told queued; they are told out_of_hours_back",
        f"{tests}:14: test \u201csaturday is in hours (it is not)\u201d: texts.nonsense: no such"
        " text",
        f"{tests}:22: test \u201ca greeting does not hand off\u201d: expected to hand off on"
        " \u201chello there\u201d; the bot answers",
    ]


def test_a_tests_file_with_a_mistake_is_reported_like_a_config(tmp_path: Path) -> None:
    bad = TESTS.replace("expect: {route: support}", "expect: {rout: support}").replace(
        "at: 2026-12-05T10:00:00+01:00", "at: 2026-12-05T10:00:00"
    )
    done = check(tmp_path, CONFIG, bad)
    assert done.returncode == 1
    tests = tmp_path / "handoff.tests.yaml"
    assert f"{tests}:12: tests[1].expect.rout: unknown key" in done.stdout
    assert f"{tests}:15: tests[2].at: needs its UTC offset" in done.stdout


def test_the_shipped_config_passes_its_own_tests() -> None:
    done = run_app("check", "config/handoff.yaml")
    assert done.returncode == 0, done.stdout
    assert "config/handoff.tests.yaml: 4 test(s) passed" in done.stdout
